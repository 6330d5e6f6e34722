"""Skip connections through time: recurrence from h_{t-d} as well as h_{t-1}.

    h_t = f(x_t @ U + h_{t-1} @ W + h_{t-d} @ W_d + b)

(notes 000, "multiple timescales": a delay-d connection lets gradients cross T steps in
about T/d multiplications instead of T). The carry is the last d states,
`history[..., k, :] = h_{t-1-k}`, so the carry length is the `delay` option.
Params: U [I, H], W [H, H], W_d [H, H], b [H].
"""

import jax
import jax.numpy as jnp

from seqlab.cells import common, elman, initializers

Array = jax.Array


def init(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    recurrent_init: str = "orthogonal",
    recurrent_scale: float = 1.0,
    dtype=jnp.float32,
) -> dict:
  """Elman weights plus W_d drawn like W."""
  k_elman, k_d = jax.random.split(key)
  params = elman.init(
      k_elman, input_size, hidden_size, recurrent_init=recurrent_init,
      recurrent_scale=recurrent_scale, dtype=dtype,
  )
  params["W_d"] = initializers.recurrent_blocks(
      k_d, hidden_size, 1, recurrent_init, recurrent_scale, dtype
  )
  return params


def initial_carry(params: dict, batch_shape: tuple[int, ...], *, delay: int = 2) -> Array:
  """h_0 = h_{-1} = ... = h_{1-d} = 0, as history [*batch, d, H]."""
  if delay < 1:
    raise ValueError(f"delay must be >= 1, got {delay}")
  return jnp.zeros((*batch_shape, delay, params["W"].shape[0]), params["W"].dtype)


def step(params: dict, carry: Array, x: Array, *, activation: str = "tanh"):
  """(h_{t-1..t-d}, x_t) -> (h_{t..t-d+1}, h_t)."""
  h_prev, h_delayed = carry[..., 0, :], carry[..., -1, :]
  a = elman.project(params, x) + h_prev @ params["W"] + h_delayed @ params["W_d"]
  h = common.get_activation(activation)(a)
  history = jnp.concatenate([h[..., None, :], carry[..., :-1, :]], axis=-2)
  return history, h
