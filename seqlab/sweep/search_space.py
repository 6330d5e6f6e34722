"""The search space of an Optuna search, checked, and how a batch of trials splits into programs.

The space is `config.search.space`:

    config.search.space = (("optimizer.learning_rate", "log_uniform", 1e-4, 1e-2),
                           ("optimizer.clip_norm", "uniform", 0.5, 2.0),
                           ("model.hidden_size", "int", 16, 64),
                           ("model.cell", "choice", ("gru", "lstm")))

Trials whose values differ only where one program serves them all (seed, injectable optimizer
numbers, float initial values: `space.axis_kind`) train together; every other value (a hidden
size, a cell, a task option) is part of the program's key, one program per key.
"""

import dataclasses
from typing import Any

import ml_collections
import optuna

from seqlab.sweep import space

KINDS = ("log_uniform", "uniform", "int", "choice")


@dataclasses.dataclass(frozen=True)
class Param:
  """One searched field: its config path, kind and bounds (low, high) or choices."""

  path: str
  kind: str
  args: tuple

  def suggest(self, trial: optuna.Trial) -> Any:
    """The trial's value (a retried trial gets its stored one back)."""
    if self.kind == "choice":
      return trial.suggest_categorical(self.path, self.args[0])
    low, high = self.args
    if self.kind == "int":
      return trial.suggest_int(self.path, low, high)
    return trial.suggest_float(self.path, low, high, log=self.kind == "log_uniform")


def parse(config: ml_collections.ConfigDict) -> list[Param]:
  """config.search.space as Params; raises naming the entry that is malformed, of an unknown
  kind, or over a field the config does not declare."""
  params = []
  for entry in config.search.space:
    if isinstance(entry, str) or len(entry) < 2 or not isinstance(entry[0], str):
      raise ValueError(f"config.search.space entries are (path, kind, *args); got {entry!r}")
    path, kind, args = entry[0], entry[1], tuple(entry[2:])
    if kind not in KINDS:
      raise ValueError(f"config.search.space {path!r}: unknown kind {kind!r}; known: "
                       f"{list(KINDS)}")
    space.check_range(f"config.search.space {path!r} ({kind})", kind, args)
    if path in {p.path for p in params}:
      raise ValueError(f"config.search.space: {path!r} appears twice")
    params.append(Param(path, kind, args))
  if not params:
    raise ValueError("config.search.space is empty: declare the fields to search")
  # Each path names a declared field (set a sample value; member_config raises otherwise).
  space.member_config(config, {p.path: _sample(p) for p in params})
  return params


def _sample(p: Param) -> Any:
  return p.args[0][0] if p.kind == "choice" else p.args[0]


def shares_program(path: str, value: Any) -> bool:
  """Whether trials differing in `path` can train in one program (seed, an injected
  optimizer number, or a float initial value)."""
  try:
    kind = space.axis_kind(path)
  except ValueError:
    return False
  return kind in ("seed", "optimizer") or isinstance(value, float)


def program_key(values: dict[str, Any]) -> tuple:
  """The values that need a program of their own (shapes, cells, data, loop settings)."""
  return tuple(sorted((p, repr(v)) for p, v in values.items() if not shares_program(p, v)))
