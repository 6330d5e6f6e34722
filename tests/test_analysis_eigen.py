"""Eigen tools and Lyapunov exponents against closed forms (notes 000 and 001)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells
from seqlab.analysis import eigen, jacobians, lyapunov
from seqlab.cells import initializers

RNG = np.random.default_rng(0)
N = 6
# Well separated |lambda| (ratios >= 1.25), so the QR iteration settles within ~50 steps.
LAMBDA = np.array([1.2, -0.9, 0.7, -0.5, 0.35, 0.2])


def test_constructed_matrices_have_the_asked_radius():
  S = eigen.symmetric_with_radius(jax.random.key(0), N, 1.3)
  O = eigen.orthogonal_with_radius(jax.random.key(1), N, 0.7)
  np.testing.assert_allclose(S, S.T)
  assert eigen.spectral_radius(S) == pytest.approx(1.3, rel=1e-12)
  np.testing.assert_allclose(np.linalg.svd(O, compute_uv=False), 0.7, rtol=1e-12)
  assert eigen.spectral_radius(O) == pytest.approx(0.7, rel=1e-12)
  A = RNG.normal(size=(N, N))
  assert eigen.spectral_radius(A) == pytest.approx(float(initializers.spectral_radius(A)),
                                                   rel=1e-6)


@pytest.mark.parametrize("symmetric", [True, False])
def test_eigendecomposition_is_sorted_and_reconstructs_w(symmetric):
  W = eigen.symmetric_with_radius(jax.random.key(2), N, 1.0) if symmetric else RNG.normal(
      size=(N, N))
  lam, Q = eigen.eigendecomposition(W)
  np.testing.assert_allclose(W @ Q, Q * lam[None, :], atol=1e-12)
  assert np.all(np.diff(np.abs(lam)) <= 1e-12)
  assert np.isrealobj(lam) == symmetric


def test_linear_regime_h_t_equals_q_lambda_t_qt_h0():
  # notes 000: h_t = W^t h_0 = Q Lambda^t Q^T h_0 for symmetric W.
  W = eigen.symmetric_with_radius(jax.random.key(3), N, 1.1)
  h0 = RNG.normal(size=N)
  assert eigen.linear_regime_error(W, h0, 60) < 1e-12
  # The same trajectory from the Elman cell with the identity activation (float32).
  cell = cells.make("elman", activation="identity", use_bias=False)
  params = {"U": jnp.zeros((1, N)), "W": jnp.asarray(W, jnp.float32)}
  h = jacobians.trajectory(cell.step, params, jnp.asarray(h0, jnp.float32)[None],
                           jnp.zeros((1, 60, 1)))[0]
  np.testing.assert_allclose(h, eigen.eigen_power_trajectory(W, h0, 60), rtol=2e-5, atol=1e-6)
  with pytest.raises(ValueError, match="symmetric"):
    eigen.eigen_power_trajectory(RNG.normal(size=(N, N)), h0, 3)


def test_gradient_bound_is_gamma_norm_w_to_the_lag():
  W = RNG.normal(size=(N, N))
  norm = np.linalg.norm(W, 2)
  lags = np.arange(5)
  np.testing.assert_allclose(eigen.gradient_bound(W, "tanh", lags), norm**lags)
  np.testing.assert_allclose(eigen.gradient_bound(W, "sigmoid", lags), (norm / 4) ** lags)
  with pytest.raises(ValueError, match="known"):
    eigen.derivative_bound("softmax")


def test_lyapunov_exponents_of_a_symmetric_linear_map_are_log_abs_eigenvalues():
  W = eigen.symmetric_with_eigenvalues(jax.random.key(4), LAMBDA)
  expected = np.log(np.abs(LAMBDA))  # already sorted by |lambda|
  J = jnp.broadcast_to(jnp.asarray(W, jnp.float32), (1000, N, N))
  out = lyapunov.from_jacobians(J, warmup=200)
  np.testing.assert_allclose(out.exponents, expected, atol=1e-4)
  assert out.running.shape == (800, N)
  top2 = lyapunov.from_jacobians(J, num=2, warmup=200)
  np.testing.assert_allclose(top2.exponents, expected[:2], atol=1e-4)


def test_lyapunov_exponents_of_a_general_linear_map():
  # Complex pairs share one modulus; the sum of all exponents is log |det A| at every T.
  A = RNG.normal(size=(N, N)) / np.sqrt(N)
  expected = np.sort(np.log(np.abs(np.linalg.eigvals(A))))[::-1]
  out = lyapunov.from_jacobians(jnp.broadcast_to(jnp.asarray(A, jnp.float32), (1000, N, N)),
                                warmup=200)
  np.testing.assert_allclose(out.exponents, expected, atol=3e-3)
  assert float(out.exponents.sum()) == pytest.approx(np.log(abs(np.linalg.det(A))), abs=1e-4)


def test_fused_lyapunov_equals_the_stored_jacobian_route():
  # Linear cell: exponents = log |eig W|; tanh cell: the same numbers by both routes.
  W = eigen.symmetric_with_eigenvalues(jax.random.key(5), 0.9 * LAMBDA / 1.2)
  linear = cells.make("elman", activation="identity", use_bias=False)
  params = {"U": jnp.ones((2, N)), "W": jnp.asarray(W, jnp.float32)}
  xs = jnp.asarray(RNG.normal(size=(1, 600, 2)), jnp.float32)
  out = lyapunov.exponents(linear.step, params, jnp.zeros((1, N)), xs, warmup=100)
  np.testing.assert_allclose(out.exponents[0], np.log(np.abs(0.9 * LAMBDA / 1.2)), atol=1e-4)
  tanh = cells.make("elman")
  params["W"] = params["W"] * 2.0
  params["b"] = jnp.zeros(N)
  fused = lyapunov.exponents(tanh.step, params, jnp.zeros((1, N)), xs[:, :200], num=3)
  J = jacobians.step_jacobians(tanh.step, params, jnp.zeros((1, N)), xs[:, :200])
  np.testing.assert_allclose(fused.exponents, lyapunov.from_jacobians(J, num=3).exponents,
                             atol=1e-5)
