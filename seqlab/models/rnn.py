"""`RNN`: any cell with an output layer, in the three design patterns of the course.

    h_t = cell(h_{t-1}, x_t),     o_t = c + V h_t

- many_to_many: an output at every step, o_1..o_T (tagging, language modelling);
- many_to_one: one output after reading the whole sequence, o at the last real step
  (sequence classification);
- one_to_many: a fixed context vector x fed at every step, optionally with the
  previous output token y_{t-1} (teacher forced in training, its own greedy choice in
  `generate`): captioning in miniature.

Token inputs (int ids [B, T]) go through an embedding when `vocab_size` is set.
"""

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqlab.models.recurrent import Recurrent, cast_floats

Array = jax.Array

PATTERNS = ("many_to_many", "many_to_one", "one_to_many")


def last_real(ys: Array, lengths: Array | None) -> Array:
  """ys[b, lengths[b] - 1]: the output at each sequence's last real step ([B, T, H] -> [B, H])."""
  if lengths is None:
    return ys[:, -1]
  index = jnp.maximum(jnp.asarray(lengths) - 1, 0)
  return jnp.take_along_axis(ys, index[:, None, None], axis=1)[:, 0]


class RNN(nn.Module):
  """A recurrent net h_t = cell(h_{t-1}, x_t), o_t = c + V h_t, in one design pattern."""

  cell: str
  hidden_size: int
  output_size: int
  pattern: str = "many_to_many"
  cell_options: Mapping[str, Any] | None = None
  vocab_size: int | None = None  # token inputs: embed ids first
  embed_size: int = 32
  unroll: int = 1
  dtype: Any = jnp.float32
  backend: str = "scan"  # or "cudnn": the LSTM layer through cuDNN (see Recurrent)

  def setup(self):
    if self.pattern not in PATTERNS:
      raise ValueError(f"unknown RNN pattern {self.pattern!r}; known patterns: {list(PATTERNS)}")
    self.recurrent = Recurrent(
        self.cell, self.hidden_size, self.cell_options, unroll=self.unroll, dtype=self.dtype,
        backend=self.backend,
    )
    self.output = nn.Dense(self.output_size, dtype=self.dtype, name="V")
    if self.vocab_size is not None:
      self.embed = nn.Embed(self.vocab_size, self.embed_size, dtype=self.dtype)

  def _inputs(self, xs: Array) -> Array:
    return self.embed(xs) if self.vocab_size is not None else xs

  def __call__(
      self, inputs: Array, lengths: Array | None = None, prev_tokens: Array | None = None,
      num_steps: int | None = None,
  ) -> Array:
    """Logits: [B, T, O] (many_to_many, one_to_many) or [B, O] (many_to_one).

    For one_to_many, `inputs` is the context vector [B, F] and the steps are either the
    teacher-forced previous tokens `prev_tokens` [B, T] (needs vocab_size) or `num_steps`.
    """
    if self.pattern == "one_to_many":
      xs = self._context_inputs(inputs, prev_tokens, num_steps)
    else:
      xs = self._inputs(inputs)
    _, hs = self.recurrent(xs, lengths)
    if self.pattern == "many_to_one":
      return self.output(last_real(hs, lengths))
    return self.output(hs)

  def _context_inputs(self, context: Array, prev_tokens: Array | None, num_steps: int | None):
    """x_t = [context; embed(y_{t-1})] with teacher forcing, else the context at every step."""
    if prev_tokens is None:
      if num_steps is None:
        raise ValueError("one_to_many needs prev_tokens (teacher forcing) or num_steps")
      return jnp.repeat(context[:, None].astype(self.dtype), num_steps, axis=1)
    steps = prev_tokens.shape[1]
    tiled = jnp.repeat(context[:, None].astype(self.dtype), steps, axis=1)
    return jnp.concatenate([tiled, self.embed(prev_tokens)], axis=-1)

  def initial_carry(self, batch_size: int) -> Any:
    """h_0 for a batch (many_to_many models driven step by step)."""
    cell = self.recurrent.make_cell()
    return cell.initial_carry(self.recurrent.variables["params"]["cell"], (batch_size,))

  def step(self, carry: Any, inputs: Array) -> tuple[Any, Array]:
    """One step of a many_to_many model: (h_{t-1}, x_t or token_t) -> (h_t, o_t).

    Running `step` over a sequence equals `__call__` on it; it lets truncated BPTT,
    streams and decoders drive the model one step at a time.
    """
    cell = self.recurrent.make_cell()
    params = cast_floats(self.recurrent.variables["params"]["cell"], self.dtype)
    x = self._inputs(inputs).astype(self.dtype)
    carry, y = cell.step(params, carry, x)
    return carry, self.output(y)

  def generate(self, context: Array, bos_id: int, num_steps: int) -> Array:
    """Greedy one_to_many decoding: y_t = argmax o_t, fed back as y_{t-1} at the next step."""
    cell = self.recurrent.make_cell()
    params = cast_floats(self.recurrent.variables["params"]["cell"], self.dtype)

    def body(carry, _):
      h, prev = carry
      x = jnp.concatenate([context.astype(self.dtype), self.embed(prev)], axis=-1)
      h, y = cell.step(params, h, x)
      token = jnp.argmax(self.output(y), axis=-1)
      return (h, token), token

    h0 = cell.initial_carry(params, context.shape[:1])
    bos = jnp.full(context.shape[:1], bos_id, jnp.int32)
    _, tokens = jax.lax.scan(body, (h0, bos), None, length=num_steps)
    return tokens.T
