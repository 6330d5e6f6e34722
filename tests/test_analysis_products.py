"""Jacobian products and their norms by lag against explicit loops and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells
from seqlab.analysis import eigen, jacobians, products

RNG = np.random.default_rng(0)


def explicit_product(J, t, k):
  """ds_t/ds_k = J_t ... J_{k+1}, one matmul at a time (J[t - 1] = ds_t/ds_{t-1})."""
  P = np.eye(J.shape[-1])
  for j in range(k + 1, t + 1):
    P = J[j - 1] @ P
  return P


def test_jacobian_products_equal_the_explicit_loop():
  J = RNG.normal(size=(2, 6, 4, 4))
  for start in range(7):
    P = np.asarray(products.jacobian_products(jnp.asarray(J), start))
    assert P.shape == (2, 7 - start, 4, 4)
    for b in range(2):
      for lag in range(7 - start):
        np.testing.assert_allclose(
            P[b, lag], explicit_product(J[b], start + lag, start), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("block", [None, (np.arange(3), np.array([1, 2]))])
def test_lag_norms_equal_norms_of_the_explicit_products(block):
  T, n = 7, 5
  J = RNG.normal(size=(T, n, n)) * 0.8
  rows, cols = block if block is not None else (np.arange(n), np.arange(n))
  out = products.lag_norms(jnp.asarray(J, jnp.float32), max_lag=5, num_singular=2,
                           rows=rows, cols=cols)
  assert out.log_spectral.shape == (T, 6) and out.log_singular.shape == (T, 6, 2)
  for t in range(1, T + 1):
    for lag in range(6):
      if lag > t:
        assert np.isnan(out.log_spectral[t - 1, lag]) and np.isnan(out.log_frobenius[t - 1, lag])
        continue
      P = explicit_product(J, t, t - lag)[np.ix_(rows, cols)]
      sv = np.linalg.svd(P, compute_uv=False)
      np.testing.assert_allclose(out.log_singular[t - 1, lag], np.log(sv[:2]), atol=1e-4)
      np.testing.assert_allclose(out.log_spectral[t - 1, lag], np.log(sv[0]), atol=1e-4)
      np.testing.assert_allclose(out.log_frobenius[t - 1, lag], np.log(np.linalg.norm(P)),
                                 atol=1e-4)


@pytest.mark.parametrize("rho", [0.45, 0.9, 1.0, 2.2])
def test_linear_symmetric_rnn_product_norm_is_lambda_max_to_the_lag(rho):
  # h_t = W h_{t-1}, W = Q Lambda Q^T: ||dh_t/dh_k||_2 = ||W^(t-k)||_2 = |lambda_max|^(t-k).
  # T = 120 takes 0.45^120 and 2.2^120 out of float32's range: the log norms stay exact.
  T, n = 120, 6
  W = eigen.symmetric_with_radius(jax.random.key(1), n, rho)
  cell = cells.make("elman", activation="identity", use_bias=False)
  params = {"U": jnp.zeros((1, n)), "W": jnp.asarray(W, jnp.float32)}
  J = jacobians.step_jacobians(cell.step, params, jnp.zeros((1, n)), jnp.zeros((1, T, 1)))
  out = products.lag_norms(J)
  lags = np.arange(T + 1)[None, :]
  expected = np.where(lags <= np.arange(1, T + 1)[:, None], lags * np.log(rho), np.nan)
  np.testing.assert_allclose(out.log_spectral[0], expected, atol=3e-4, equal_nan=True)
  lam = np.abs(np.linalg.eigvalsh(W))  # ||W^l||_F = sqrt(sum_i lambda_i^(2l))
  np.testing.assert_allclose(out.log_frobenius[0, -1, 5], 0.5 * np.log(np.sum(lam**10)),
                             atol=1e-4)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_measured_norm_never_exceeds_the_gamma_w_bound(activation):
  # ||dh_t/dh_k|| <= (gamma ||W||)^(t-k), gamma = 1 (tanh) or 1/4 (logistic), for all t, k.
  T, n, I = 30, 8, 3
  cell = cells.make("elman", activation=activation)
  step_norms = jax.jit(lambda p, xs: products.lag_norms(jacobians.step_jacobians(
      cell.step, p, jnp.zeros((2, n)), xs)).log_spectral)
  for scale in (0.5, 1.0, 2.0, 4.0, 8.0):
    params = {"U": jnp.asarray(RNG.normal(size=(I, n)), jnp.float32),
              "W": jnp.asarray(scale * RNG.normal(size=(n, n)) / np.sqrt(n), jnp.float32),
              "b": jnp.asarray(RNG.normal(size=n), jnp.float32)}
    xs = jnp.asarray(RNG.normal(size=(2, T, I)), jnp.float32)
    measured = np.asarray(step_norms(params, xs))
    bound = eigen.log_gradient_bound(params["W"], activation, np.arange(T + 1))
    valid = ~np.isnan(measured)
    assert np.all((measured <= bound[None, None, :] + 1e-4)[valid]), (scale, activation)


def test_by_lag_ignores_the_invalid_entries():
  values = jnp.asarray([[0.0, np.nan, np.nan], [1.0, 3.0, np.nan], [2.0, 5.0, 7.0]])
  np.testing.assert_allclose(products.by_lag(values, "mean"), [1.0, 4.0, 7.0])
  np.testing.assert_allclose(products.by_lag(values[None], "max"), [2.0, 5.0, 7.0])
  with pytest.raises(ValueError, match="known"):
    products.by_lag(values, "sum")


def test_efolding_of_an_exponential_decay_is_its_time_constant():
  tau = 7.3
  slope, lag = products.efolding(-np.arange(60) / tau + 2.0)
  np.testing.assert_allclose([slope, lag], [-1 / tau, tau], rtol=1e-9)
  assert products.efolding(np.zeros(10))[1] == np.inf  # never falls by a factor e
