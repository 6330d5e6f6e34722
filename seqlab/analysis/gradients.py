"""Gradients of the per-step losses with respect to earlier states, by lag.

    dL_t/ds_k = dL_t/ds_t  ds_t/ds_k = dL_t/ds_t  J_t J_{t-1} ... J_{k+1}     (notes 001)

for a per-step loss L_t = loss_fn(s_t, target_t) that reads the state (e.g. through
a readout o_t = c + V h_t). Two independent routes give the same numbers:

- 'vjp': reverse-mode autodiff through the scan. A zero perturbation e_k is added to
  every state, s_k <- s_k + e_k, and jax.jacrev of (L_1, ..., L_T) with respect to
  (e_0, ..., e_T) is dL_t/ds_k for all t, k (one vjp per L_t, vmapped).
- 'jacobian': the row vectors dL_t/ds_t multiplied by the per-step Jacobians, one more
  per iteration of a scan over the lag (all t at once).

Results are indexed [..., t - 1, l, :] = dL_t/ds_{t-l} for t = 1..T, l = 0..L, NaN if l > t.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqlab.analysis import jacobians, state

Array = jax.Array
LossFn = Callable[[Any, Any], Array]  # (one unbatched carry s_t, target_t) -> scalar L_t


def _vjp_one(step, params, carry, xs, targets, loss_fn) -> Array:
  """D[t - 1, k] = dL_t/ds_k [T, T + 1, n] for one unbatched sequence, through the scan."""
  layout = state.layout(carry)
  shift = lambda c, e: layout.unflatten(layout.flatten(c) + e, c)

  def losses(eps):
    def body(c, inputs):
      x, e, target = inputs
      c, _ = step(params, c, x)
      c = shift(c, e)
      return c, loss_fn(c, target)

    _, L = jax.lax.scan(body, shift(carry, eps[0]), (xs, eps[1:], targets))
    return L

  T = jax.tree.leaves(xs)[0].shape[0]
  return jax.jacrev(losses)(jnp.zeros((T + 1, layout.size), layout.flatten(carry).dtype))


def _to_lags(D: Array, max_lag: int) -> Array:
  """[T, T + 1, n] indexed by (t, k) -> [T, L + 1, n] indexed by (t, t - k), NaN if k < 0."""
  T = D.shape[0]
  t = jnp.arange(1, T + 1)[:, None]
  k = t - jnp.arange(max_lag + 1)[None, :]
  G = jnp.take_along_axis(D, jnp.maximum(k, 0)[..., None], axis=1)
  return jnp.where((k >= 0)[..., None], G, jnp.nan)


def _jacobian_one(J: Array, g: Array, max_lag: int) -> Array:
  """G[t - 1, l] = dL_t/ds_{t-l} from J [T, n, n] and g[t - 1] = dL_t/ds_t [T, n]."""
  T = J.shape[0]
  end = jnp.arange(1, T + 1)

  def body(R, lag):
    # dL_t/ds_{t-l} = (dL_t/ds_{t-l+1}) J_{t-l+1}, and J_{t-l+1} is J[t - l].
    index = end - lag
    R = jnp.einsum("ti,tij->tj", R, J[jnp.maximum(index, 0)])
    return R, jnp.where((index >= 0)[:, None], R, jnp.nan)

  _, rest = jax.lax.scan(body, g, jnp.arange(1, max_lag + 1))
  return jnp.concatenate([g[None], rest], axis=0).transpose(1, 0, 2)


def loss_gradients(loss_fn: LossFn, carries: Any, targets: Any) -> Array:
  """dL_t/ds_t [B, T, n] at the carries s_1..s_T (leaves [B, T, ...])."""
  layout = state.layout(jax.tree.map(lambda c: c[0, 0], carries))

  def grad_one(c, target):
    return jax.grad(lambda s: loss_fn(layout.unflatten(s, c), target))(layout.flatten(c))

  return jax.vmap(jax.vmap(grad_one))(carries, targets)


@functools.partial(jax.jit, static_argnames=("step", "loss_fn", "max_lag", "method"))
def gradients_by_lag(
    step: Callable[..., tuple[Any, Any]],
    params: Any,
    carry: Any,
    xs: Any,
    loss_fn: LossFn,
    targets: Any,
    max_lag: int | None = None,
    method: str = "vjp",
) -> Array:
  """G[b, t - 1, l] = dL_t/ds_{t-l} [B, T, L + 1, n] by 'vjp' or 'jacobian' (same values).

  Args:
    step: a pure cell step `(params, carry, x_t) -> (carry, y_t)`.
    params: the cell's parameters.
    carry: the initial carry s_0, leaves [B, ...].
    xs: the inputs [B, T, ...].
    loss_fn: L_t = loss_fn(s_t, target_t) on one unbatched carry.
    targets: [B, T, ...], handed to loss_fn one step at a time.
    max_lag: the largest lag l (default T).
    method: 'vjp' (autodiff through the scan) or 'jacobian' (Jacobian products).
  """
  T = jax.tree.leaves(xs)[0].shape[1]
  max_lag = T if max_lag is None else min(max_lag, T)
  if method == "vjp":
    one = lambda c, x, y: _to_lags(_vjp_one(step, params, c, x, y, loss_fn), max_lag)
    return jax.vmap(one)(carry, xs, targets)
  if method == "jacobian":
    J = jacobians.step_jacobians(step, params, carry, xs)
    carries = jax.tree.map(lambda c: c[:, 1:], jacobians.trajectory(step, params, carry, xs))
    g = loss_gradients(loss_fn, carries, targets)
    return jax.vmap(lambda j, gg: _jacobian_one(j, gg, max_lag))(J, g)
  raise ValueError(f"unknown method {method!r}; known methods: ['jacobian', 'vjp']")


def gradient_norms(G: Array, units: np.ndarray | None = None) -> Array:
  """||dL_t/ds_{t-l}||_2 [..., T, L + 1] over all of s (or only the given `units`).

  Scaled by the largest entry first, so that norms of tiny (< 1e-19) float32 gradients do
  not underflow to 0 when squared.
  """
  G = G if units is None else G[..., np.asarray(units)]
  scale = jnp.max(jnp.abs(G), axis=-1, keepdims=True)
  safe = jnp.where(scale > 0, scale, 1.0)
  return jnp.linalg.norm(G / safe, axis=-1) * safe[..., 0]
