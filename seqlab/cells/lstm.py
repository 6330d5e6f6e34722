"""Long short-term memory: the standard LSTM cell and its peephole, coupled and layer-norm variants.

Standard (Hochreiter & Schmidhuber 1997; fused gate order i, f, g, o):
    a_t = x_t @ U + h_{t-1} @ W + b            split into a_i, a_f, a_g, a_o
    i_t = sigma(a_i)                          input gate
    f_t = sigma(a_f)                          forget gate
    g_t = tanh(a_g)                           candidate values  (C~_t in the notes)
    o_t = sigma(a_o)                          output gate
    c_t = f_t * c_{t-1} + i_t * g_t           cell state
    h_t = o_t * tanh(c_t)

Peephole (Gers & Schmidhuber 2000): the gates also see the cell state through
diagonal weights: i_t = sigma(a_i + p_i * c_{t-1}), f_t = sigma(a_f + p_f * c_{t-1}),
o_t = sigma(a_o + p_o * c_t).

Coupled (the notes' "single update gate", CIFG of Greff et al. 2017): no forget
gate, f_t = 1 - i_t; fused gate order i, g, o.

Layer norm (Ba, Kiros & Hinton 2016): a_t = LN(x_t @ U) + LN(h_{t-1} @ W) + b with
each gate block normalised on its own, and h_t = o_t * tanh(LN(c_t)).

The variant is part of the parameters, so `step` reads it from them: peephole
weights `p_i, p_f, p_o`; coupled gates make U, W, b three blocks wide; layer-norm
gains `ln_x`, `ln_h` [gates, H] and `ln_c_gain`, `ln_c_bias` [H].
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from seqlab.cells import common, initializers

Array = jax.Array


class LSTMState(NamedTuple):
  """The LSTM carry: hidden state h and cell state c, each [..., H]."""

  h: Array
  c: Array


def num_gates(params: dict) -> int:
  """4 fused gates (i, f, g, o), or 3 (i, g, o) for the coupled variant."""
  return params["W"].shape[1] // params["W"].shape[0]


def init(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    peephole: bool = False,
    coupled: bool = False,
    layer_norm: bool = False,
    forget_bias: float = 1.0,
    chrono: float = 0.0,
    recurrent_init: str = "orthogonal",
    recurrent_scale: float = 1.0,
    dtype=jnp.float32,
) -> dict:
  """U Xavier per gate, W by `recurrent_init` per gate, b = 0 except b_f = forget_bias.

  For the coupled variant f = 1 - i, so the forget bias goes in as b_i = -forget_bias.
  `chrono` = T_max > 0 replaces the constant forget bias by the chrono initialisation
  b_f = log(U[1, T_max - 1]), b_i = -b_f (Tallec & Ollivier 2018).
  Peephole weights start at 0 (the cell starts as a standard LSTM).
  """
  gates = 3 if coupled else 4
  k_u, k_w = jax.random.split(key)
  b = jnp.zeros((gates, hidden_size), dtype)
  if chrono:
    b_f = initializers.chrono_bias(jax.random.fold_in(key, 2), hidden_size, chrono, dtype)
    b = b.at[0].set(-b_f) if coupled else b.at[0].set(-b_f).at[1].set(b_f)
  else:
    b = b.at[0].set(-forget_bias) if coupled else b.at[1].set(forget_bias)
  params = {
      "U": initializers.input_blocks(k_u, input_size, hidden_size, gates, dtype),
      "W": initializers.recurrent_blocks(
          k_w, hidden_size, gates, recurrent_init, recurrent_scale, dtype
      ),
      "b": b.reshape(-1),
  }
  if peephole:
    names = ("p_i", "p_o") if coupled else ("p_i", "p_f", "p_o")
    params |= {name: jnp.zeros((hidden_size,), dtype) for name in names}
  if layer_norm:
    params |= {
        "ln_x": jnp.ones((gates, hidden_size), dtype),
        "ln_h": jnp.ones((gates, hidden_size), dtype),
        "ln_c_gain": jnp.ones((hidden_size,), dtype),
        "ln_c_bias": jnp.zeros((hidden_size,), dtype),
    }
  return params


def initial_carry(params: dict, batch_shape: tuple[int, ...]) -> LSTMState:
  """h_0 = c_0 = 0."""
  zeros = common.zeros_carry(params, batch_shape, params["W"].shape[0])
  return LSTMState(h=zeros, c=zeros)


def project(params: dict, x: Array) -> Array:
  """The input part of the gate pre-activations: [LN](x_t @ U) + b, hoistable."""
  ux = x @ params["U"]
  if "ln_x" in params:
    ux = common.gate_layer_norm(ux, params["ln_x"])
  return ux + params["b"]


def recur(
    params: dict, carry: LSTMState, ux: Array, *, matmul: common.MatMul = common.matmul
) -> tuple[LSTMState, Array]:
  """One step given the projected input ux_t = [LN](x_t @ U) + b."""
  h_prev, c_prev = carry
  wh = matmul(h_prev, params["W"])
  if "ln_h" in params:
    wh = common.gate_layer_norm(wh, params["ln_h"])
  a = ux + wh
  peephole = "p_i" in params
  if num_gates(params) == 3:
    a_i, a_g, a_o = common.split_gates(a, 3)
    if peephole:
      a_i = a_i + params["p_i"] * c_prev
    i = jax.nn.sigmoid(a_i)
    f = 1.0 - i
  else:
    a_i, a_f, a_g, a_o = common.split_gates(a, 4)
    if peephole:
      a_i = a_i + params["p_i"] * c_prev
      a_f = a_f + params["p_f"] * c_prev
    i = jax.nn.sigmoid(a_i)
    f = jax.nn.sigmoid(a_f)
  g = jnp.tanh(a_g)
  c = f * c_prev + i * g
  if peephole:
    a_o = a_o + params["p_o"] * c
  o = jax.nn.sigmoid(a_o)
  if "ln_c_gain" in params:
    h = o * jnp.tanh(common.layer_norm(c, params["ln_c_gain"], params["ln_c_bias"]))
  else:
    h = o * jnp.tanh(c)
  return LSTMState(h=h, c=c), h


def step(params: dict, carry: LSTMState, x: Array) -> tuple[LSTMState, Array]:
  """One time step: ((h, c)_{t-1}, x_t) -> ((h, c)_t, h_t)."""
  return recur(params, carry, project(params, x))
