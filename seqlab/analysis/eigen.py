"""The eigenvalue picture of notes 000 and the gradient bound of notes 001.

Linear recurrence (notes 000, "long-term dependencies and eigen decomposition"):

    h_t = W h_{t-1} = W^t h_0,    and for symmetric W = Q Lambda Q^T:   h_t = Q Lambda^t Q^T h_0

so each eigen-component grows or shrinks like lambda_i^t. Nonlinear bound (notes 001):

    ||ds_t/ds_k|| <= prod_j ||diag(f'(a_j))|| ||W|| <= (gamma ||W||)^(t-k)

with gamma = max f' (1 for tanh, 1/4 for the logistic sigmoid; `common.DERIVATIVE_BOUND`).
Here W acts on column vectors as in the notes; a cell's row-vector W (h_t = h_{t-1} @ W)
is its transpose, with the same eigenvalues and norms. These are host-side (numpy,
float64) tools for W of modest size.
"""

import jax
import numpy as np

from seqlab.cells import common

Array = jax.Array


def spectral_radius(W: Array) -> float:
  """rho(W) = max_i |lambda_i(W)|."""
  return float(np.abs(np.linalg.eigvals(np.asarray(W, np.float64))).max())


def spectral_norm(W: Array) -> float:
  """||W||_2, the largest singular value."""
  return float(np.linalg.norm(np.asarray(W, np.float64), 2))


def eigendecomposition(W: Array) -> tuple[np.ndarray, np.ndarray]:
  """(lambda, Q) with W Q = Q diag(lambda), sorted by |lambda| descending (eigh if symmetric)."""
  W = np.asarray(W, np.float64)
  if np.allclose(W, W.T):
    lam, Q = np.linalg.eigh(W)
  else:
    lam, Q = np.linalg.eig(W)
  order = np.argsort(-np.abs(lam), kind="stable")
  return lam[order], Q[:, order]


def symmetric_with_eigenvalues(key: Array, eigenvalues: np.ndarray) -> np.ndarray:
  """W = Q diag(lambda) Q^T with a random orthogonal Q and the given eigenvalues."""
  lam = np.asarray(eigenvalues, np.float64)
  Q, _ = np.linalg.qr(np.asarray(jax.random.normal(key, (lam.size, lam.size)), np.float64))
  return (Q * lam) @ Q.T


def symmetric_with_radius(
    key: Array, n: int, rho: float, spread: float = 0.5, gap: float = 0.0
) -> np.ndarray:
  """A random symmetric W = Q diag(lambda) Q^T with max |lambda| = rho exactly.

  The other eigenvalues have random signs and |lambda| uniform in
  [rho (1 - spread), rho (1 - gap)], so the largest one dominates W^t.
  """
  k_q, k_l, k_s = jax.random.split(key, 3)
  u = np.asarray(jax.random.uniform(k_l, (n,)), np.float64)
  mags = rho * (1 - gap - (spread - gap) * u)
  mags[0] = rho
  signs = np.where(np.asarray(jax.random.bernoulli(k_s, 0.5, (n,))), 1.0, -1.0)
  signs[0] = 1.0
  return symmetric_with_eigenvalues(k_q, signs * mags)


def orthogonal_with_radius(key: Array, n: int, rho: float) -> np.ndarray:
  """rho times a random orthogonal matrix: every |lambda| and every singular value = rho."""
  Q, R = np.linalg.qr(np.asarray(jax.random.normal(key, (n, n)), np.float64))
  return rho * Q * np.sign(np.diag(R))


def eigen_power_trajectory(W: Array, h0: Array, steps: int) -> np.ndarray:
  """h_t = Q Lambda^t Q^T h_0 for t = 0..steps [steps + 1, n], for symmetric W (notes 000)."""
  W = np.asarray(W, np.float64)
  if not np.allclose(W, W.T):
    raise ValueError("eigen_power_trajectory needs a symmetric W (W = Q Lambda Q^T)")
  lam, Q = np.linalg.eigh(W)
  t = np.arange(steps + 1)[:, None]
  return (lam[None, :] ** t * (Q.T @ np.asarray(h0, np.float64))[None, :]) @ Q.T


def linear_trajectory(W: Array, h0: Array, steps: int) -> np.ndarray:
  """h_t = W h_{t-1} by repeated multiplication, t = 0..steps [steps + 1, n] (float64)."""
  W = np.asarray(W, np.float64)
  out = [np.asarray(h0, np.float64)]
  for _ in range(steps):
    out.append(W @ out[-1])
  return np.stack(out)


def linear_regime_error(W: Array, h0: Array, steps: int) -> float:
  """max_t ||W^t h_0 - Q Lambda^t Q^T h_0|| / ||W^t h_0||: ~1e-15 in float64."""
  direct = linear_trajectory(W, h0, steps)
  eigen = eigen_power_trajectory(W, h0, steps)
  return float(np.max(np.linalg.norm(direct - eigen, axis=1) / np.linalg.norm(direct, axis=1)))


def derivative_bound(activation: str) -> float:
  """gamma = max_a |f'(a)|: 1 for tanh, 1/4 for the logistic sigmoid."""
  try:
    return common.DERIVATIVE_BOUND[activation]
  except KeyError:
    raise ValueError(
        f"no derivative bound for {activation!r}; known: {sorted(common.DERIVATIVE_BOUND)}"
    ) from None


def log_gradient_bound(W: Array, activation: str, lags: np.ndarray) -> np.ndarray:
  """log of (gamma ||W||_2)^(t-k) at the given lags t - k (notes 001)."""
  return np.asarray(lags, np.float64) * np.log(derivative_bound(activation) * spectral_norm(W))


def gradient_bound(W: Array, activation: str, lags: np.ndarray) -> np.ndarray:
  """(gamma ||W||_2)^(t-k) at the given lags t - k (notes 001)."""
  return np.exp(log_gradient_bound(W, activation, lags))
