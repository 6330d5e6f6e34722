"""python -m seqlab.sweep --search=pbt end to end: its outputs, a kill -9 and rerun that ends
bit-identical to an uninterrupted run, --replay, and bad input named in one line."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from seqlab import errors
from seqlab.sweep import pbt_run
from seqlab.train.checkpoint import Checkpoints

ROOT = Path(__file__).resolve().parent.parent
STEPS, READY = 40, 5


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def _command(out, data_dir, *overrides):
  """A population of 4 LSTMs of 8 units on copy at delay 5, evaluated every 5 steps."""
  return [sys.executable, "-m", "seqlab.sweep", "--config=configs/pbt.py:task=copy",
          "--search=pbt", f"--output_dir={out}", f"--config.task.data_dir={data_dir}",
          "--config.task.options.delay=5", "--config.task.options.num_train=128",
          "--config.task.options.num_validation=32", "--config.task.options.num_test=32",
          "--config.model.hidden_size=8",
          "--config.train.batch_size=8", f"--config.train.num_steps={STEPS}",
          "--config.pbt.size=4", f"--config.pbt.ready={READY}", "--config.pbt.eval_batches=1",
          "--config.pbt.quantile=0.5", *overrides]


def _run(cmd) -> subprocess.CompletedProcess:
  result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def _final_state(out: Path) -> tuple[int, dict]:
  ckpt = Checkpoints(out)
  step = ckpt.latest_step()
  saved = {k: np.asarray(v) for k, v in ckpt.restore_flat(step).items()}
  ckpt.close()
  return step, saved


@pytest.fixture(scope="module")
def straight(data_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("straight")
  stdout = _run(_command(out, data_dir)).stdout
  return out, stdout


def test_pbt_writes_its_lineage_and_figures(straight):
  out, stdout = straight
  assert "population-based training: 4 members, 40 steps" in stdout
  record = pbt_run.load_record(str(out))
  assert record.ends == list(range(READY, STEPS + 1, READY))
  lineage = [json.loads(x) for x in (out / "lineage.jsonl").read_text().splitlines()]
  assert lineage == record.lineage and len(lineage) == 4 * (STEPS // READY - 1)
  copies = [e for e in lineage if e["parent"] != e["member"]]
  assert len(copies) == 2 * (STEPS // READY - 1)  # quantile 0.5 of 4: two copies per round
  winner = json.loads((out / "winner.json").read_text())
  assert winner["loss"] == min(record.scores[-1])
  assert [c["end"] for c in winner["schedule"]] == record.ends
  for name in ("pbt_schedules.png", "pbt_family.png"):
    assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert "| learning_rate | clip_norm | loss | copies into it |" in (out / "pbt.md").read_text()


def test_a_killed_population_resumes_bit_identical(straight, data_dir, tmp_path):
  out = tmp_path / "resumed"
  proc = subprocess.Popen(_command(out, data_dir), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while not (out / "checkpoints" / "15").exists() and time.time() < deadline:
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert _final_state(out)[0] < STEPS  # really cut short
  assert "resuming population-based training from step" in _run(_command(out, data_dir)).stdout
  a, b = pbt_run.load_record(str(straight[0])), pbt_run.load_record(str(out))
  for field in ("ends", "scores", "parents", "values", "rng_seeds", "lineage", "key"):
    assert getattr(a, field) == getattr(b, field), field
  for name, h in a.history.items():
    np.testing.assert_array_equal(b.history[name], h)
  (step_a, state_a), (step_b, state_b) = _final_state(straight[0]), _final_state(out)
  assert step_a == step_b == STEPS and state_a.keys() == state_b.keys()
  for key, value in state_a.items():
    np.testing.assert_array_equal(state_b[key], value, err_msg=key)
  assert (out / "lineage.jsonl").read_text() == (straight[0] / "lineage.jsonl").read_text()


def test_replay_trains_the_winners_schedule_again_bit_for_bit(straight, data_dir):
  out = straight[0]
  member = json.loads((out / "winner.json").read_text())["member"]
  stdout = _run(_command(out, data_dir, f"--replay={member}")).stdout
  assert f"member {member}'s schedule replayed from scratch for {STEPS} steps" in stdout
  summary = json.loads((out / f"replay_{member}.json").read_text())
  assert summary["max_relative_difference"] == 0.0  # the same program: bit for bit
  assert len(summary["replay_loss"]) == STEPS
  assert (out / f"replay_{member}.png").exists()


BAD = {
    "unknown_path": (("--config.pbt.hyperparameters=(('model.hidden_size', 'choice', (8, 16)),)",),
                     ("'model.hidden_size'", "mutable: optimizer.learning_rate")),
    "reversed_bounds": (
        ("--config.pbt.hyperparameters=(('optimizer.learning_rate', 'log_uniform', 0.1, "
         "0.001),)",), ("'optimizer.learning_rate' (log_uniform)", "low < high")),
    "quantile_zero": (("--config.pbt.quantile=0.0",), ("--config.pbt.quantile=0.0", "(0, 0.5]")),
    "quantile_large": (("--config.pbt.quantile=0.75",), ("--config.pbt.quantile=0.75",)),
    "one_member": (("--config.pbt.size=1",), ("--config.pbt.size=1", "at least 2")),
    "replay_without_a_run": (("--replay=1",), ("holds no PBT record",)),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_pbt_input_is_named_in_one_line(case, data_dir, tmp_path):
  args, expected = BAD[case]
  result = subprocess.run(_command(tmp_path / "out", data_dir, *args), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == errors.EXIT_USER_ERROR, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
  for text in expected:
    assert text in lines[0], lines[0]
