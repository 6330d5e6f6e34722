"""Clockwork RNN (Koutnik et al. 2014): units updated only every T_k steps.

The H hidden units form g equal modules with periods T_1 < ... < T_g. At step t
module k is active when t mod T_k == 0:

    a_t = x_t @ U + h_{t-1} @ (W * M) + b,      M[j, i] = 1 iff T(j) >= T(i)
    h_t = f(a_t) on active units, h_{t-1} elsewhere

(connections removed: slow modules feed fast ones, never the reverse; notes 000,
"removing connections"). The carry holds the step counter t with the state.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqlab.cells import common, elman

Array = jax.Array


class ClockworkState(NamedTuple):
  """The hidden state h [..., H] and the time step t [...] (int32)."""

  h: Array
  t: Array


def unit_periods(periods: Sequence[int], hidden_size: int) -> np.ndarray:
  """The period of each unit [H]: equal contiguous groups, one per period."""
  periods = np.asarray(periods, np.int32)
  if periods.ndim != 1 or len(periods) == 0 or np.any(periods < 1):
    raise ValueError(f"clockwork periods must be positive integers, got {periods!r}")
  return periods[np.arange(hidden_size) * len(periods) // hidden_size]


def connection_mask(periods: Sequence[int], hidden_size: int) -> np.ndarray:
  """M[j, i] = 1 iff unit j's period >= unit i's: slower modules feed faster ones."""
  p = unit_periods(periods, hidden_size)
  return (p[:, None] >= p[None, :]).astype(np.float32)


def init(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    periods: Sequence[int] = (1, 2, 4, 8),
    recurrent_init: str = "orthogonal",
    recurrent_scale: float = 1.0,
    dtype=jnp.float32,
) -> dict:
  """Elman weights with the removed connections of W set to zero."""
  params = elman.init(
      key, input_size, hidden_size, recurrent_init=recurrent_init,
      recurrent_scale=recurrent_scale, dtype=dtype,
  )
  params["W"] = params["W"] * jnp.asarray(connection_mask(periods, hidden_size), dtype)
  return params


def initial_carry(params: dict, batch_shape: tuple[int, ...]) -> ClockworkState:
  """h_0 = 0 at t = 0."""
  h = elman.initial_carry(params, batch_shape)
  return ClockworkState(h=h, t=jnp.zeros(batch_shape, jnp.int32))


def step(
    params: dict,
    carry: ClockworkState,
    x: Array,
    *,
    periods: Sequence[int] = (1, 2, 4, 8),
    activation: str = "tanh",
) -> tuple[ClockworkState, Array]:
  """One step: the modules whose period divides t update, the others keep h."""
  H = params["W"].shape[0]
  W = params["W"] * jnp.asarray(connection_mask(periods, H), params["W"].dtype)
  h_new = common.get_activation(activation)(elman.project(params, x) + carry.h @ W)
  active = (carry.t[..., None] % jnp.asarray(unit_periods(periods, H))) == 0
  h = jnp.where(active, h_new, carry.h)
  return ClockworkState(h=h, t=carry.t + 1), h
