"""Optuna search: workers on one study (SQLite file, PostgreSQL server) finish exactly N
trials, none lost or run twice; a worker killed mid-batch has its trials failed and retried;
bad input gets named errors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import postgres_server
import pytest
import scale_worker
from optuna.trial import TrialState

from seqlab import problems
from seqlab.sweep import search, search_space

ROOT = Path(__file__).resolve().parent.parent
SPACE = (("optimizer.learning_rate", "log_uniform", 1e-3, 1e-1),
         ("model.hidden_size", "choice", (8, 12)))  # two shapes: two programs per batch


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("data")
  problems.build_problem(scale_worker.tiny_config(path))  # built once, before any worker
  return path


def _worker(data_dir, url: str, trials: int, batch: int = 2, steps: int = 4) -> subprocess.Popen:
  """`python -m seqlab.sweep --search=optuna` on the tiny copy task (1 s heartbeats)."""
  options = dict(alphabet_size=4, num_symbols=3, delay=3, num_train=64, num_validation=16,
                 num_test=16)
  argv = [sys.executable, "-m", "seqlab.sweep", "--config=configs/copy.py:cell=gru,delay=3",
          f"--config.task.data_dir={data_dir}",
          *(f"--config.task.options.{k}={v}" for k, v in options.items()),
          "--config.model.hidden_size=8", "--config.model.embed_size=4",
          "--config.train.batch_size=8", f"--config.train.num_steps={steps}",
          f"--config.train.eval_every={max(2, steps // 2)}", "--config.train.eval_batches=1",
          f"--config.search.batch={batch}", "--config.search.heartbeat_s=1",
          f"--config.search.space={SPACE!r}", "--search=optuna", "--study=test",
          f"--storage={url}", f"--trials={trials}"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _finish(*workers: subprocess.Popen) -> None:
  for w in workers:
    out = w.communicate(timeout=600)[0]
    assert w.returncode == 0, out[-3000:]


def _assert_exactly(url: str, trials: int) -> list:
  """N complete, distinct values (none run twice), every failed trial surplus or retried."""
  study = optuna.load_study(study_name="test", storage=url.replace(
      "postgresql://", "postgresql+psycopg://"))
  all_trials = study.get_trials()
  complete = [t for t in all_trials if t.state == TrialState.COMPLETE]
  assert len(complete) == trials
  assert len({tuple(sorted(t.params.items())) for t in complete}) == trials
  assert not [t for t in all_trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
  retried = {t.system_attrs.get("failed_trial") for t in all_trials}
  failed = [t for t in all_trials if t.state == TrialState.FAIL]
  for t in failed:
    assert t.user_attrs.get("surplus") or t.number in retried, t
  return failed


def test_workers_creating_one_sqlite_file_at_once(tmp_path):
  """Six workers open a new SQLite storage together: the losers of the table-creation race
  (a UNIQUE failure on alembic's version row) wait and open it, none fails."""
  url = f"sqlite:///{tmp_path}/optuna.db"
  code = ("import sys; from seqlab.sweep import search; "
          "search._storage(sys.argv[1], sys.argv[1], {'connect_args': {'timeout': 60}}, 1, 3)")
  workers = [subprocess.Popen([sys.executable, "-c", code, url], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(6)]
  _finish(*workers)


def test_two_workers_on_an_sqlite_file(data_dir, tmp_path):
  url = f"sqlite:///{tmp_path}/optuna.db"
  _finish(_worker(data_dir, url, 5), _worker(data_dir, url, 5))
  _assert_exactly(url, 5)


def test_two_workers_on_a_postgresql_server(data_dir):
  with postgres_server.server() as url:
    _finish(_worker(data_dir, url, 4), _worker(data_dir, url, 4))
    _assert_exactly(url, 4)


STEPS_TO_KILL = 1500  # long enough that a kill 1.5 s into the batch lands mid-training


def test_a_killed_workers_trials_are_retried(data_dir, tmp_path):
  """SIGKILL a worker while its batch trains; the next worker fails and reruns its trials."""
  url = f"sqlite:///{tmp_path}/optuna.db"
  doomed = _worker(data_dir, url, 3, batch=3, steps=STEPS_TO_KILL)
  deadline = time.monotonic() + 300
  while time.monotonic() < deadline and doomed.poll() is None:
    try:
      running = optuna.load_study(study_name="test", storage=url).get_trials(
          states=(TrialState.RUNNING,))
    except (KeyError, Exception):  # the study or its tables do not exist yet
      running = []
    if running:
      break
    time.sleep(0.2)
  assert running, "the worker never started a batch"
  time.sleep(1.5)  # a heartbeat interval: the batch is training now (compiling takes longer)
  assert doomed.poll() is None, "the worker finished before it could be killed"
  doomed.send_signal(signal.SIGKILL)
  doomed.communicate()
  # The trials still RUNNING now are those the kill cut off (nothing changes them after it).
  running = optuna.load_study(study_name="test", storage=url).get_trials(
      states=(TrialState.RUNNING,))
  assert running, "the worker's batch ended before the kill: lengthen STEPS_TO_KILL"
  _finish(_worker(data_dir, url, 3, batch=3, steps=STEPS_TO_KILL))
  failed = _assert_exactly(url, 3)
  killed = {t.number: t.params for t in failed if not t.user_attrs.get("surplus")}
  assert set(killed) >= {t.number for t in running}
  study = optuna.load_study(study_name="test", storage=url)
  reruns = {t.system_attrs["failed_trial"]: t.params for t in study.get_trials()
            if "failed_trial" in t.system_attrs and t.state == TrialState.COMPLETE}
  assert reruns == killed  # the same values, run to completion once


def test_a_fresh_trial_beyond_n_is_surplus(tmp_path):
  config = scale_worker.tiny_config(tmp_path).unlock()
  config.search.space = SPACE
  study = search.open_study(config, "s", f"sqlite:///{tmp_path}/s.db")
  asked = search._ask(study, 3)
  assert [search._surplus(study, t, 2) for t in asked] == [False, False, True]
  assert study.trials[2].state == TrialState.FAIL and study.trials[2].user_attrs["surplus"]


def test_named_errors(tmp_path):
  config = scale_worker.tiny_config(tmp_path).unlock()
  for space, message in [
      ((("optimizer.learning_rate", "loguniform", 1e-4, 1e-2),), "unknown kind 'loguniform'"),
      ((("model.hidden_sise", "int", 8, 16),), "declares no such field"),
      ((("modle.hidden_size", "int", 8, 16),), "has no section 'modle'"),
      ((("optimizer.learning_rate", "log_uniform", 0.0, 1e-2),), "needs low > 0"),
      ((("model.hidden_size", "int", 16, 8),), "low < high"),
      ((("model.cell", "choice", "gru"),), "tuple of choices"),
      ((), "space is empty")]:
    config.search.space = space
    with pytest.raises(ValueError, match=message):
      search_space.parse(config)
  config.search.space = SPACE
  with pytest.raises(ConnectionError, match=r"cannot open the study storage "
                     r"postgresql://user:\*\*\*@localhost:1/db"):
    search.open_study(config, "s", "postgresql://user:secret@localhost:1/db")
  with pytest.raises(ConnectionError, match="cannot open the study storage"):
    search.open_study(config, "s", f"sqlite:///{tmp_path}/no/such/dir/s.db")
  config.search.sampler = "cmaes"
  with pytest.raises(ValueError, match=r"unknown config.search.sampler 'cmaes'"):
    search.open_study(config, "s", f"sqlite:///{tmp_path}/s.db")


def test_program_keys_split_shapes_not_numbers():
  key = search_space.program_key
  assert key({"optimizer.learning_rate": 0.1, "seed": 3}) == ()
  assert key({"optimizer.learning_rate": 0.1, "model.hidden_size": 8}) == (
      ("model.hidden_size", "8"),)
  assert key({"model.cell_options.recurrent_scale": 0.9}) == ()  # a float initial value
  assert key({"model.cell": "lstm", "task.options.delay": 5}) == (
      ("model.cell", "'lstm'"), ("task.options.delay", "5"))


def test_trials_below_the_median_are_pruned_at_an_evaluation_point(data_dir, tmp_path):
  """Five finished trials reported 0 at step 2: ours (loss > 0 there) stop at step 2 of 4."""
  config = scale_worker.tiny_config(data_dir, num_steps=4, eval_every=2).unlock()
  config.search.space = SPACE[:1]
  study = search.open_study(config, "p", f"sqlite:///{tmp_path}/p.db")
  dist = optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)
  for _ in range(5):
    study.add_trial(optuna.create_trial(params={"optimizer.learning_rate": 1e-2},
                                        distributions={"optimizer.learning_rate": dist},
                                        value=0.0, intermediate_values={2: 0.0}))
  trials = search._ask(study, 2)
  values = [{"optimizer.learning_rate": lr} for lr in (1e-2, 3e-2)]
  search._train_group(config, study, trials, values)
  ours = study.trials[5:]
  assert [t.state for t in ours] == [TrialState.PRUNED] * 2
  assert all(list(t.intermediate_values) == [2] for t in ours)  # stopped after step 2
  assert all(t.intermediate_values[2] > 0.5 for t in ours)  # the validation loss at step 2
