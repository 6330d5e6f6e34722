"""Checkpoints with orbax: the train state and the config it was trained with.

Saves are atomic (orbax writes to a temporary directory and renames), so a run killed
mid-save leaves the previous checkpoint intact, and a state is only saved after its
loss and gradients were checked finite.
"""

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

# Fields that may change between runs in one workdir (longer training, logging cadence).
RESUMABLE_CHANGES = ("train.num_steps", "train.log_every", "train.eval_every",
                     "train.checkpoint_every", "train.eval_batches", "decode", "mesh")


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


class Checkpoints:
  """The workdir's checkpoints (workdir/checkpoints/<step>) and its config.json."""

  def __init__(self, workdir: str | Path, max_to_keep: int = 3):
    self.workdir = Path(workdir).absolute()
    self.manager = ocp.CheckpointManager(
        self.workdir / "checkpoints",
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
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
    if jax.process_index() == 0:  # one writer in a multi-process run
      self.workdir.mkdir(parents=True, exist_ok=True)
      path.write_text(json.dumps(config, indent=2, sort_keys=True))

  def latest_step(self) -> int | None:
    """The step of the newest checkpoint, or None."""
    return self.manager.latest_step()

  def save(self, step: int, state: Any) -> None:
    """Save `state` as checkpoint `step` (blocking, atomic)."""
    self.manager.save(step, args=ocp.args.StandardSave(_by_path(state)), force=True)
    self.manager.wait_until_finished()

  def restore(self, like: Any, step: int | None = None) -> Any:
    """The state of checkpoint `step` (default: the latest), shaped like `like`."""
    step = self.latest_step() if step is None else step
    saved = self.manager.restore(step, args=ocp.args.StandardRestore(_by_path(like)))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    restored = [saved.get(jax.tree_util.keystr(path), leaf) for path, leaf in leaves]
    return jax.tree_util.tree_unflatten(treedef, restored)

  def restore_flat(self, step: int | None = None) -> dict[str, Any]:
    """Checkpoint `step` (default: the latest) as {"['params']...": array}, no template needed."""
    step = self.latest_step() if step is None else step
    return self.manager.restore(step, args=ocp.args.StandardRestore())

  def close(self) -> None:
    self.manager.close()
