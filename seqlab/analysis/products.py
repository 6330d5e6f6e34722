"""Products of per-step Jacobians, ds_t/ds_k for every lag t - k, and their norms.

    ds_t/ds_k = prod_{j=k+1}^{t} ds_j/ds_{j-1} = J_t J_{t-1} ... J_{k+1}      (notes 001)

`J` holds the per-step Jacobians of `seqlab.analysis.jacobians.step_jacobians`:
J[t - 1] = ds_t/ds_{t-1} for t = 1..T. Two routes, neither a T^2 Python loop:

- `jacobian_products`: the matrices ds_t/ds_k for one start k and every t >= k, as
  prefix products by `jax.lax.associative_scan` (log T depth).
- `lag_norms`: norms of ds_t/ds_{t-l} for every end t and every lag l, by a scan over
  the lag that multiplies all T products by one more Jacobian per iteration. Each
  product is kept as (P / s, log s) so that exploding or vanishing products stay in
  range; the norms come back as natural logarithms.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class LagNorms(NamedTuple):
  """Log norms of ds_t/ds_{t-l}, indexed [..., t - 1, l] for t = 1..T, l = 0..L; NaN if l > t."""

  log_spectral: Array  # log ||.||_2, the largest singular value
  log_frobenius: Array  # log ||.||_F
  log_singular: Array  # [..., T, L + 1, k]: log of the k largest singular values


@functools.partial(jax.jit, static_argnames=("start",))
def jacobian_products(J: Array, start: int = 0) -> Array:
  """P[..., l] = ds_{start+l}/ds_start = J_{start+l} ... J_{start+1}, l = 0..T - start."""
  elems = J[..., start:, :, :]
  prefix = jax.lax.associative_scan(lambda a, b: b @ a, elems, axis=elems.ndim - 3)
  eye = jnp.broadcast_to(jnp.eye(J.shape[-1], dtype=J.dtype), (*J.shape[:-3], 1, *J.shape[-2:]))
  return jnp.concatenate([eye, prefix], axis=-3)


def matrix_norms(P: Array, num_singular: int = 1) -> tuple[Array, Array, Array]:
  """(||P||_2, ||P||_F, the k largest singular values [..., k]) over the last two axes."""
  singular = jnp.linalg.svd(P, compute_uv=False)
  return singular[..., 0], jnp.linalg.norm(P, axis=(-2, -1)), singular[..., :num_singular]


def _lag_norms_one(
    J: Array, max_lag: int, num_singular: int, rows: np.ndarray, cols: np.ndarray
) -> LagNorms:
  """LagNorms of one sequence's J [T, n, n]."""
  T, n, _ = J.shape
  end = jnp.arange(1, T + 1)  # t = 1..T

  def norms(P, log_scale, lag):
    singular = jnp.linalg.svd(P[:, rows][:, :, cols], compute_uv=False)
    frob = jnp.linalg.norm(P[:, rows][:, :, cols], axis=(-2, -1))
    valid = lag <= end
    out = (log_scale[:, None] + jnp.log(singular[:, :num_singular]), log_scale + jnp.log(frob))
    return (jnp.where(valid[:, None], out[0], jnp.nan), jnp.where(valid, out[1], jnp.nan))

  def body(carry, lag):
    P, log_scale = carry
    # ds_t/ds_{t-l} = (ds_t/ds_{t-l+1}) J_{t-l+1}, and J_{t-l+1} is J[t - l].
    index = end - lag
    J_next = J[jnp.maximum(index, 0)]  # rows with l > t are masked out by `norms`
    P = P @ J_next
    scale = jnp.linalg.norm(P, axis=(-2, -1))
    scale = jnp.where(scale > 0, scale, 1.0)
    P, log_scale = P / scale[:, None, None], log_scale + jnp.log(scale)
    return (P, log_scale), norms(P, log_scale, lag)

  P0 = jnp.broadcast_to(jnp.eye(n, dtype=J.dtype), (T, n, n))
  zero = jnp.zeros((T,), J.dtype)
  first = norms(P0, zero, 0)
  _, rest = jax.lax.scan(body, (P0, zero), jnp.arange(1, max_lag + 1))
  singular = jnp.concatenate([first[0][None], rest[0]], axis=0).transpose(1, 0, 2)
  frob = jnp.concatenate([first[1][None], rest[1]], axis=0).T
  return LagNorms(singular[..., 0], frob, singular)


def lag_norms(
    J: Array,
    max_lag: int | None = None,
    num_singular: int = 1,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
) -> LagNorms:
  """Log norms of ds_t/ds_{t-l} for all t and lags l <= max_lag (default T) from J [..., T, n, n].

  `rows` and `cols` pick a block of each product after it is formed (e.g. the h-rows and
  h-columns of the LSTM's full-state product: dh_t/dh_k with c_k held fixed).
  """
  T, n = J.shape[-3], J.shape[-1]
  max_lag = T if max_lag is None else min(max_lag, T)
  rows = np.arange(n) if rows is None else np.asarray(rows)
  cols = np.arange(n) if cols is None else np.asarray(cols)
  num_singular = min(num_singular, len(rows), len(cols))
  return _lag_norms(J, max_lag, num_singular, tuple(rows.tolist()), tuple(cols.tolist()))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _lag_norms(J: Array, max_lag: int, num_singular: int, rows: tuple, cols: tuple) -> LagNorms:
  """lag_norms over the leading axes of J, compiled."""
  T, n = J.shape[-3], J.shape[-1]
  rows, cols = np.asarray(rows, np.int32), np.asarray(cols, np.int32)
  flat = J.reshape(-1, T, n, n)
  out = jax.vmap(lambda j: _lag_norms_one(j, max_lag, num_singular, rows, cols))(flat)
  return jax.tree.map(lambda a: a.reshape(*J.shape[:-3], *a.shape[1:]), out)


def by_lag(values: Array, reduce: str = "mean") -> Array:
  """Aggregate [..., T, L + 1] values over every axis but the lag, ignoring NaN: [L + 1]."""
  flat = jnp.reshape(values, (-1, values.shape[-1]))
  fns = {"mean": jnp.nanmean, "max": jnp.nanmax, "min": jnp.nanmin, "median": jnp.nanmedian}
  if reduce not in fns:
    raise ValueError(f"unknown reduce {reduce!r}; known: {sorted(fns)}")
  return fns[reduce](flat, axis=0)


def efolding(log_norm: np.ndarray) -> tuple[float, float]:
  """(slope of a log norm against the lag past the first lags, the first lag where it has
  fallen by 1 = a factor e below lag 0, linearly interpolated; inf if it never does).

  For log_norm[l] = -l / tau both are exact: slope -1 / tau, e-folding lag tau.
  """
  log_norm = np.asarray(log_norm, np.float64)
  lags = np.arange(len(log_norm))
  keep = np.isfinite(log_norm) & (lags >= max(2, len(lags) // 10))
  slope = float(np.polyfit(lags[keep], log_norm[keep], 1)[0])
  below = np.nonzero(log_norm <= log_norm[0] - 1.0)[0]
  if below.size == 0:
    return slope, float("inf")
  j = int(below[0])
  y0, y1 = log_norm[j - 1] - log_norm[0] + 1.0, log_norm[j] - log_norm[0] + 1.0
  return slope, float(j - 1 + y0 / (y0 - y1))
