"""Search on Optuna: trials asked in batches, each batch trained as vmapped populations.

The populations are sharded, one per program; any number of workers share a study through
its storage.

    study = search.open_study(config, "copy-lr", "sqlite:///runs/search/optuna.db")
    search.work(config, study, trials=32)     # in every worker: until 32 trials finished
    print(search.best_table(study, config))

Workers record heartbeats for their running trials; a trial whose worker stopped beating
(killed, machine lost) is failed by the next worker that looks (`fail_stale_trials`) and
retried with the same values (`RetryHeartbeatStaleTrialCallback`). A worker asks only for the
trials still missing, and a fresh trial numbered beyond them (two workers asked at once) is
failed unrun and marked `surplus`: exactly `trials` trials finish.
"""

import contextlib
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import optuna
from optuna.trial import TrialState

from seqlab.analysis import report
from seqlab.sweep import population, search_space

SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
PRUNERS = {"median": optuna.pruners.MedianPruner, "none": optuna.pruners.NopPruner}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def open_study(config: ml_collections.ConfigDict, name: str, url: str) -> optuna.Study:
  """The study `name` in the storage at `url` (created if new), with heartbeats and retries."""
  s = config.search
  for field, known in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
    if s[field] not in known:
      raise ValueError(f"unknown config.search.{field} {s[field]!r}; known: {list(known)}")
  search_space.parse(config)
  engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
  given = url
  if url.startswith(("postgresql://", "postgres://")):  # the driver installed with seqlab
    url = "postgresql+psycopg://" + url.split("://", 1)[1]
  storage = _storage(url, given, engine, s.heartbeat_s, s.max_retry)
  sampler = SAMPLERS[s.sampler]()  # unseeded: workers must not draw the same values
  study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                              pruner=PRUNERS[s.pruner](), direction=s.direction,
                              load_if_exists=True)
  study.set_user_attr("metric", s.metric)
  return study


def _storage(url: str, given: str, engine: dict, heartbeat_s: int, max_retry: int,
             attempts: int = 5) -> optuna.storages.RDBStorage:
  """The RDB storage with heartbeats; retried while another worker creates the same tables."""
  attempt = 0
  while True:
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine, heartbeat_interval=heartbeat_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=max_retry))
    except Exception as e:  # sqlalchemy/driver errors: a bad URL, no server, no permission
      attempt += 1
      if _creating_race(e) and attempt < attempts:  # two workers started at once
        time.sleep(1.0)
        continue
      raise ConnectionError(f"cannot open the study storage {_shown(given)}: "
                            f"{type(e).__name__}: {e}") from e


def _creating_race(e: Exception) -> bool:
  """Another worker is creating the same tables (PostgreSQL: "already exists"; SQLite: a
  UNIQUE failure on alembic's version row)."""
  text = str(e)
  return "already exists" in text or "UNIQUE constraint failed" in text


def _shown(url: str) -> str:
  """The URL with any password hidden."""
  scheme, sep, rest = url.partition("://")
  if "@" in rest and ":" in rest.split("@", 1)[0]:
    user = rest.split("@", 1)[0].split(":", 1)[0]
    rest = f"{user}:***@{rest.split('@', 1)[1]}"
  return scheme + sep + rest


def count(study: optuna.Study) -> dict[TrialState, int]:
  """Trials per state."""
  trials = study.get_trials(deepcopy=False)
  return {state: sum(t.state == state for t in trials) for state in TrialState}


def work(config: ml_collections.ConfigDict, study: optuna.Study, trials: int,
         log=print) -> None:
  """Ask, train and tell batches of trials until `trials` trials of the study finished."""
  params = search_space.parse(config)
  while True:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
      optuna.storages.fail_stale_trials(study)  # a killed worker's trials -> FAIL, retried
    n = count(study)
    finished = sum(n[s] for s in FINISHED)
    if finished >= trials:
      return
    missing = trials - finished - n[TrialState.RUNNING] - n[TrialState.WAITING]
    asking = min(config.search.batch, max(missing, 0) + n[TrialState.WAITING])
    if asking == 0:  # the rest is running elsewhere: wait for it to finish (or go stale)
      time.sleep(min(config.search.heartbeat_s, 5))
      continue
    batch = [t for t in _ask(study, asking) if not _surplus(study, t, trials)]
    values = [{p.path: p.suggest(t) for p in params} for t in batch]
    with _heartbeats(study, batch):
      for key, group in _programs(values):
        log(f"program {dict(key) or 'shared'}: trials "
            f"{[batch[i].number for i in group]}")
        _train_group(config, study, [batch[i] for i in group], [values[i] for i in group])


