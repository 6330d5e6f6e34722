"""The decoder of `Seq2Seq`: one step of a pure cell, with attention and the softmax output.

One step is s_t = f(s_{t-1}, [E y_{t-1}; c_t; C]) over a pure cell, with attention over the
encoder's annotations and the softmax (and stop) output.

    alpha_t = softmax_j(score(s_{t-1}, a_j)),  c_t = sum_j alpha_tj a_j     (with attention)
    s_t = f_dec(s_{t-1}, [E_y y_{t-1}; c_t; C])  (c_t with attention, C with `condition`)
    P(y_t | y_<t, x) = softmax(o_t V + b_V),  o_t = [s_t; c_t]  (s_t without attention)
"""

from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqlab import cells
from seqlab.models.attention import Attention
from seqlab.models.recurrent import cast_floats

Array = jax.Array


class Memory(NamedTuple):
  """What every decoder step reads: annotations a, their attention keys, source mask, C."""

  annotations: Array  # a [B, T_x, H_enc]
  keys: Array | None  # Attention.keys(a), computed once; None without attention
  mask: Array  # [B, T_x], True on real source positions
  context: Array  # C [B, H_enc]


class DecoderState(NamedTuple):
  """The decoder's state between steps: the cell carry (s_t) and the memory."""

  carry: Any
  memory: Memory


class StepOutput(NamedTuple):
  """One decoder step's outputs: logits [B, V], stop logit w . s_t + b [B], alpha [B, T_x]."""

  logits: Array
  stop_logit: Array | None
  alpha: Array | None


def hidden(carry: Any) -> Array:
  """The state vector s of a cell carry: the LSTM's h, otherwise the carry itself."""
  return getattr(carry, "h", carry)


class Decoder(nn.Module):
  """One decoder step s_t = f(s_{t-1}, [E y_{t-1}; c_t; C]) with its softmax (and stop) output."""

  cell: str
  hidden_size: int
  vocab_size: int
  embed_size: int
  memory_size: int
  attention: str | None = None
  attention_size: int | None = None
  condition: bool = False
  init_decoder: str = "copy"
  stop_output: bool = False
  cell_options: Mapping[str, Any] | None = None
  dtype: Any = jnp.float32

  def make_cell(self) -> cells.Cell:
    """The pure decoder cell with its options bound."""
    return cells.make(self.cell, **dict(self.cell_options or {}))

  def setup(self):
    cell = self.make_cell()
    inputs = self.embed_size + self.memory_size * (bool(self.attention) + self.condition)
    self.cell_params = self.param("cell", lambda key: cell.init(key, inputs, self.hidden_size))
    self.embed = nn.Embed(self.vocab_size, self.embed_size, dtype=self.dtype)
    self.out = nn.Dense(self.vocab_size, dtype=self.dtype)
    if self.attention:
      self.attend = Attention(self.attention, self.hidden_size, self.attention_size, self.dtype)
    if self.stop_output:
      self.stop = nn.Dense(1, dtype=self.dtype)
    if self.init_decoder == "dense":
      carry = cell.initial_carry(self.cell_params, (1,))
      self.bridge = nn.Dense(sum(leaf.shape[-1] for leaf in jax.tree.leaves(carry)),
                             dtype=self.dtype)
    elif self.init_decoder not in ("copy", "zeros"):
      raise ValueError(f"unknown init_decoder {self.init_decoder!r}; known: copy, dense, zeros")

  def start(
      self, encoder_carry: Any, a: Array, mask: Array, context: Array | None = None
  ) -> DecoderState:
    """The state before the first step: s_0 from the encoder's final carry, and the memory.

    The context C is `context` when given, otherwise the encoder carry's state.
    """
    C = (hidden(encoder_carry) if context is None else context).astype(self.dtype)
    keys = self.attend.keys(a) if self.attention else None
    carry = self.make_cell().initial_carry(cast_floats(self.cell_params, self.dtype), (a.shape[0],))
    if self.init_decoder == "copy":
      shapes = lambda tree: jax.tree.map(jnp.shape, tree)
      if shapes(carry) != shapes(encoder_carry):
        raise ValueError(
            "init_decoder='copy' needs the encoder's carry shaped like the decoder's "
            f"({shapes(encoder_carry)} vs {shapes(carry)}); use 'dense' or 'zeros'"
        )
      carry = cast_floats(encoder_carry, self.dtype)
    elif self.init_decoder == "dense":
      leaves, tree = jax.tree.flatten(carry)
      splits = np.cumsum([leaf.shape[-1] for leaf in leaves])[:-1].tolist()
      carry = jax.tree.unflatten(tree, jnp.split(jnp.tanh(self.bridge(C)), splits, axis=-1))
    return DecoderState(carry, Memory(a, keys, mask, C))

  def __call__(self, state: DecoderState, y_prev: Array) -> tuple[DecoderState, StepOutput]:
    """(s_{t-1}, y_{t-1}) -> (s_t, P(y_t | ...) as logits, stop logit, alpha_t)."""
    carry, memory = state
    x, c, alpha = [self.embed(y_prev)], None, None
    if self.attention:
      c, alpha = self.attend(hidden(carry), memory.keys, memory.annotations, memory.mask)
      x.append(c)
    if self.condition:
      x.append(memory.context)
    params = cast_floats(self.cell_params, self.dtype)
    carry, _ = self.make_cell().step(params, carry, jnp.concatenate(x, axis=-1))
    s = hidden(carry)
    logits = self.out(s if c is None else jnp.concatenate([s, c], axis=-1))
    stop = self.stop(s)[..., 0] if self.stop_output else None
    return DecoderState(carry, memory), StepOutput(logits, stop, alpha)
