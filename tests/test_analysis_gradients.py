"""Gradient norms by lag: autodiff through the scan == Jacobian products == closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells
from seqlab.analysis import eigen, gradients, jacobians

B, T, I, H = 2, 6, 3, 4
RNG = np.random.default_rng(0)


def random_params(cell, scale=0.7):
  """Gaussian params of the cell's init layout (shapes by eval_shape: nothing compiled)."""
  shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), I, H))
  return jax.tree.map(lambda s: jnp.asarray(scale * RNG.normal(size=s.shape), jnp.float32),
                      shapes)


def readout_loss(carry, target):
  """L_t = 1/2 ||h_t V - y_t||^2 with a fixed V [H, 2]: reads only the hidden block."""
  h = carry.h if hasattr(carry, "h") else carry
  V = jnp.asarray(np.linspace(-1, 1, 2 * H).reshape(H, 2), h.dtype)
  return 0.5 * jnp.sum((h @ V - target) ** 2)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru"])
def test_vjp_through_the_scan_equals_the_jacobian_route(name):
  cell = cells.make(name)
  params = random_params(cell)
  carry0 = jax.tree.map(jnp.asarray, cell.initial_carry(params, (B,)))
  xs = jnp.asarray(RNG.normal(size=(B, T, I)), jnp.float32)
  targets = jnp.asarray(RNG.normal(size=(B, T, 2)), jnp.float32)
  by_vjp = gradients.gradients_by_lag(cell.step, params, carry0, xs, readout_loss, targets)
  by_jac = gradients.gradients_by_lag(cell.step, params, carry0, xs, readout_loss, targets,
                                      method="jacobian")
  n = 2 * H if name == "lstm" else H
  assert by_vjp.shape == (B, T, T + 1, n)
  np.testing.assert_allclose(by_vjp, by_jac, rtol=1e-5, atol=1e-6, equal_nan=True)
  norms = np.asarray(gradients.gradient_norms(by_vjp))
  assert np.isnan(norms[:, 0, 2:]).all() and not np.isnan(norms[:, -1]).any()


def test_elman_gradient_equals_loss_gradient_times_explicit_jacobian_product():
  cell = cells.make("elman")
  params = random_params(cell, scale=1.0)
  xs = jnp.asarray(RNG.normal(size=(1, T, I)), jnp.float32)
  targets = jnp.asarray(RNG.normal(size=(1, T, 2)), jnp.float32)
  G = np.asarray(gradients.gradients_by_lag(cell.step, params, jnp.zeros((1, H)), xs,
                                            readout_loss, targets, max_lag=4))
  assert G.shape == (1, T, 5, H)
  J = np.asarray(jacobians.step_jacobians(cell.step, params, jnp.zeros((1, H)), xs))[0]
  h = np.asarray(jacobians.trajectory(cell.step, params, jnp.zeros((1, H)), xs))[0]
  V = np.linspace(-1, 1, 2 * H).reshape(H, 2)
  for t in range(1, T + 1):
    g = (h[t] @ V - np.asarray(targets[0, t - 1])) @ V.T  # dL_t/dh_t
    for lag in range(min(t, 4) + 1):
      P = np.eye(H)
      for j in range(t - lag + 1, t + 1):  # dh_t/dh_{t-l} = J_t ... J_{t-l+1}
        P = J[j - 1] @ P
      np.testing.assert_allclose(G[0, t - 1, lag], g @ P, rtol=1e-4, atol=1e-6)


def test_linear_rnn_gradient_is_v_times_w_to_the_lag():
  # h_t = W h_{t-1} (symmetric W), L_t = v . h_t:  dL_t/dh_k = v^T W^(t-k).
  W = eigen.symmetric_with_radius(jax.random.key(2), H, 0.9)
  v = RNG.normal(size=H)
  cell = cells.make("elman", activation="identity", use_bias=False)
  params = {"U": jnp.ones((1, H)), "W": jnp.asarray(W, jnp.float32)}
  loss = lambda h, _: jnp.dot(h, jnp.asarray(v, h.dtype))
  G = gradients.gradients_by_lag(cell.step, params, jnp.ones((1, H)), jnp.ones((1, T, 1)),
                                 loss, jnp.zeros((1, T)))
  for lag in range(T + 1):
    expected = v @ np.linalg.matrix_power(W, lag)
    np.testing.assert_allclose(G[0, T - 1, lag], expected, rtol=1e-4, atol=1e-6)
  norms = gradients.gradient_norms(G, units=[0, 1])
  np.testing.assert_allclose(norms[0, T - 1, 2], np.linalg.norm((v @ W @ W)[:2]), rtol=1e-5)


def test_unknown_method_raises():
  cell = cells.make("elman")
  params = random_params(cell)
  with pytest.raises(ValueError, match="known methods"):
    gradients.gradients_by_lag(cell.step, params, jnp.zeros((1, H)), jnp.zeros((1, T, I)),
                               readout_loss, jnp.zeros((1, T, 2)), method="bptt")
