"""python -m seqlab.main end to end: outputs, resume after kill -9, non-finite handling, errors."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from seqlab.train.checkpoint import Checkpoints

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def _command(workdir, data_dir, *overrides, config="configs/copy.py:cell=gru,delay=5"):
  return [
      sys.executable, "-m", "seqlab.main", f"--config={config}", f"--workdir={workdir}",
      f"--config.task.data_dir={data_dir}", "--config.task.options.num_train=256",
      "--config.task.options.num_validation=64", "--config.task.options.num_test=64",
      "--config.model.hidden_size=16", "--config.train.batch_size=16", *overrides,
  ]


def _run(cmd, expect_ok=True):
  result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  if expect_ok:
    assert result.returncode == 0, result.stderr[-3000:]
  return result


def _metrics(workdir):
  return [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]


def _final_params(workdir):
  ckpt = Checkpoints(workdir)
  step = ckpt.latest_step()
  saved = ckpt.restore_flat(step)
  ckpt.close()
  return step, {k: np.asarray(v) for k, v in saved.items() if "params" in k}


def test_copy_trains_and_writes_its_outputs(tmp_path, data_dir):
  workdir = tmp_path / "run"
  out = _run(_command(workdir, data_dir, "--config.train.num_steps=40",
                      "--config.train.log_every=10", "--config.train.eval_every=20",
                      "--config.train.checkpoint_every=20")).stdout
  assert "step     40/40" in out and "validation: loss" in out and "steps/s" in out
  records = _metrics(workdir)
  assert [r["step"] for r in records if r["split"] == "validation"] == [20, 40]
  assert {"loss", "accuracy", "loss_vs_baseline"} <= set(records[-1])
  # It learns: an untrained net scores ln 9 / baseline = 2.6 x the memoryless baseline.
  val = [r for r in records if r["split"] == "validation"]
  assert val[1]["loss"] < val[0]["loss"] and val[1]["loss_vs_baseline"] < 1.8
  assert json.loads((workdir / "config.json").read_text())["task"]["name"] == "copy"
  assert (workdir / "learning_curves.png").stat().st_size > 1000
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert _final_params(workdir)[0] == 40
  # Rerunning with more steps resumes from step 40 instead of starting over.
  out = _run(_command(workdir, data_dir, "--config.train.num_steps=60",
                      "--config.train.log_every=10", "--config.train.eval_every=20",
                      "--config.train.checkpoint_every=20")).stdout
  assert "step     50/60" in out and "step     10/60" not in out


def _assert_killed_and_resumed_run_equals_an_uninterrupted_one(command, tmp_path, kill_after):
  """Run `command(workdir)` straight, and again killed (-9) once checkpoint `kill_after`
  exists and then resumed: metrics and final params are identical."""
  straight = tmp_path / "straight"
  _run(command(straight))

  resumed = tmp_path / "resumed"
  proc = subprocess.Popen(command(resumed), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while not (resumed / "checkpoints" / str(kill_after)).exists() and time.time() < deadline:
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  step_a, params_a = _final_params(straight)
  assert _final_params(resumed)[0] < step_a  # the run really was cut short
  _run(command(resumed))

  assert _metrics(resumed) == _metrics(straight)
  step_b, params_b = _final_params(resumed)
  assert step_a == step_b
  for key in params_a:
    np.testing.assert_array_equal(params_a[key], params_b[key])


def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path, data_dir):
  args = ("--config.train.num_steps=150", "--config.train.log_every=25",
          "--config.train.eval_every=100", "--config.train.checkpoint_every=25")
  _assert_killed_and_resumed_run_equals_an_uninterrupted_one(
      lambda workdir: _command(workdir, data_dir, *args), tmp_path, kill_after=50)


def test_a_curriculum_killed_inside_a_stage_resumes_to_the_same_end(tmp_path, data_dir):
  """Delay 2, then 5: killed after checkpoint 75 (stage 2 runs steps 61-150), the rerun
  resumes inside stage 2 on its task and ends equal to an uninterrupted run."""
  args = ("--config.train.num_steps=150", "--config.train.log_every=25",
          "--config.train.eval_every=50", "--config.train.checkpoint_every=25",
          "--config.task.curriculum=((0.4, 0.4), (1.0, 0.6))")
  _assert_killed_and_resumed_run_equals_an_uninterrupted_one(
      lambda workdir: _command(workdir, data_dir, *args), tmp_path, kill_after=75)


def test_curriculum_stages_are_named_and_checked(tmp_path, data_dir):
  result = _run(_command(tmp_path / "c", data_dir, "--config.train.num_steps=20",
                         "--config.train.checkpoint_every=10", "--config.train.log_every=10",
                         "--config.task.curriculum=((0.4, 0.5), (1.0, 0.5))"))
  assert "curriculum stage 1/2: delay 2, steps 1-10" in result.stdout
  assert "curriculum stage 2/2: delay 5, steps 11-20" in result.stdout
  assert _final_params(tmp_path / "c")[0] == 20
  # Each stage trains and evaluates its own task: the memoryless baseline n log(A) / (T + 2n)
  # (n = 10 symbols of A = 8) behind loss_vs_baseline is that of delay 2, then of delay 5.
  evals = [r for r in _metrics(tmp_path / "c") if r["split"] == "validation"]
  baselines = [r["loss"] / r["loss_vs_baseline"] for r in evals]
  np.testing.assert_allclose(baselines, [10 * np.log(8) / (T + 20) for T in (2, 5)], rtol=1e-5)
  bad = _run(_command(tmp_path / "d", data_dir, "--config.task.curriculum=((2.0, 1.0),)"),
             expect_ok=False)
  assert bad.returncode == 2 and "config.task.curriculum stage 0: (2.0, 1.0)" in bad.stderr


def test_killed_and_resumed_char_lm_carries_its_stream_state(tmp_path, data_dir):
  """The default experiment's path: truncated BPTT with k2 > k1, so the checkpointed state
  (carry and the last k2 - k1 characters) is not empty and must be restored."""
  def command(workdir):
    return [sys.executable, "-m", "seqlab.main", "--config=configs/char_lstm.py:cell=gru",
            f"--workdir={workdir}", f"--config.task.data_dir={data_dir}",
            "--config.task.options.max_chars=30000", "--config.model.hidden_size=16",
            "--config.model.embed_size=8", "--config.train.batch_size=4",
            "--config.train.seq_len=8", "--config.train.tbptt_k2=12",
            "--config.train.num_steps=150", "--config.train.log_every=10",
            "--config.train.eval_every=150", "--config.train.eval_batches=2",
            "--config.train.checkpoint_every=10", "--config.decode.prefixes=()"]
  _assert_killed_and_resumed_run_equals_an_uninterrupted_one(command, tmp_path, kill_after=40)


# SGD whose learning rate grows ~9x a step from 1: the params overflow float32 at ~step 40.
NAN_ARGS = ("--config.optimizer.name=sgd", "--config.optimizer.learning_rate=1",
            "--config.optimizer.clip_norm=0", "--config.optimizer.schedule=exponential",
            "--config.optimizer.end_learning_rate=1e38", "--config.optimizer.decay_steps=40",
            "--config.train.num_steps=60",
            "--config.train.log_every=5", "--config.train.checkpoint_every=5")


def test_nonfinite_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path,
                                                                                 data_dir):
  workdir = tmp_path / "nan"
  result = _run(_command(workdir, data_dir, *NAN_ARGS), expect_ok=False)
  assert result.returncode != 0
  assert "non-finite loss or gradients at step" in result.stderr
  assert "largest finite gradient norm seen" in result.stderr
  step, params = _final_params(workdir)
  assert f"The last good checkpoint (step {step}) is intact" in result.stderr
  assert 0 < step < 60
  assert all(np.isfinite(p).all() for p in params.values())


def test_nonfinite_updates_can_be_skipped_and_counted(tmp_path, data_dir):
  workdir = tmp_path / "skip"
  _run(_command(workdir, data_dir, *NAN_ARGS, "--config.train.nonfinite=skip"))
  last = [r for r in _metrics(workdir) if r["split"] == "train"][-1]
  assert last["step"] == 60 and last["skipped"] > 0
  assert all(np.isfinite(p).all() for p in _final_params(workdir)[1].values())


@pytest.mark.parametrize("override,message", [
    ("--config.model.name=lstm_rnn", "unknown model 'lstm_rnn'; known models"),
    ("--config.model.hiden_size=8", "hiden_size"),
    ("--config.model.vocab_size=3", "config.model.vocab_size=3 does not match the data"),
    ("--config.optimizer.name=adamm", "unknown optimizer 'adamm'; known"),
    ("--config.task.name=copyy", "copyy"),
    ("--config.model.cell=lstn", "unknown cell 'lstn'; known cells"),
])
def test_config_errors_name_the_field(tmp_path, data_dir, override, message):
  result = _run(_command(tmp_path / "bad", data_dir, override), expect_ok=False)
  assert result.returncode != 0
  assert message in result.stderr


def test_a_workdir_of_another_config_is_refused(tmp_path, data_dir):
  workdir = tmp_path / "run"
  _run(_command(workdir, data_dir, "--config.train.num_steps=5"))
  result = _run(_command(workdir, data_dir, "--config.train.num_steps=5",
                         "--config.optimizer.learning_rate=0.1"), expect_ok=False)
  assert "holds a checkpoint trained with a different config" in result.stderr
  assert "optimizer.learning_rate" in result.stderr
  assert jax.tree.leaves(_final_params(workdir)[1])  # the old checkpoint is untouched


@pytest.mark.slow
def test_the_copy_config_solves_delay_200_from_the_command_line(tmp_path, data_dir):
  """configs/copy.py:cell=gru,delay=200 alone (the long-lag recipe the config carries from
  delay 100: curriculum, chrono init, cosine decay; 9000 steps, ~3-5 min on 2 cores) ends
  below a tenth of the memoryless baseline."""
  workdir = tmp_path / "gru200"
  _run([sys.executable, "-m", "seqlab.main", "--config=configs/copy.py:cell=gru,delay=200",
        f"--workdir={workdir}", f"--config.task.data_dir={data_dir}"])
  last = [r for r in _metrics(workdir) if r["split"] == "validation"][-1]
  assert last["step"] == 9000 and last["loss_vs_baseline"] < 0.1, last
