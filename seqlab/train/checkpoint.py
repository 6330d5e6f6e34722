"""Checkpoints with orbax: the train state and the config it was trained with.

Saves are atomic (orbax writes to a temporary directory and renames), so a run killed
mid-save leaves the previous checkpoint intact, and a state is only saved after its
loss and gradients were checked finite. Each checkpoint carries a digest (sha256 of every
array), so a restore notices damaged files even where the storage format would not. A
checkpoint that cannot be read is moved aside to checkpoints/damaged/ (never deleted) and
the run resumes from the newest intact one; a save that fails removes its partial folder.
"""

import contextlib
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging

# Fields that may change between runs in one workdir (longer training, logging cadence).
RESUMABLE_CHANGES = ("train.num_steps", "train.log_every", "train.eval_every",
                     "train.checkpoint_every", "train.eval_batches", "train.resume_step",
                     "decode", "mesh")
DIGEST = "seqlab_digest.json"  # in each checkpoint's folder: {path: sha256 of the array}
DAMAGED = "damaged"  # checkpoints/damaged/<step>: checkpoints that could not be read
SUPERSEDED = "superseded"  # checkpoints/superseded/<step>: newer than train.resume_step


class CheckpointError(ValueError):
  """A checkpoint that cannot be written or read: one line naming it, exit status 2."""


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """{"a": {"b": 1}} -> {"a.b": 1}."""
  if not isinstance(tree, dict):
    return {prefix: tree}
  out = {}
  for key, value in tree.items():
    out |= _flatten(value, f"{prefix}.{key}" if prefix else key)
  return out


def config_differences(saved: dict, current: dict) -> list[str]:
  """The dotted fields whose values differ, ignoring RESUMABLE_CHANGES; both sides as JSON
  gives them (a tuple field reads back from config.json as a list)."""
  a, b = _flatten(json.loads(json.dumps(saved))), _flatten(json.loads(json.dumps(current)))
  keep = lambda k: not any(k == r or k.startswith(r + ".") for r in RESUMABLE_CHANGES)
  differ = lambda k: a.get(k, "<absent>") != b.get(k, "<absent>")
  return sorted(k for k in set(a) | set(b) if keep(k) and differ(k))


def _by_path(state: Any) -> dict[str, Any]:
  """The state as {"['params']['cell']['W']": array}, zero-size leaves left out (orbax
  cannot store them; restore takes them from the template)."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(state)
  return {jax.tree_util.keystr(path): leaf for path, leaf in leaves if np.size(leaf) > 0}


def _host_array(leaf: Any) -> np.ndarray:
  """The leaf as numpy; a replicated array's local copy in a multi-process run."""
  if isinstance(leaf, jax.Array):
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      leaf = jax.random.key_data(leaf)
    if not leaf.is_fully_addressable:
      return np.asarray(leaf.addressable_data(0))
  return np.asarray(leaf)


def digest(flat: dict[str, Any]) -> dict[str, str]:
  """sha256 of each array's dtype, shape and bytes, by path."""
  out = {}
  for key in sorted(flat):
    array = np.ascontiguousarray(_host_array(flat[key]))
    hashed = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    hashed.update(array.tobytes())
    out[key] = hashed.hexdigest()
  return out


def _cause(error: BaseException) -> str:
  """What made a save fail, in a few words."""
  text = str(error)
  for pattern, cause in (("No space left", "no space left on device"),
                         ("RESOURCE_EXHAUSTED", "no space left on device"),
                         ("Permission denied", "permission denied"),
                         ("Read-only file system", "read-only file system"),
                         ("DATA_LOSS", "its files are damaged (DATA_LOSS)"),
                         ("OUT_OF_RANGE", "its files are damaged (truncated: OUT_OF_RANGE)"),
                         ("ZSTD", "its files are damaged (zstd cannot decompress them)"),
                         ("NOT_FOUND", "a file of it is missing (NOT_FOUND)")):
    if pattern in text:
      return cause
  first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
  return first[:200]


def _quiet_unraisable(unraisable) -> None:
  """tensorstore's callbacks into orbax's closed event loop after a failed read or write."""
  if not (isinstance(unraisable.exc_value, RuntimeError)
          and "Event loop is closed" in str(unraisable.exc_value)):
    sys.__unraisablehook__(unraisable)


@contextlib.contextmanager
def _quiet_writers():
  """orbax's writer threads log their tracebacks at ERROR; the caller names the failure in
  one line instead (they show with --verbosity=1)."""
  loggers = [logging.getLogger(name) for name in ("absl", "asyncio")]
  levels = [logger.level for logger in loggers]
  if absl_logging.get_verbosity() < 1:
    for logger in loggers:
      logger.setLevel(logging.CRITICAL)
    sys.unraisablehook = _quiet_unraisable
  yield  # on failure they stay quiet: orbax's failed tasks also log when collected, later
  for logger, level in zip(loggers, levels, strict=True):
    logger.setLevel(level)


