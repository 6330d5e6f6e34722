"""A cell's carry as one state vector s_t, the variable the Jacobians are taken in.

The notes write the recurrence as s_t = f(s_{t-1}, x_t; theta). For an Elman or GRU
cell s_t = h_t; for the LSTM the carry is the pair (h_t, c_t), so the state vector is
their concatenation s_t = [h_t, c_t] (leaf order of the carry's pytree). Leaves that
are not floating point (the clockwork cell's step counter) are part of the carry but
not of the state: they are held fixed when differentiating.

The *hidden block* is the part of s_t that is the hidden state h_t: the leaf named
`h` for NamedTuple carries (LSTM, clockwork), the whole state otherwise (a delayed
cell's state is its whole history h_{t-1..t-d}; a Jordan cell's is y_{t-1}).
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _is_float(leaf: Any) -> bool:
  """True for floating-point array leaves: the ones that belong to the state."""
  return jnp.issubdtype(jnp.result_type(leaf), jnp.floating)


@dataclasses.dataclass(frozen=True)
class StateLayout:
  """Where each floating-point leaf of one (unbatched) carry sits in s_t."""

  treedef: Any
  shapes: tuple[tuple[int, ...], ...]
  is_state: tuple[bool, ...]
  offsets: tuple[int, ...]
  hidden: np.ndarray  # int indices of the hidden block h_t inside s_t

  @property
  def size(self) -> int:
    """n, the length of the state vector s_t."""
    return self.offsets[-1]

  def flatten(self, carry: Any) -> Array:
    """carry -> s_t [n]: the floating-point leaves raveled and concatenated."""
    leaves = jax.tree.leaves(carry)
    parts = [jnp.ravel(x) for x, keep in zip(leaves, self.is_state, strict=True) if keep]
    return jnp.concatenate(parts) if parts else jnp.zeros((0,))

  def unflatten(self, s: Array, like: Any) -> Any:
    """s_t [n] -> carry, taking the non-state leaves (e.g. counters) from `like`."""
    leaves = jax.tree.leaves(like)
    out, k = [], 0
    for leaf, shape, keep in zip(leaves, self.shapes, self.is_state, strict=True):
      if keep:
        out.append(s[self.offsets[k]:self.offsets[k + 1]].reshape(shape).astype(leaf.dtype))
        k += 1
      else:
        out.append(leaf)
    return jax.tree.unflatten(self.treedef, out)


def layout(carry: Any) -> StateLayout:
  """The StateLayout of one unbatched carry (leaves without the batch axis)."""
  leaves, treedef = jax.tree.flatten(carry)
  is_state = tuple(_is_float(x) for x in leaves)
  shapes = tuple(tuple(np.shape(x)) for x in leaves)
  sizes = [int(np.prod(s)) for s, keep in zip(shapes, is_state, strict=True) if keep]
  offsets = tuple(int(o) for o in np.concatenate([[0], np.cumsum(sizes)]))
  hidden = np.arange(offsets[-1])
  fields = getattr(carry, "_fields", ())
  if "h" in fields:  # NamedTuple carry: the h leaf's slice of s_t
    index = fields.index("h")
    k = sum(is_state[:index])
    hidden = np.arange(offsets[k], offsets[k + 1])
  return StateLayout(treedef, shapes, is_state, offsets, hidden)


def unbatched(carry: Any) -> Any:
  """The first example of a batched carry (leaves [B, ...] -> [...])."""
  return jax.tree.map(lambda x: x[0], carry)


def block_indices(state_layout: StateLayout, block: str) -> np.ndarray:
  """Indices of `block` in s_t: 'state' (all of s_t) or 'hidden' (the h_t block)."""
  if block == "state":
    return np.arange(state_layout.size)
  if block == "hidden":
    return state_layout.hidden
  raise ValueError(f"unknown block {block!r}; known blocks: ['hidden', 'state']")
