"""The plain scan backend, and the time-axis helpers every backend shares.

Unrolling a cell over time: the unfolded computational graph as `jax.lax.scan`.

    h_t = step(h_{t-1}, x_t; theta)   for t = 1..T, the same theta at every step

Public arrays are batch-major, xs: [batch, time, ...]. Differentiating through
`scan` with `jax.grad` is backpropagation through time; truncated BPTT lives in
`seqlab.tbptt`.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
Step = Callable[[Any, Any, Any], tuple[Any, Any]]


def time_major(tree: Any) -> Any:
  """[batch, time, ...] -> [time, batch, ...] for every leaf."""
  return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), tree)


batch_major = time_major  # the same swap, read in the other direction


def num_steps(xs: Any) -> int:
  """T, the time length of a batch-major input pytree."""
  return jax.tree.leaves(xs)[0].shape[1]


def length_mask(lengths: Array, max_length: int) -> Array:
  """mask[b, t] = t < lengths[b]: True on real steps, False on padding."""
  return jnp.arange(max_length)[None, :] < jnp.asarray(lengths)[:, None]


def shift_right(xs: Array, first: Any = 0) -> Array:
  """The previous step's value at every step: [first, x_1, ..., x_{T-1}] along time (axis 1);
  the teacher-forcing inputs <bos>, y_1 .. y_{T-1} of targets y_1 .. y_T."""
  return jnp.concatenate([jnp.full_like(xs[:, :1], first), xs[:, :-1]], axis=1)


def reverse_within_lengths(tree: Any, lengths: Array) -> Any:
  """Reverse each sequence's first lengths[b] steps in place; padding stays where it is.

  The permutation t -> lengths[b] - 1 - t (for t < lengths[b]) is its own inverse, so
  the same call maps outputs of the reversed sequences back to the original positions.
  """
  T = num_steps(tree)
  t = jnp.arange(T)[None, :]
  lengths = jnp.asarray(lengths)[:, None]
  index = jnp.where(t < lengths, lengths - 1 - t, t)  # [B, T]

  def gather(a):
    idx = index.reshape(index.shape + (1,) * (a.ndim - 2))
    return jnp.take_along_axis(a, idx, axis=1)

  return jax.tree.map(gather, tree)


def _where(mask: Array, new: Any, old: Any) -> Any:
  """Per batch row: new where mask, else old (mask: [B], leaves: [B, ...])."""
  return jax.tree.map(lambda n, o: jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o),
                      new, old)


def scan(
    step: Step,
    params: Any,
    carry: Any,
    xs: Any,
    lengths: Array | None = None,
    reverse: bool = False,
    unroll: int = 1,
    return_carries: bool = False,
):
  """`seqlab.unroll.scan` on the plain `jax.lax.scan` of `step` (same arguments)."""
  if lengths is not None and reverse:
    xs = reverse_within_lengths(xs, lengths)
  xs_t = time_major(xs)
  if lengths is None:
    def body(h, x_t):
      h, y = step(params, h, x_t)
      return h, (y, h) if return_carries else y
    scan_in = xs_t
    scan_reverse = reverse
  else:
    def body(h, inputs):
      x_t, real = inputs
      h_new, y = step(params, h, x_t)
      h = _where(real, h_new, h)
      y = _where(real, y, jax.tree.map(jnp.zeros_like, y))
      return h, (y, h) if return_carries else y
    scan_in = (xs_t, length_mask(lengths, num_steps(xs)).T)
    scan_reverse = False  # the reversal already happened, within each length

  carry, out = jax.lax.scan(body, carry, scan_in, reverse=scan_reverse, unroll=unroll)
  ys, carries = out if return_carries else (out, None)
  ys, carries = batch_major(ys), batch_major(carries)
  if lengths is not None and reverse:
    ys = reverse_within_lengths(ys, lengths)
    carries = reverse_within_lengths(carries, lengths) if return_carries else None
  return (carry, ys, carries) if return_carries else (carry, ys)
