"""Jordan network: the previous *output* recurs into the hidden units.

    h_t = f(x_t @ U + y_{t-1} @ W + b)
    y_t = g(h_t @ V + c)

Params: U [I, H], W [O, H] (output -> hidden), b [H], V [H, O], c [O]. The carry is
y_{t-1}. Under teacher forcing the step is given the previous *target* instead:
pass `TeacherForced(x_t, y_prev=target_{t-1})`; an optional boolean `use_teacher`
[batch] picks, per sequence, the target (True) or the model's own output (False),
which is what scheduled sampling needs. With every step teacher-forced, the time
steps no longer depend on each other and could run in parallel.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqlab.cells import common, initializers

Array = jax.Array


class TeacherForced(NamedTuple):
  """A Jordan step input carrying the previous target y*_{t-1} to feed back."""

  x: Array
  y_prev: Array
  use_teacher: Any = None  # optional bool [batch]; None means always the target


def init(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    output_size: int,
    recurrent_init: str = "xavier",
    recurrent_scale: float = 1.0,
    dtype=jnp.float32,
) -> dict:
  """U, V Xavier; W [O, H] by `recurrent_init` (a non-square W allows xavier only); b, c = 0."""
  k_u, k_w, k_v = jax.random.split(key, 3)
  init_W = initializers.get_initializer(recurrent_init)
  return {
      "U": initializers.xavier(k_u, (input_size, hidden_size), 1.0, dtype),
      "W": init_W(k_w, (output_size, hidden_size), recurrent_scale, dtype),
      "b": jnp.zeros((hidden_size,), dtype),
      "V": initializers.xavier(k_v, (hidden_size, output_size), 1.0, dtype),
      "c": jnp.zeros((output_size,), dtype),
  }


def initial_carry(params: dict, batch_shape: tuple[int, ...]) -> Array:
  """y_0 = 0."""
  return jnp.zeros((*batch_shape, params["V"].shape[1]), params["V"].dtype)


def step(
    params: dict,
    carry: Array,
    x: Array | TeacherForced,
    *,
    activation: str = "tanh",
    output_activation: str = "identity",
) -> tuple[Array, Array]:
  """(y_{t-1}, x_t) -> (y_t, y_t); with TeacherForced input, y_{t-1} is the target."""
  y_prev = carry
  if isinstance(x, TeacherForced):
    if x.use_teacher is None:
      y_prev = x.y_prev
    else:
      y_prev = jnp.where(x.use_teacher[..., None], x.y_prev, carry)
    x = x.x
  h = common.get_activation(activation)(x @ params["U"] + y_prev @ params["W"] + params["b"])
  y = common.get_activation(output_activation)(h @ params["V"] + params["c"])
  return y, y
