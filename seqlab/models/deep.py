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

  def _cell(self) -> cells.Cell:
    return cells.make(self.cell, **dict(self.cell_options or {}))

  @nn.compact
  def __call__(self, xs: Array, lengths: Array | None = None,
               carry: Any = None) -> tuple[Any, Array]:
    """(final carry, hidden states [B, T, H]) from `carry` (default h_0)."""
    cell = self._cell()
    sizes = [self.hidden_size, *self.mlp_sizes, self.hidden_size]

    def init(key):
      k_cell, k_mlp = jax.random.split(key)
      return {"cell": cell.init(k_cell, xs.shape[-1], self.hidden_size),
              "mlp": init_mlp(k_mlp, sizes)}

    params = cast_floats(self.param("transition", init), self.dtype)
    if carry is None:
      carry = cell.initial_carry(params["cell"], xs.shape[:1])
    step = transition_step(cell, self.shortcut)
    return unroll.scan(step, params, carry, xs.astype(self.dtype), lengths)

  def _params(self) -> Any:
    return cast_floats(self.get_variable("params", "transition"), self.dtype)

  def initial_carry(self, batch_size: int) -> Any:
    return self._cell().initial_carry(self._params()["cell"], (batch_size,))

  def step(self, carry: Any, x: Array) -> tuple[Any, Array]:
    """One step: running it over xs equals `__call__`."""
    return transition_step(self._cell(), self.shortcut)(self._params(), carry,
                                                        x.astype(self.dtype))


class DeepRNN(nn.Module):
  """Stacked recurrent layers with optional deep transitions, skips and residuals.

  Besides the full-sequence `__call__` it has the model step interface of `RNN`: `start`,
  `step` (one token through every layer) and `run` (a window from a carried state, each layer
  through its backend), so truncated BPTT, completion, beam search and sampling drive a
  stack as they drive one layer. The carry is the tuple of the layers' carries.
  """

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

  def setup(self):
    if self.transition_shortcut and not self.transition_mlp:
      raise ValueError("transition_shortcut needs a transition_mlp to go around")
    if self.vocab_size is not None:
      self.embed = nn.Embed(self.vocab_size, self.embed_size, dtype=self.dtype)
    for k, size in enumerate(self.input_mlp):
      setattr(self, f"input_mlp_{k}", nn.Dense(size, dtype=self.dtype))
    for l, size in enumerate(self.hidden_sizes):
      setattr(self, f"layer_{l}", (
          DeepTransition(self.cell, size, self.transition_mlp, self.cell_options,
                         self.transition_shortcut, self.dtype) if self.transition_mlp
          else Recurrent(self.cell, size, self.cell_options, dtype=self.dtype)))
    for k, size in enumerate(self.output_mlp):
      setattr(self, f"output_mlp_{k}", nn.Dense(size, dtype=self.dtype))
    self.V = nn.Dense(self.output_size, dtype=self.dtype)

  def _layers(self) -> list[nn.Module]:
    return [getattr(self, f"layer_{l}") for l in range(len(self.hidden_sizes))]

  def _inputs(self, inputs: Array) -> Array:
    """x_t: the embedded tokens (or the inputs), through the deep input MLP."""
    xs = self.embed(inputs) if self.vocab_size is not None else inputs
    xs = xs.astype(self.dtype)
    for k in range(len(self.input_mlp)):
      xs = jnp.tanh(getattr(self, f"input_mlp_{k}")(xs))
    return xs

  def _stack(self, xs: Array, run_layer) -> tuple[tuple, Array]:
    """Every layer over xs (its time axis, or one step): h^l = layer_l(h^{l-1}, and x with
    skips) (+ h^{l-1} with residuals); returns (the layers' carries, logits)."""
    below, outputs, carries = xs, [], []
    for l, (layer, size) in enumerate(zip(self._layers(), self.hidden_sizes, strict=True)):
      layer_in = below if (l == 0 or not self.skip) else jnp.concatenate([below, xs], -1)
      carry, hs = run_layer(l, layer, layer_in)
      if self.residual and l > 0 and below.shape[-1] == size:
        hs = hs + below
      carries.append(carry)
      outputs.append(hs)
      below = hs
    top = jnp.concatenate(outputs, -1) if self.skip else below
    for k in range(len(self.output_mlp)):
      top = jnp.tanh(getattr(self, f"output_mlp_{k}")(top))
    return tuple(carries), self.V(top)

  def __call__(self, inputs: Array, lengths: Array | None = None) -> Array:
    """Logits o_t [B, T, O]."""
    return self._stack(self._inputs(inputs),
                       lambda l, layer, xs: layer(xs, lengths))[1]

  def run(self, carry: tuple, inputs: Array) -> tuple[tuple, Array]:
    """(final carry, logits [B, T, O]) from `carry`: the window at once, layer by layer."""
    return self._stack(self._inputs(inputs),
                       lambda l, layer, xs: layer(xs, carry=carry[l]))

  def start(self, batch_size: int) -> tuple:
    """The carry before the first step: every layer's h_0."""
    return tuple(layer.initial_carry(batch_size) for layer in self._layers())

  def step(self, carry: tuple, inputs: Array) -> tuple[tuple, Array]:
    """One step (carries, x_t or token) -> (carries, o_t); over a sequence it equals
    `__call__`."""
    return self._stack(self._inputs(inputs), lambda l, layer, x: layer.step(carry[l], x))
