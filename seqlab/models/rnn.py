"""`RNN`: any cell with an output layer, in the three design patterns of the course.

    h_t = cell(h_{t-1}, x_t),     o_t = c + V h_t

- many_to_many: an output at every step, o_1..o_T (tagging, language modelling);
- many_to_one: one output after reading the whole sequence, o at the last real step
  (sequence classification);
- one_to_many: a fixed context vector x fed at every step, optionally with the
  previous output token y_{t-1} (teacher forced in training; decoded by `seqlab.decode`
  through `start(context=x)` and `step`): captioning in miniature.

Token inputs (int ids [B, T]) go through an embedding when `vocab_size` is set.
"""

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqlab.models.recurrent import Recurrent

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
  backend: str = "auto"  # auto | scan | onednn | cudnn | parallel (see seqlab.unroll)
  parallel: Mapping[str, Any] | None = None  # backend=parallel's solver options

  def setup(self):
    if self.pattern not in PATTERNS:
      raise ValueError(f"unknown RNN pattern {self.pattern!r}; known patterns: {list(PATTERNS)}")
    self.recurrent = Recurrent(
        self.cell, self.hidden_size, self.cell_options, unroll=self.unroll, dtype=self.dtype,
        backend=self.backend, parallel=self.parallel,
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

  def run(self, carry: Any, inputs: Array) -> tuple[Any, Array]:
    """(final carry, logits [B, T, O]) of many_to_many from `carry`: `step` over the inputs
    at once, the recurrent layer through its backend (truncated BPTT's whole window)."""
    if self.pattern != "many_to_many":
      raise ValueError(f"RNN.run drives many_to_many, not {self.pattern!r}")
    carry, hs = self.recurrent(self._inputs(inputs), carry=carry)
    return carry, self.output(hs)

  def start(self, batch_size: int | None = None, context: Array | None = None) -> Any:
    """The carry before the first step: h_0, and for one_to_many the context [B, F] it reads."""
    if self.pattern == "one_to_many":
      if context is None:
        raise ValueError("a one_to_many RNN starts from its context vector [B, F]")
      return (self.recurrent.initial_carry(context.shape[0]), context.astype(self.dtype))
    return self.recurrent.initial_carry(batch_size)

  def step(self, carry: Any, inputs: Array) -> tuple[Any, Array]:
    """One step (h_{t-1}, x_t or token) -> (h_t, o_t); one_to_many reads [context; E y_{t-1}].

    Running `step` over a sequence equals `__call__` on it (teacher-forced for one_to_many);
    truncated BPTT, streams and `seqlab.decode` drive the model one step at a time with it.
    """
    if self.pattern == "one_to_many":
      h, context = carry
      h, y = self.recurrent.step(h, jnp.concatenate([context, self.embed(inputs)], axis=-1))
      return (h, context), self.output(y)
    carry, y = self.recurrent.step(carry, self._inputs(inputs))
    return carry, self.output(y)
