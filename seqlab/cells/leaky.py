"""Leaky-integrator units: a spectrum of timescales (notes: "leaky units").

    h_t = (1 - a) * h_{t-1} + a * tanh(x_t @ U + h_{t-1} @ W + b)

with a per-unit rate a in (0, 1]: a = 1 is the Elman RNN; a small a is a running
average that remembers for about 1/a steps. `rate` is one rate for all units or a
tuple of rates spread over the units in equal groups (several timescales). With
`learn_rate=True` the rates are parameters, a = sigmoid(a_logit), started at `rate`.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqlab.cells import common, elman

Array = jax.Array


def unit_rates(rate: float | Sequence[float], hidden_size: int) -> np.ndarray:
  """Per-unit rates [H]: a scalar everywhere, or each rate of a tuple on an equal group."""
  rates = np.atleast_1d(np.asarray(rate, np.float64))
  if np.any(rates <= 0) or np.any(rates > 1):
    raise ValueError(f"leaky rates must lie in (0, 1], got {rate!r}")
  group = np.arange(hidden_size) * len(rates) // hidden_size
  return rates[group]


def init(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    rate: float | Sequence[float] = 1.0,
    learn_rate: bool = False,
    use_bias: bool = True,
    recurrent_init: str = "orthogonal",
    recurrent_scale: float = 1.0,
    dtype=jnp.float32,
) -> dict:
  """Elman weights, plus a_logit = logit(rate) when the rates are learned."""
  params = elman.init(
      key,
      input_size,
      hidden_size,
      use_bias=use_bias,
      recurrent_init=recurrent_init,
      recurrent_scale=recurrent_scale,
      dtype=dtype,
  )
  if learn_rate:
    a = np.clip(unit_rates(rate, hidden_size), 1e-6, 1 - 1e-6)
    params["a_logit"] = jnp.asarray(np.log(a) - np.log1p(-a), dtype)
  return params


initial_carry = elman.initial_carry
project = elman.project


def rates(params: dict, rate: float | Sequence[float] = 1.0) -> Array:
  """The per-unit rates a [H]: learned sigmoid(a_logit), else the fixed `rate`."""
  if "a_logit" in params:
    return jax.nn.sigmoid(params["a_logit"])
  return jnp.asarray(unit_rates(rate, params["W"].shape[0]), params["W"].dtype)


def recur(
    params: dict,
    h: Array,
    ux: Array,
    *,
    rate: float | Sequence[float] = 1.0,
    activation: str = "tanh",
) -> tuple[Array, Array]:
  """h_t = (1 - a) h_{t-1} + a f(ux_t + h_{t-1} @ W), given the projected input."""
  h_new, _ = elman.recur(params, h, ux, activation=activation)
  h = common.leaky_integrate(h, h_new, rates(params, rate))
  return h, h


def step(
    params: dict,
    carry: Array,
    x: Array,
    *,
    rate: float | Sequence[float] = 1.0,
    activation: str = "tanh",
) -> tuple[Array, Array]:
  """One time step: (h_{t-1}, x_t) -> (h_t, h_t). `rate` is unused when learned."""
  return recur(params, carry, project(params, x), rate=rate, activation=activation)
