"""Gated recurrent unit (Cho et al. 2014), fused gate order r, z, n.

    r_t = sigma(x_t @ U_r + h_{t-1} @ W_r + b_r)           reset gate
    z_t = sigma(x_t @ U_z + h_{t-1} @ W_z + b_z)           update gate
    cho:   n_t = tanh(x_t @ U_n + (r_t * h_{t-1}) @ W_n + b_n)
    torch: n_t = tanh(x_t @ U_n + b_n + r_t * (h_{t-1} @ W_n + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

`cho` applies the reset to h before the matmul (the paper); `torch` applies it after
the matmul, as torch.nn.GRU and cuDNN do, and has the extra hidden bias `b_hn`, whose
presence in the params is how `step` tells the variants apart. Optional layer norm
(Ba et al. 2016): each gate's input part and hidden part normalised on its own,
gains `ln_x`, `ln_h` [3, H].
"""

import jax
import jax.numpy as jnp

from seqlab.cells import common, initializers

Array = jax.Array

VARIANTS = ("cho", "torch")


def init(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    variant: str = "cho",
    layer_norm: bool = False,
    chrono: float = 0.0,
    recurrent_init: str = "orthogonal",
    recurrent_scale: float = 1.0,
    dtype=jnp.float32,
) -> dict:
  """U Xavier per gate, W by `recurrent_init` per gate, biases 0.

  `chrono` = T_max > 0: the update gate's bias b_z = log(U[1, T_max - 1]) (chrono
  initialisation, Tallec & Ollivier 2018; z keeps h_{t-1}), the other biases 0.
  """
  if variant not in VARIANTS:
    raise ValueError(f"unknown GRU variant {variant!r}; known variants: {list(VARIANTS)}")
  k_u, k_w = jax.random.split(key)
  params = {
      "U": initializers.input_blocks(k_u, input_size, hidden_size, 3, dtype),
      "W": initializers.recurrent_blocks(
          k_w, hidden_size, 3, recurrent_init, recurrent_scale, dtype
      ),
      "b": jnp.zeros((3 * hidden_size,), dtype),
  }
  if chrono:
    b_z = initializers.chrono_bias(jax.random.fold_in(key, 2), hidden_size, chrono, dtype)
    params["b"] = params["b"].at[hidden_size : 2 * hidden_size].set(b_z)
  if variant == "torch":
    params["b_hn"] = jnp.zeros((hidden_size,), dtype)
  if layer_norm:
    params["ln_x"] = jnp.ones((3, hidden_size), dtype)
    params["ln_h"] = jnp.ones((3, hidden_size), dtype)
  return params


def initial_carry(params: dict, batch_shape: tuple[int, ...]) -> Array:
  """h_0 = 0."""
  return common.zeros_carry(params, batch_shape, params["W"].shape[0])


def project(params: dict, x: Array) -> Array:
  """The input part of the pre-activations: [LN](x_t @ U) + b, hoistable."""
  ux = x @ params["U"]
  if "ln_x" in params:
    ux = common.gate_layer_norm(ux, params["ln_x"])
  return ux + params["b"]


def recur(
    params: dict, h: Array, ux: Array, *, matmul: common.MatMul = common.matmul
) -> tuple[Array, Array]:
  """One step given the projected input ux_t = [LN](x_t @ U) + b."""
  H = h.shape[-1]
  W = params["W"]
  ln_h = params.get("ln_h")
  norm = (lambda a, k: common.layer_norm(a, ln_h[k])) if ln_h is not None else (lambda a, k: a)
  ux_r, ux_z, ux_n = common.split_gates(ux, 3)
  if "b_hn" in params:  # torch: one matmul h @ [W_r | W_z | W_n], reset after it
    wh_r, wh_z, wh_n = common.split_gates(matmul(h, W), 3)
    r = jax.nn.sigmoid(ux_r + norm(wh_r, 0))
    z = jax.nn.sigmoid(ux_z + norm(wh_z, 1))
    n = jnp.tanh(ux_n + r * (norm(wh_n, 2) + params["b_hn"]))
  else:  # cho: reset before the candidate's matmul
    wh_r, wh_z = common.split_gates(matmul(h, W[:, : 2 * H]), 2)
    r = jax.nn.sigmoid(ux_r + norm(wh_r, 0))
    z = jax.nn.sigmoid(ux_z + norm(wh_z, 1))
    n = jnp.tanh(ux_n + norm(matmul(r * h, W[:, 2 * H :]), 2))
  h = (1.0 - z) * n + z * h
  return h, h


def step(params: dict, carry: Array, x: Array) -> tuple[Array, Array]:
  """One time step: (h_{t-1}, x_t) -> (h_t, h_t)."""
  return recur(params, carry, project(params, x))
