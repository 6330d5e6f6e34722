"""`JordanRNN`: the output recurs (notes 000/003: output recurrence and teacher forcing).

    h_t = f(x_t @ U + y_{t-1} @ W + b),    y_t = g(h_t @ V + c)

Trained with teacher forcing (y_{t-1} := the target y*_{t-1}, so the steps decouple),
run free (its own y_{t-1} fed back), or in between with scheduled sampling: each step
of each sequence takes the target with probability `teacher_prob` (Bengio et al.
2015), the coin flips drawn from an explicit rng and scanned in as inputs.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqlab import unroll
from seqlab.cells.jordan import TeacherForced
from seqlab.models.recurrent import Recurrent

Array = jax.Array


class JordanRNN(nn.Module):
  """A Jordan network; `__call__` returns the outputs y_1..y_T [B, T, O]."""

  hidden_size: int
  output_size: int
  activation: str = "tanh"
  output_activation: str = "identity"
  dtype: Any = jnp.float32

  def setup(self):
    options = {"output_size": self.output_size, "activation": self.activation,
               "output_activation": self.output_activation}
    self.jordan = Recurrent("jordan", self.hidden_size, options, dtype=self.dtype)

  def __call__(
      self,
      xs: Array,
      targets: Array | None = None,
      teacher_prob: float = 1.0,
      rng: Array | None = None,
      lengths: Array | None = None,
  ) -> Array:
    """Free-running without targets; teacher forcing with them (scheduled if teacher_prob < 1)."""
    if targets is None:
      _, ys = self.jordan(xs, lengths)
      return ys
    use_teacher = None
    if teacher_prob < 1.0:
      if rng is None:
        raise ValueError("scheduled sampling (teacher_prob < 1) needs an rng")
      use_teacher = jax.random.bernoulli(rng, teacher_prob, xs.shape[:2])
    _, ys = self.jordan(TeacherForced(xs, unroll.shift_right(targets), use_teacher), lengths)
    return ys

  def start(self, batch_size: int) -> Array:
    """The carry before the first step: y_0 = 0 [B, O]."""
    return self.jordan.initial_carry(batch_size)

  def step(self, carry: Array, x: Array) -> tuple[Array, Array]:
    """(y_{t-1}, x_t) -> (y_t, y_t): the free-running step; over xs it equals `__call__(xs)`."""
    return self.jordan.step(carry, x)
