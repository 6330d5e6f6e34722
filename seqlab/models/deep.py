"""`DeepRNN`: deep recurrent networks, stacked and with deep input, transition and output maps.

After notes 000 ("deep recurrent networks"), Pascanu et al. 2014 ("How to construct deep
recurrent neural networks") and Graves 2013.

Depth in three places, each optional:
- stacked layers: h^l_t = cell_l(h^l_{t-1}, h^{l-1}_t), h^0_t = x_t;
- deep input-to-hidden: x_t -> MLP -> the first layer;
- deep hidden-to-hidden (deep transition): h^l_t = cell_l(MLP_l(h^l_{t-1}), x^l_t),
  an MLP between consecutive states of a layer; with a shortcut the cell reads
  h^l_{t-1} + MLP_l(h^l_{t-1}), so one path from h_{t-1} to h_t skips the MLP (Pascanu
  et al.'s DT(S)-RNN, its shortcut weight shared with the cell's W) and the path through
  time is no longer than a shallow RNN's;
- deep hidden-to-output: o_t = MLP_out(h^L_t) before the output layer o = c + V h.
Skip connections across layers (Graves 2013): every layer also reads x_t and the output
reads every layer. Residual connections: h^l_t + h^{l-1}_t where the sizes match.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqlab import cells, unroll
from seqlab.models.recurrent import Recurrent, cast_floats

Array = jax.Array


def mlp(params: Sequence[dict], h: Array) -> Array:
  """h -> tanh(h W_1 + b_1) -> ... -> tanh(. W_k + b_k): a pure tanh MLP."""
  for layer in params:
    h = jnp.tanh(h @ layer["W"] + layer["b"])
  return h


def init_mlp(key: Array, sizes: Sequence[int]) -> list[dict]:
  """Xavier-uniform weights and zero biases for sizes[0] -> sizes[1] -> ... ."""
  keys = jax.random.split(key, max(len(sizes) - 1, 1))
  init = nn.initializers.xavier_uniform()
  return [
      {"W": init(k, (n_in, n_out)), "b": jnp.zeros((n_out,))}
      for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=False)
  ]


def map_hidden(carry: Any, fn) -> Any:
  """Apply fn to the hidden state h of a carry (an array, or a state with an `h` field)."""
  if isinstance(carry, jax.Array):
    return fn(carry)
  if hasattr(carry, "h") and hasattr(carry, "_replace"):
    return carry._replace(h=fn(carry.h))
  raise ValueError(f"deep transitions need a carry with a hidden state h, got {type(carry)}")


def transition_step(cell: cells.Cell, shortcut: bool = False):
  """The deep-transition step: h_{t-1} -> MLP (+ h_{t-1} with the shortcut) -> cell.step.

  Params {"cell", "mlp"}.
  """
  def transition(params, h):
    return h + mlp(params["mlp"], h) if shortcut else mlp(params["mlp"], h)

  def step(params, carry, x):
    carry = map_hidden(carry, lambda h: transition(params, h))
    return cell.step(params["cell"], carry, x)
  return step


class DeepTransition(nn.Module):
  """One recurrent layer whose state passes through an MLP (and a shortcut) between steps."""

  cell: str
  hidden_size: int
  mlp_sizes: Sequence[int]
  cell_options: Mapping[str, Any] | None = None
  shortcut: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, xs: Array, lengths: Array | None = None) -> Array:
    cell = cells.make(self.cell, **dict(self.cell_options or {}))
    sizes = [self.hidden_size, *self.mlp_sizes, self.hidden_size]

    def init(key):
      k_cell, k_mlp = jax.random.split(key)
      return {"cell": cell.init(k_cell, xs.shape[-1], self.hidden_size),
              "mlp": init_mlp(k_mlp, sizes)}

    params = cast_floats(self.param("transition", init), self.dtype)
    carry = cell.initial_carry(params["cell"], xs.shape[:1])
    step = transition_step(cell, self.shortcut)
    _, hs = unroll.scan(step, params, carry, xs.astype(self.dtype), lengths)
    return hs


class DeepRNN(nn.Module):
  """Stacked recurrent layers with optional deep transitions, skips and residuals."""

  cell: str
  hidden_sizes: Sequence[int]
  output_size: int
  cell_options: Mapping[str, Any] | None = None
  input_mlp: Sequence[int] = ()
  transition_mlp: Sequence[int] = ()
  transition_shortcut: bool = False
  output_mlp: Sequence[int] = ()
  skip: bool = False
  residual: bool = False
  vocab_size: int | None = None
  embed_size: int = 32
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: Array, lengths: Array | None = None) -> Array:
    """Logits o_t [B, T, O]."""
    if self.transition_shortcut and not self.transition_mlp:
      raise ValueError("transition_shortcut needs a transition_mlp to go around")
    xs = inputs
    if self.vocab_size is not None:
      xs = nn.Embed(self.vocab_size, self.embed_size, dtype=self.dtype, name="embed")(xs)
    xs = xs.astype(self.dtype)
    for k, size in enumerate(self.input_mlp):
      xs = jnp.tanh(nn.Dense(size, dtype=self.dtype, name=f"input_mlp_{k}")(xs))
    below, layer_outputs = xs, []
    for l, size in enumerate(self.hidden_sizes):
      layer_in = below if (l == 0 or not self.skip) else jnp.concatenate([below, xs], -1)
      if self.transition_mlp:
        hs = DeepTransition(self.cell, size, self.transition_mlp, self.cell_options,
                            self.transition_shortcut, self.dtype,
                            name=f"layer_{l}")(layer_in, lengths)
      else:
        _, hs = Recurrent(self.cell, size, self.cell_options, dtype=self.dtype,
                          name=f"layer_{l}")(layer_in, lengths)
      if self.residual and l > 0 and below.shape[-1] == size:
        hs = hs + below
      layer_outputs.append(hs)
      below = hs
    top = jnp.concatenate(layer_outputs, -1) if self.skip else below
    for k, size in enumerate(self.output_mlp):
      top = jnp.tanh(nn.Dense(size, dtype=self.dtype, name=f"output_mlp_{k}")(top))
    return nn.Dense(self.output_size, dtype=self.dtype, name="V")(top)
