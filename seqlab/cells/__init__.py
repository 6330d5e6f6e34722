"""Recurrent cells as pure functions, and the CELLS registry.

Every family module exposes

    init(key, input_size, hidden_size, **options) -> params   (a dict of arrays)
    initial_carry(params, batch_shape) -> carry
    step(params, carry, x, **options) -> (carry, y)

Options that add or remove parameters (peephole weights, a GRU's torch-style bias,
learned leak rates, layer-norm gains) are `init` options, and `step` reads them back
from the params, so params and step can never disagree. Options that change the
computation without parameters (an activation, a fixed leak rate) are `step`
options; options that shape the carry (a delay's history length) go to
`initial_carry`. `make(name, **options)` binds them all once and checks every name:

    cell = cells.make("lstm", peephole=True)
    params = cell.init(key, input_size, hidden_size)
    carry, y = cell.step(params, cell.initial_carry(params, (batch,)), x)
"""

import dataclasses
import functools
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

from seqlab.cells import clockwork, delayed, elman, esn, gru, jordan, leaky, lstm

CELLS: dict[str, ModuleType] = {
    "elman": elman,
    "jordan": jordan,
    "lstm": lstm,
    "gru": gru,
    "leaky": leaky,
    "esn": esn,
    "delayed": delayed,
    "clockwork": clockwork,
}


@dataclasses.dataclass(frozen=True)
class Cell:
  """A cell family with its options bound: init(key, I, H), initial_carry, step."""

  name: str
  options: tuple[tuple[str, Any], ...]
  init: Callable[..., dict]
  initial_carry: Callable[..., Any]
  step: Callable[..., tuple[Any, Any]]


def get_family(name: str) -> ModuleType:
  """The cell family module registered as `name`; raises listing the known names."""
  try:
    return CELLS[name]
  except KeyError:
    raise ValueError(f"unknown cell {name!r}; known cells: {sorted(CELLS)}") from None


def _keyword_options(fn: Callable) -> dict[str, inspect.Parameter]:
  """The keyword-only parameters of `fn`: the options it takes."""
  params = inspect.signature(fn).parameters.values()
  return {p.name: p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def options_of(name: str) -> dict[str, Any]:
  """Every option of cell family `name` (init, step and carry options) with its default;
  a required option without default gets None. The dtype is the model's, not an option."""
  family = get_family(name)
  out = {}
  for fn in (family.init, family.step, family.initial_carry):
    for key, p in _keyword_options(fn).items():
      if key != "dtype":
        out[key] = None if p.default is inspect.Parameter.empty else p.default
  return out


def make(name: str, **options: Any) -> Cell:
  """The cell `name` with `options` bound to the init and step functions that take them."""
  family = get_family(name)
  init_opts, step_opts = _keyword_options(family.init), _keyword_options(family.step)
  carry_opts = _keyword_options(family.initial_carry)
  known = set(init_opts) | set(step_opts) | set(carry_opts)
  unknown = sorted(set(options) - known)
  if unknown:
    raise ValueError(
        f"unknown option(s) {unknown} for cell {name!r}; its options are: {sorted(known)}"
    )
  missing = sorted(
      k for k, p in init_opts.items() if p.default is inspect.Parameter.empty and k not in options
  )
  if missing:
    raise ValueError(f"cell {name!r} needs option(s) {missing}")
  return Cell(
      name=name,
      options=tuple(sorted(options.items())),
      init=functools.partial(family.init, **{k: v for k, v in options.items() if k in init_opts}),
      initial_carry=functools.partial(
          family.initial_carry, **{k: v for k, v in options.items() if k in carry_opts}
      ),
      step=functools.partial(family.step, **{k: v for k, v in options.items() if k in step_opts}),
  )


__all__ = [
    "CELLS", "Cell", "get_family", "make", "options_of",
    "clockwork", "delayed", "elman", "esn", "gru", "jordan", "leaky", "lstm",
]
