"""Per-step Jacobians ds_t/ds_{t-1} of any cell along a trajectory.

For the Elman cell (row-vector code, a_t = x_t U + h_{t-1} W + b, h_t = f(a_t)):

    dh_t/dh_{t-1} = diag(f'(a_t)) W^T          (notes 001: ds_j/ds_{j-1} = diag(sigma'(a_j)) W)

with J[i, j] = d s_t[i] / d s_{t-1}[j] (numerator layout, as jax.jacrev returns it).
For any other cell the Jacobian is taken by autodiff of `step` in the state vector s_t
of `seqlab.analysis.state` (the full state, e.g. [h, c] for the LSTM). The 'hidden'
block is the h-rows and h-columns of that full Jacobian, dh_t/dh_{t-1} with the rest
of the state (c_{t-1}) held fixed.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from seqlab import unroll
from seqlab.analysis import state

Array = jax.Array
Step = Callable[[Any, Any, Any], tuple[Any, Any]]


@functools.partial(jax.jit, static_argnames=("step",))
def trajectory(step: Step, params: Any, carry: Any, xs: Any) -> Any:
  """The carries s_0, s_1, ..., s_T of `step` over xs [B, T, ...]: leaves [B, T + 1, ...]."""
  _, _, carries = unroll.scan(step, params, carry, xs, return_carries=True)
  return jax.tree.map(lambda c0, cs: jnp.concatenate([c0[:, None], cs], axis=1), carry, carries)


def state_step(step: Step, params: Any, layout: state.StateLayout) -> Callable[..., Array]:
  """s_t = F(s_{t-1}, x_t): the step on flat state vectors, `like` supplying non-state leaves."""

  def f(s: Array, like: Any, x: Any) -> Array:
    new_carry, _ = step(params, layout.unflatten(s, like), x)
    return layout.flatten(new_carry)

  return f


def one_step_jacobian(
    step: Step, params: Any, carry: Any, x: Any, *, mode: str = "rev"
) -> Array:
  """J = ds_t/ds_{t-1} [n, n] at one unbatched (carry = s_{t-1}, x = x_t)."""
  if mode not in ("rev", "fwd"):
    raise ValueError(f"unknown mode {mode!r}; known modes: ['fwd', 'rev']")
  layout = state.layout(carry)
  jac = jax.jacrev if mode == "rev" else jax.jacfwd
  return jac(state_step(step, params, layout))(layout.flatten(carry), carry, x)


@functools.partial(jax.jit, static_argnames=("step", "block", "mode"))
def step_jacobians(
    step: Step,
    params: Any,
    carry: Any,
    xs: Any,
    *,
    block: str = "state",
    mode: str = "rev",
) -> Array:
  """J[b, t - 1] = ds_t/ds_{t-1} for t = 1..T along each sequence: [B, T, m, m].

  Args:
    step: a pure cell step `(params, carry, x_t) -> (carry, y_t)`.
    params: the cell's parameters.
    carry: the initial carry s_0, leaves [B, ...].
    xs: the inputs [B, T, ...] (all sequences of full length).
    block: 'state' for the Jacobian of the full flattened state (m = n), or 'hidden'
      for its h-block dh_t/dh_{t-1} (c_{t-1} held fixed for the LSTM; m = H).
    mode: 'rev' (jax.jacrev) or 'fwd' (jax.jacfwd); the same matrix either way.
  """
  carries = trajectory(step, params, carry, xs)
  prev = jax.tree.map(lambda c: c[:, :-1], carries)  # s_0 .. s_{T-1}
  jac = lambda c, x: one_step_jacobian(step, params, c, x, mode=mode)
  J = jax.vmap(jax.vmap(jac))(prev, xs)
  idx = state.block_indices(state.layout(state.unbatched(carry)), block)
  return J[..., idx[:, None], idx[None, :]] if block != "state" else J
