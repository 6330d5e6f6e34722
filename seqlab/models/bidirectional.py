"""`Bidirectional`: a forward and a backward recurrent sub-network (notes 000/002).

    h->_t = cell(h->_{t-1}, x_t)            reads x_1 .. x_t
    h<-_t = cell(h<-_{t+1}, x_t)            reads x_T .. x_t (each sequence within its length)
    o_t = c + V merge(h->_t, h<-_t)         merge = concat or sum

so o_t depends on the whole input, most on the inputs around t. Padding is exact: the
backward net starts at each sequence's own last real step.
"""

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqlab.models.recurrent import Recurrent

Array = jax.Array

MERGES = ("concat", "sum")


class Bidirectional(nn.Module):
  """Forward and backward `Recurrent` layers, merged; optional output layer o_t = c + V h_t."""

  cell: str
  hidden_size: int
  cell_options: Mapping[str, Any] | None = None
  merge: str = "concat"
  output_size: int | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, xs: Array, lengths: Array | None = None) -> Array:
    """The merged states [B, T, 2H or H], or the outputs [B, T, O] with output_size."""
    if self.merge not in MERGES:
      raise ValueError(f"unknown merge {self.merge!r}; known merges: {list(MERGES)}")
    layer = lambda reverse, name: Recurrent(
        self.cell, self.hidden_size, self.cell_options, reverse=reverse, dtype=self.dtype,
        name=name,
    )
    _, forward = layer(False, "forward")(xs, lengths)
    _, backward = layer(True, "backward")(xs, lengths)
    if self.merge == "concat":
      hs = jnp.concatenate([forward, backward], axis=-1)
    else:
      hs = forward + backward
    if self.output_size is None:
      return hs
    return nn.Dense(self.output_size, dtype=self.dtype, name="V")(hs)