def _ask(study: optuna.Study, k: int) -> list[optuna.Trial]:
  """k trials (retries first), each with a first heartbeat at once: a trial that never beat
  is never found stale, so a worker killed before its first beat would strand it."""
  trials = []
  with warnings.catch_warnings():  # heartbeats are recorded here, outside Study.optimize
    warnings.filterwarnings("ignore", message="Heartbeat of storage")
    for _ in range(k):
      trials.append(study.ask())
      study._storage.record_heartbeat(trials[-1]._trial_id)
  return trials


def _surplus(study: optuna.Study, trial: optuna.Trial, trials: int) -> bool:
  """A fresh trial beyond the first `trials` unfailed ones: failed unrun, marked surplus."""
  if "failed_trial" in study._storage.get_trial_system_attrs(trial._trial_id):
    return False  # a retry is never surplus
  ahead = [t for t in study.get_trials(deepcopy=False)
           if t.number < trial.number and t.state != TrialState.FAIL]
  if len(ahead) < trials:
    return False
  trial.set_user_attr("surplus", True)
  study.tell(trial, state=TrialState.FAIL)
  return True


def _programs(values: list[dict[str, Any]]) -> Iterator[tuple[tuple, list[int]]]:
  """Trial indices grouped by program key, in the order of first appearance."""
  groups: dict[tuple, list[int]] = {}
  for i, v in enumerate(values):
    groups.setdefault(search_space.program_key(v), []).append(i)
  yield from groups.items()


@contextlib.contextmanager
def _heartbeats(study: optuna.Study, trials: list[optuna.Trial]):
  """Record a heartbeat for every trial each heartbeat interval while the batch trains."""
  storage, stop = study._storage, threading.Event()
  interval = storage.get_heartbeat_interval()

  def beat():
    while True:
      for t in trials:
        if storage.get_trial(t._trial_id).state == TrialState.RUNNING:
          storage.record_heartbeat(t._trial_id)
      if stop.wait(interval):
        return

  thread = threading.Thread(target=beat, daemon=True)
  thread.start()
  try:
    yield
  finally:
    stop.set()
    thread.join()


def _train_group(config, study, trials, values) -> None:
  """Train one program's trials as a population; on an error they end failed."""
  try:
    _train_and_tell(config, study, trials, values)
  except BaseException:
    for t in trials:
      study.tell(t, state=TrialState.FAIL, skip_if_finished=True)
    raise


def _train_and_tell(config, study, trials, values) -> None:
  """Train a population, reporting at evaluation points (pruning), telling the final metric."""
  pop = population.from_members(config, values)
  metric, every = config.search.metric, config.train.eval_every
  state, done, live = None, 0, set(range(pop.size))
  while done < config.train.num_steps and live:
    steps = min(every, config.train.num_steps - done)
    result = population.train(pop, steps, state=state)
    state, done = result.state, done + steps
    finals = population.evaluate(pop, state["params"], "validation", config.train.eval_batches)
    if metric not in finals[0]:
      raise ValueError(f"config.search.metric {metric!r} is no validation metric of task "
                       f"{config.task.name!r}; known: {sorted(finals[0])}")
    for i in sorted(live):
      value = finals[i][metric]
      if not np.isfinite(value):
        study.tell(trials[i], state=TrialState.FAIL)
        live.discard(i)
        continue
      trials[i].report(value, done)
      if done == config.train.num_steps:
        study.tell(trials[i], value)
      elif trials[i].should_prune():
        study.tell(trials[i], state=TrialState.PRUNED)
      else:
        continue
      live.discard(i)


def best_table(study: optuna.Study, k: int = 10) -> str:
  """The k best finished trials as a markdown table: number, value, then the searched values."""
  done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
  reverse = study.direction == optuna.study.StudyDirection.MAXIMIZE
  best = sorted(done, key=lambda t: t.value, reverse=reverse)[:k]
  names = sorted({p for t in best for p in t.params})
  n = count(study)
  head = (f"{n[TrialState.COMPLETE]} complete, {n[TrialState.PRUNED]} pruned, "
          f"{n[TrialState.FAIL]} failed trials; the {len(best)} best:\n\n")
  return head + report.markdown_table(["trial", "value", *names],
                                      [[t.number, t.value, *(t.params.get(p) for p in names)]
                                       for t in best])


def plot(study: optuna.Study, output_dir: str) -> None:
  """search.png: each finished trial's value by trial number and the best so far."""
  done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                key=lambda t: t.number)
  if not done:
    return
  numbers, values = [t.number for t in done], np.array([t.value for t in done])
  best = (np.maximum if study.direction == optuna.study.StudyDirection.MAXIMIZE
          else np.minimum).accumulate(values)
  fig, ax = plt.subplots(figsize=(6, 3.5))
  ax.scatter(numbers, values, s=12, label="trial")
  ax.step(numbers, best, where="post", color="C1", label="best so far")
  ax.set_xlabel("trial")
  ax.set_ylabel("validation " + study.user_attrs.get("metric", "value"))
  ax.legend()
  report.save_figure(fig, output_dir, "search.png")