class Checkpoints:
  """The workdir's checkpoints (workdir/checkpoints/<step>) and its config.json."""

  def __init__(self, workdir: str | Path, max_to_keep: int = 3):
    self.workdir = Path(workdir).absolute()
    self.directory = self.workdir / "checkpoints"
    self.max_to_keep = max_to_keep
    self.manager = self._manager()

  def _manager(self) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=self.max_to_keep, create=True,
                                             enable_async_checkpointing=False),
    )

  def check_config(self, config: dict) -> None:
    """Raise if the workdir holds a checkpoint of a different config; else write config.json."""
    path = self.workdir / "config.json"
    if path.exists() and self.latest_step() is not None:
      saved = json.loads(path.read_text())
      diff = config_differences(saved, config)
      if diff:
        shown = ", ".join(f"{k}: {_flatten(saved).get(k, '<absent>')!r} -> "
                          f"{_flatten(config).get(k, '<absent>')!r}" for k in diff[:8])
        raise ValueError(
            f"{self.workdir} holds a checkpoint trained with a different config ({shown}). "
            "Use another --workdir, or the same config to resume."
        )
    text = json.dumps(config, indent=2, sort_keys=True)
    if jax.process_index() == 0 and not (path.exists() and path.read_text() == text):
      self.workdir.mkdir(parents=True, exist_ok=True)  # one writer in a multi-process run;
      partial = path.with_suffix(".json.tmp")  # replaced whole, so a full disk cannot
      partial.write_text(text)                 # leave a truncated config.json
      partial.replace(path)

  def latest_step(self) -> int | None:
    """The step of the newest checkpoint, or None."""
    return self.manager.latest_step()

  def steps(self) -> list[int]:
    """The steps of every checkpoint, oldest first."""
    return sorted(self.manager.all_steps())

  def save(self, step: int, state: Any) -> None:
    """Save `state` as checkpoint `step` (blocking, atomic), with its digest. A failed save
    (no space, permission) removes its partial folder and raises CheckpointError."""
    flat = _by_path(state)
    try:
      with _quiet_writers():
        self.manager.save(step, args=ocp.args.StandardSave(flat), force=True)
        self.manager.wait_until_finished()
      if jax.process_index() == 0:
        (self.directory / str(step) / DIGEST).write_text(json.dumps(digest(flat)))
    except Exception as error:  # noqa: BLE001 - any failure of the writer, named below
      if jax.process_index() == 0:
        for partial in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
          shutil.rmtree(partial, ignore_errors=True)
        (self.directory / str(step) / DIGEST).unlink(missing_ok=True)
      good = [s for s in self.steps() if s != step]
      last = (f"the last good checkpoint is step {good[-1]} ({self.directory / str(good[-1])})"
              if good else "no checkpoint had been written yet")
      raise CheckpointError(
          f"saving checkpoint {step} in {self.directory} failed: {_cause(error)}; {last}. "
          "Free space (or fix the permissions) and rerun the command to resume"
      ) from error

  def restore(self, like: Any, step: int | None = None) -> Any:
    """The state of checkpoint `step` (default: the latest), shaped like `like`; raises
    CheckpointError if it cannot be read or its arrays differ from its digest."""
    step = self.latest_step() if step is None else step
    folder = self.directory / str(step)
    try:
      with _quiet_writers():
        saved = self.manager.restore(step, args=ocp.args.StandardRestore(_by_path(like)))
    except Exception as error:  # noqa: BLE001 - damaged files fail in many ways
      raise CheckpointError(f"checkpoint {step} ({folder}) cannot be read: "
                            f"{_cause(error)}") from error
    if (folder / DIGEST).exists():
      try:
        expected = json.loads((folder / DIGEST).read_text())
      except ValueError as error:
        raise CheckpointError(f"checkpoint {step} ({folder}): its digest is damaged") from error
      got = digest(saved)
      differ = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
      if differ:
        raise CheckpointError(f"checkpoint {step} ({folder}): {len(differ)} array(s) differ "
                              f"from their digest, e.g. {differ[0]}")
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    restored = [saved.get(jax.tree_util.keystr(path), leaf) for path, leaf in leaves]
    return jax.tree_util.tree_unflatten(treedef, restored)

  def restore_intact(self, like: Any, step: int | None = None) -> tuple[int, Any]:
    """(step, state) of checkpoint `step`, or by default of the newest intact checkpoint.
    Damaged newer checkpoints are named, moved to checkpoints/damaged/ and skipped; if none
    is intact (or the chosen `step` is damaged) raises CheckpointError and moves nothing."""
    steps = self.steps()
    if step is not None and step not in steps:
      raise CheckpointError(f"train.resume_step={step}: no checkpoint {step} in "
                            f"{self.directory} (there are: {steps or 'none'})")
    damaged = []
    for candidate in ([step] if step is not None else steps[::-1]):
      try:
        state = self.restore(like, candidate)
        break
      except CheckpointError as error:
        damaged.append((candidate, error))
    else:
      named = "; ".join(str(error) for _, error in damaged)
      raise CheckpointError(
          f"no intact checkpoint to resume from: {named}. The files are left as they were; "
          "use another --workdir, or move the damaged checkpoints away to start afresh")
    for bad, error in damaged:
      print(f"seqlab: {error}; moved to {self._move_aside(bad, DAMAGED)}", flush=True)
    if damaged:
      print(f"seqlab: resuming from checkpoint {candidate}, the newest intact one", flush=True)
    for later in [s for s in self.steps() if s > candidate]:  # resume_step went back
      print(f"seqlab: checkpoint {later} is newer than train.resume_step={candidate}; moved "
            f"to {self._move_aside(later, SUPERSEDED)}", flush=True)
    return candidate, state

  def _move_aside(self, step: int, folder: str) -> Path:
    """checkpoints/<step> -> checkpoints/<folder>/<step> (or <step>.2, ...); never deleted."""
    target = self.directory / folder / str(step)
    n = 1
    while target.exists():
      n += 1
      target = self.directory / folder / f"{step}.{n}"
    if jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.move(self.directory / str(step), target)
    self.manager.close()
    self.manager = self._manager()
    return target

  def restore_flat(self, step: int | None = None) -> dict[str, Any]:
    """Checkpoint `step` (default: the latest) as {"['params']...": array}, no template needed."""
    step = self.latest_step() if step is None else step
    return self.manager.restore(step, args=ocp.args.StandardRestore())

  def close(self) -> None:
    self.manager.close()
