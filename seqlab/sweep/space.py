"""The space of a sweep: `config.sweep.axes` as a grid or zipped, and what each axis changes.

    config.sweep.axes = (("optimizer.learning_rate", (1e-3, 3e-3)), ("seed", (0, 1, 2)))
    config.sweep.mode = "grid"   # 6 members, the first axis slowest | "zip": the i-th values

An axis may change only what keeps one compiled program valid for every member:
  seed                       the initial parameters, the per-step rng and the data order;
  optimizer.<INJECTABLE>     numbers held in the optimizer state (optax.inject_hyperparams);
  model.*, problem.*, train.* initial values only (recurrent_scale, forget_bias, rho, ridge):
                             checked by `population.initial_state` (same parameter shapes,
                             the same traced loss as the first member).
Shape-changing axes (hidden size, cell type) and the data (task.*) need separate programs.
"""

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from seqlab import config as base
from seqlab.analysis import report
from seqlab.train import optim

MODES = ("grid", "zip")
# train.* fields the loop or the batches read: never the same program for two values.
LOOP_FIELDS = frozenset({
    "batch_size", "num_steps", "log_every", "eval_every", "eval_batches", "checkpoint_every",
    "nonfinite", "seq_len", "tbptt_k2", "pad_multiple",
})


def axes(config: ml_collections.ConfigDict) -> list[tuple[str, tuple]]:
  """config.sweep.axes as [(path, values)], checked: names, non-empty value tuples, no repeats."""
  if isinstance(config.sweep.axes, str):  # a command-line value that was no Python literal
    raise ValueError(f"config.sweep.axes must be a tuple of (path, values) pairs, written as a "
                     f"Python literal; got the string {config.sweep.axes!r}")
  out = []
  for item in config.sweep.axes:
    if (len(item) != 2 or not isinstance(item[0], str) or not isinstance(item[1], Sequence)
        or isinstance(item[1], str)):
      raise ValueError(f"config.sweep.axes entries are (path, (values, ...)); got {item!r}")
    path, values = item[0], tuple(item[1])
    if not values:
      raise ValueError(f"config.sweep.axes: axis {path!r} has no values")
    if path in dict(out):
      raise ValueError(f"config.sweep.axes: axis {path!r} appears twice")
    axis_kind(path)
    out.append((path, values))
  return out


def members(config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
  """Each member's {path: value}: every combination (grid, first axis slowest) or zipped."""
  pairs = axes(config)
  mode = config.sweep.mode
  if mode not in MODES:
    raise ValueError(f"unknown config.sweep.mode {mode!r}; known: {list(MODES)}")
  if not pairs:
    return [{}]  # the config itself
  names = [p for p, _ in pairs]
  if mode == "grid":
    combos = itertools.product(*(v for _, v in pairs))
  else:
    lengths = {p: len(v) for p, v in pairs}
    if len(set(lengths.values())) > 1:
      raise ValueError(f"config.sweep.mode='zip' needs axes of one length; got {lengths}")
    combos = zip(*(v for _, v in pairs), strict=True)
  return [dict(zip(names, combo, strict=True)) for combo in combos]


def axis_kind(path: str) -> str:
  """'seed', 'optimizer' (an injected number) or 'init' (initial values); raises otherwise."""
  section, _, field = path.partition(".")
  if path == "seed":
    return "seed"
  if section == "optimizer" and field in optim.INJECTABLE:
    return "optimizer"
  if field and (section in ("model", "problem") or section == "train" and field not in LOOP_FIELDS):
    return "init"
  if section == "optimizer":
    why = f"only {list(optim.INJECTABLE)} can differ inside one program"
  elif section == "task":
    why = "it changes the data; run one program per value"
  elif section == "train":
    why = "the loop or the batches read it; run one program per value"
  else:
    why = "sweepable: seed, optimizer.<number>, model.*, problem.*, train.* (initial values only)"
  raise ValueError(f"config.sweep axis {path!r} cannot be swept in one program: {why}")


def check_range(where: str, kind: str, args: tuple) -> None:
  """Raise naming `where` unless `args` fit `kind`: low < high for log_uniform (low > 0),
  uniform and int (integers); one non-empty tuple of values for choice (a search's and a
  population-based training's hyperparameters)."""
  if kind == "choice":
    if len(args) != 1 or not isinstance(args[0], Sequence) or isinstance(args[0], str) \
        or not args[0]:
      raise ValueError(f"{where}: give one non-empty tuple of choices; got {args!r}")
    return
  if len(args) != 2 or not all(isinstance(a, int | float) for a in args) or args[0] >= args[1]:
    raise ValueError(f"{where}: give low < high; got {args!r}")
  if kind == "int" and not all(isinstance(a, int) for a in args):
    raise ValueError(f"{where}: bounds must be integers; got {args!r}")
  if kind == "log_uniform" and args[0] <= 0:
    raise ValueError(f"{where}: a log-uniform range needs low > 0; got {args!r}")


def member_config(
    config: ml_collections.ConfigDict, overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
  """The config of one member run alone: `config` with `overrides` set and no sweep axes."""
  c = config.copy_and_resolve_references()
  c.unlock()
  for path, value in overrides.items():
    try:
      base.set_field(c, path, value)
    except ValueError as error:
      raise ValueError(f"config.sweep axis {error}") from None
  c.sweep.axes = ()
  c.lock()
  return c


def label(member: Mapping[str, Any]) -> str:
  """'learning_rate=0.001, seed=2' (the last part of each path)."""
  return ", ".join(f"{p.rsplit('.', 1)[-1]}={v:g}" if isinstance(v, float)
                   else f"{p.rsplit('.', 1)[-1]}={v}" for p, v in member.items())


def table(members: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
          digits: int = 4) -> str:
  """A markdown table: one row per member, its axis values then `rows[i]`'s columns."""
  axes = list(members[0])
  columns = list(rows[0]) if rows else []
  body = [[m[a] for a in axes] + [r[c] for c in columns]
          for m, r in zip(members, rows, strict=True)]
  return report.markdown_table(axes + columns, body, digits)
