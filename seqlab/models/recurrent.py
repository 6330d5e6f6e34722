"""`Recurrent`: one recurrent layer, a pure cell's params held by Flax and unrolled by scan.

The math stays in `seqlab.cells`; this module only owns the parameters (collection
"params", name "cell", the cell's own dict: U, W, b, ...) and calls `unroll.scan`.
"""

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqlab import cells, unroll

Array = jax.Array
BACKENDS = unroll.BACKENDS


def cast_floats(tree: Any, dtype: Any) -> Any:
  """Every floating-point leaf of `tree` in `dtype` (integer leaves untouched)."""
  def cast(a):
    return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a
  return jax.tree.map(cast, tree)


class Recurrent(nn.Module):
  """h_t = cell.step(h_{t-1}, x_t) over xs [B, T, F]; returns (final carry, outputs [B, T, H]).

  Attributes:
    cell: a name of `seqlab.cells.CELLS`.
    hidden_size: H.
    cell_options: keyword options of `cells.make` (e.g. {"peephole": True}).
    reverse: run from the last real step to the first (see `unroll.scan`).
    unroll: `lax.scan` unroll factor.
    dtype: computation dtype (params are stored in float32 and cast).
    backend: one of `unroll.BACKENDS`: "auto" (oneDNN on CPU where the cell allows, else the
      scan), "scan", "onednn" or "cudnn" (see `seqlab.unroll`); the first trace prints
      which one runs the layer; "parallel" unrolls by Newton's method on the trajectory.
    parallel: backend="parallel"'s solver options (solver, tol, max_iters, damping; see
      `seqlab.unroll.parallel.unroll`).
  """

  cell: str
  hidden_size: int
  cell_options: Mapping[str, Any] | None = None
  reverse: bool = False
  unroll: int = 1
  dtype: Any = jnp.float32
  backend: str = "auto"
  parallel: Mapping[str, Any] | None = None

  def make_cell(self) -> cells.Cell:
    """The pure cell with this layer's options bound."""
    return cells.make(self.cell, **dict(self.cell_options or {}))

  @nn.compact
  def __call__(
      self,
      xs: Any,
      lengths: Array | None = None,
      carry: Any = None,
      return_carries: bool = False,
  ):
    cell = self.make_cell()
    input_size = jax.tree.leaves(xs)[0].shape[-1]
    params = self.param("cell", lambda key: cell.init(key, input_size, self.hidden_size))
    params, xs = cast_floats(params, self.dtype), cast_floats(xs, self.dtype)
    if carry is None:
      carry = cell.initial_carry(params, jax.tree.leaves(xs)[0].shape[:1])
    carry = cast_floats(carry, self.dtype)
    name = f"layer {'/'.join(self.scope.path) or self.name} ({self.cell}, H={self.hidden_size})"
    unroll.say_once("seqlab: " + unroll.describe(name, cell.step, params, carry, xs, lengths,
                                                 self.reverse, return_carries, self.backend))
    return unroll.scan(cell.step, params, carry, xs, lengths, self.reverse, self.unroll,
                       return_carries, backend=self.backend,
                       parallel_options=dict(self.parallel or {}))

  def _params(self) -> Any:
    """The cell's params (created by `__call__` at init), in the computation dtype."""
    return cast_floats(self.get_variable("params", "cell"), self.dtype)

  def initial_carry(self, batch_size: int) -> Any:
    """h_0 for a batch of `batch_size` sequences."""
    return self.make_cell().initial_carry(self._params(), (batch_size,))

  def step(self, carry: Any, x: Array) -> tuple[Any, Array]:
    """One step h_t = cell.step(h_{t-1}, x_t): running it over xs equals `__call__`."""
    return self.make_cell().step(self._params(), carry, cast_floats(x, self.dtype))
