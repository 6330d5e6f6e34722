"""`GridRNN`: a two-dimensional (multi-dimensional) RNN classifying images in 1 or 4 sweeps.

Notes 000: "the concept of BiRNN can also be extended to multi-dimensional data, like images
processed in multiple directions"; Graves, Fernandez & Schmidhuber 2007.

Every position (i, j) reads its pixel and the states of its upper and left neighbours:

    h_ij = f(x_ij U + h_{i-1,j} W_up + h_{i,j-1} W_left + b),   h_{-1,j} = h_{i,-1} = 0

which is the Elman step with h_{t-1} replaced by [h_{i,j-1}; h_{i-1,j}] and W = [W_left;
W_up] ([2H, H]), so it calls `cells.elman.step`. The sweep is a scan over rows whose carry
is the row above; inside it a scan over columns whose carry is the left neighbour. The
state at the last position has seen the whole image. With four directions (Graves et
al.'s four sweeps, each starting from another corner) four grids with their own params run
over the image flipped vertically and/or horizontally, and the classifier reads every
sweep's final state:

    o = c + V [h^1_last; ...; h^D_last]

Images are [B, rows, cols] (one channel) or [B, rows, cols, channels].
Params: "sweep_<d>" = the Elman params {U [C, H], W [2H, H], b [H]}, "V" = `nn.Dense`.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqlab.cells import elman, initializers
from seqlab.models.recurrent import cast_floats

Array = jax.Array

# (flip rows, flip columns) of each sweep: from the top left, top right, bottom left, bottom right.
DIRECTIONS = ((False, False), (False, True), (True, False), (True, True))


def init(key: Array, channels: int, hidden_size: int) -> dict:
  """U [C, H] Xavier-uniform, W = [W_left; W_up] two orthogonal [H, H] blocks, b = 0."""
  k_u, k_left, k_up = jax.random.split(key, 3)
  H = hidden_size
  return {
      "U": initializers.xavier(k_u, (channels, H)),
      "W": jnp.concatenate([initializers.orthogonal(k, (H, H)) for k in (k_left, k_up)], 0),
      "b": jnp.zeros((H,)),
  }


def grid_scan(params: dict, images: Array, activation: str = "tanh") -> Array:
  """All states h [B, rows, cols, H] of one top-left-to-bottom-right sweep over [B, r, c, C]."""
  B, _, cols, _ = images.shape
  H = params["W"].shape[-1]

  def row(h_above, x_row):
    """One row i: x_row [cols, B, C], h_above [cols, B, H] -> the row's states [cols, B, H]."""
    def position(h_left, inputs):
      x, h_up = inputs
      h, _ = elman.step(params, jnp.concatenate([h_left, h_up], -1), x, activation=activation)
      return h, h

    _, h_row = jax.lax.scan(position, jnp.zeros((B, H), images.dtype), (x_row, h_above))
    return h_row, h_row

  pixels = jnp.transpose(images, (1, 2, 0, 3))  # [rows, cols, B, C]: scanned axes first
  _, hs = jax.lax.scan(row, jnp.zeros((cols, B, H), images.dtype), pixels)
  return jnp.transpose(hs, (2, 0, 1, 3))


def flip(images: Array, direction: tuple[bool, bool]) -> Array:
  """The image [B, r, c, ...] seen from the sweep's starting corner."""
  rows, cols = direction
  if rows:
    images = images[:, ::-1]
  if cols:
    images = images[:, :, ::-1]
  return images


class GridRNN(nn.Module):
  """A 2-D RNN classifying images from the final states of 1 or 4 directional sweeps.

  Attributes:
    hidden_size: H per sweep.
    output_size: size of o; None returns the concatenated final states [B, D*H].
    directions: 1 (from the top left) or 4 (from every corner).
    activation: f, a `cells.common` activation name.
    dtype: computation dtype (params are stored in float32 and cast).
  """

  hidden_size: int
  output_size: int | None = None
  directions: int = 1
  activation: str = "tanh"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: Array, lengths: Array | None = None) -> Array:
    """Logits o [B, output_size] for images [B, rows, cols(, channels)].

    `lengths` is accepted so that sequence-classification problems can pass the rows they
    count; an image has all of its rows, so it is not used.
    """
    del lengths
    if self.directions not in (1, 4):
      raise ValueError(f"GridRNN directions must be 1 or 4, got {self.directions}")
    if images.ndim == 3:
      images = images[..., None]
    images = images.astype(self.dtype)
    finals = []
    for d, direction in enumerate(DIRECTIONS[: self.directions]):
      params = self.param(f"sweep_{d}", init, images.shape[-1], self.hidden_size)
      params = cast_floats(params, self.dtype)
      hs = grid_scan(params, flip(images, direction), self.activation)
      finals.append(hs[:, -1, -1])
    top = jnp.concatenate(finals, -1)
    if self.output_size is None:
      return top
    return nn.Dense(self.output_size, dtype=self.dtype, name="V")(top)

