"""`TDNN`: a time-delay neural network, the feed-forward contrast to recurrence.

Notes 003 ("TDNN"): a feed-forward net whose response at time t depends on a window of
previous inputs only (an RNN's depends on its previous outputs too). Layer l is a causal
1-D convolution over a window of D_l steps:

    h^l_t = f(b^l + sum_{d=0}^{D_l - 1} h^{l-1}_{t-d} U^l_d)     (h^0 = x, zero before t = 0)
    y_t   = c + h^L_t V

so y_t depends only on x_{t-R+1..t}, R = 1 + sum_l (D_l - 1) (the receptive field).
Layer l is `nn.Conv` "U_l" with left padding D_l - 1; its kernel [D_l, I, H] stores
U^l_d at index D_l - 1 - d (kernel[k] multiplies the input at t - (D_l - 1) + k).
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqlab import unroll
from seqlab.cells import common

Array = jax.Array


class TDNN(nn.Module):
  """Time-delay network: stacked causal convolutions, y_t a function of x_{t-R+1..t}.

  Attributes:
    features: hidden sizes H_l, one per layer.
    output_size: O, the size of y_t (a linear output layer).
    window: D, one for all layers or one per layer.
    activation: f (a `cells.common` activation name).
    vocab_size: when set, inputs are token ids embedded by an `nn.Embed`.
    embed_size: the embedding size (defaults to features[0]).
    dtype: computation dtype (params are stored in float32).
  """

  features: Sequence[int]
  output_size: int
  window: int | Sequence[int] = 3
  activation: str = "tanh"
  vocab_size: int | None = None
  embed_size: int | None = None
  dtype: Any = jnp.float32

  @property
  def windows(self) -> tuple[int, ...]:
    """D_l for every layer."""
    if isinstance(self.window, int):
      return (self.window,) * len(self.features)
    return tuple(self.window)

  @property
  def receptive_field(self) -> int:
    """R = 1 + sum_l (D_l - 1): y_t depends on x_{t-R+1..t}."""
    return 1 + sum(D - 1 for D in self.windows)

  @nn.compact
  def __call__(self, xs: Array, lengths: Array | None = None) -> Array:
    """y [B, T, O] from xs [B, T, F] (or token ids [B, T]); zero on padded steps."""
    if self.vocab_size is not None:
      xs = nn.Embed(self.vocab_size, self.embed_size or self.features[0], dtype=self.dtype)(xs)
    f = common.get_activation(self.activation)
    h = xs.astype(self.dtype)
    for l, (size, D) in enumerate(zip(self.features, self.windows, strict=True)):
      conv = nn.Conv(size, kernel_size=(D,), padding=((D - 1, 0),), dtype=self.dtype,
                     name=f"U_{l}")
      h = f(conv(h))
    y = nn.Dense(self.output_size, dtype=self.dtype, name="V")(h)
    if lengths is not None:
      y = jnp.where(unroll.length_mask(lengths, y.shape[1])[..., None], y, 0)
    return y
