"""Elman (vanilla) RNN: the hidden state recurs.

    a_t = b + W h_{t-1} + U x_t          (row-vector code: x_t @ U + h_{t-1} @ W + b)
    h_t = f(a_t),   f in {tanh, relu, sigmoid}

The cell output is h_t; the output layer o_t = c + V h_t belongs to the model.
Params: U [I, H], W [H, H], b [H] (absent when use_bias=False).
"""

import jax
import jax.numpy as jnp

from seqlab.cells import common, initializers

Array = jax.Array


def init(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    use_bias: bool = True,
    recurrent_init: str = "orthogonal",
    recurrent_scale: float = 1.0,
    dtype=jnp.float32,
) -> dict:
  """U Xavier-uniform; W by `recurrent_init` (identity + relu = IRNN); b = 0."""
  k_u, k_w = jax.random.split(key)
  params = {
      "U": initializers.xavier(k_u, (input_size, hidden_size), 1.0, dtype),
      "W": initializers.recurrent_blocks(
          k_w, hidden_size, 1, recurrent_init, recurrent_scale, dtype
      ),
  }
  if use_bias:
    params["b"] = jnp.zeros((hidden_size,), dtype)
  return params


def initial_carry(params: dict, batch_shape: tuple[int, ...]) -> Array:
  """h_0 = 0."""
  return common.zeros_carry(params, batch_shape, params["W"].shape[0])


def project(params: dict, x: Array) -> Array:
  """The input part of a_t: x_t @ U + b (hoistable out of the time loop)."""
  ux = x @ params["U"]
  return ux + params["b"] if "b" in params else ux


def recur(
    params: dict, h: Array, ux: Array, *, activation: str = "tanh",
    matmul: common.MatMul = common.matmul,
) -> tuple[Array, Array]:
  """h_t = f(ux_t + h_{t-1} @ W) given the projected input ux_t."""
  h = common.get_activation(activation)(ux + matmul(h, params["W"]))
  return h, h


def step(params: dict, carry: Array, x: Array, *, activation: str = "tanh") -> tuple[Array, Array]:
  """One time step: (h_{t-1}, x_t) -> (h_t, h_t)."""
  return recur(params, carry, project(params, x), activation=activation)
