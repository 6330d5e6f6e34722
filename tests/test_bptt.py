"""BPTT = jax.grad through scan, against the notes' hand recursion and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells, unroll

ACTIVATION_DERIVATIVE = {
    "tanh": lambda h: 1.0 - h**2,  # f'(a) written through h = f(a)
    "sigmoid": lambda h: h * (1.0 - h),
}


def _random_elman(seed, I=3, H=4, O=2):
  rng = np.random.default_rng(seed)
  p = {
      "U": rng.normal(0, 0.5, (I, H)),
      "W": rng.normal(0, 0.5, (H, H)),
      "b": rng.normal(0, 0.5, (H,)),
  }
  V, c = rng.normal(0, 0.5, (H, O)), rng.normal(0, 0.5, (O,))
  return p, V, c, rng


def _elman_loss(params, V, c, xs, targets, activation):
  """L = sum_t L_t, L_t = 0.5 ||V h_t + c - y_t||^2 over the batch."""
  cell = cells.make("elman", activation=activation)
  h0 = cell.initial_carry(params, (xs.shape[0],))
  _, hs = unroll.scan(cell.step, params, h0, xs)
  return 0.5 * jnp.sum((hs @ V + c - targets) ** 2)


def _hand_bptt(params, V, c, xs, targets, activation):
  """The notes' recursion: delta_t = (dL_t/dh_t + W^T delta_{t+1}) * f'(a_t), in numpy.

  Row-vector code: a_t = x_t U + h_{t-1} W + b, so W^T delta becomes delta @ W.T, and
  dL/dU = sum_t x_t^T delta_t, dL/dW = sum_t h_{t-1}^T delta_t, dL/db = sum_t delta_t.
  """
  U, W, b = params["U"], params["W"], params["b"]
  f = {"tanh": np.tanh, "sigmoid": lambda a: 1 / (1 + np.exp(-a))}[activation]
  B, T, _ = xs.shape
  hs = [np.zeros((B, W.shape[0]))]
  for t in range(T):
    hs.append(f(xs[:, t] @ U + hs[-1] @ W + b))
  grads = {k: np.zeros_like(v) for k, v in params.items()}
  delta_next = np.zeros((B, W.shape[0]))
  for t in reversed(range(T)):
    h = hs[t + 1]
    dL_dh = (h @ V + c - targets[:, t]) @ V.T  # explicit path through o_t
    delta = (dL_dh + delta_next @ W.T) * ACTIVATION_DERIVATIVE[activation](h)
    grads["U"] += xs[:, t].T @ delta
    grads["W"] += hs[t].T @ delta
    grads["b"] += delta.sum(0)
    delta_next = delta
  return grads


def _central_differences(fn, params, eps=1e-6):
  """dF/dtheta_i ~ (F(theta + eps e_i) - F(theta - eps e_i)) / (2 eps), every entry."""
  grads = {}
  for name, value in params.items():
    g = np.zeros_like(value)
    for idx in np.ndindex(value.shape):
      plus, minus = dict(params), dict(params)
      plus[name] = value.copy()
      plus[name][idx] += eps
      minus[name] = value.copy()
      minus[name][idx] -= eps
      g[idx] = (fn(plus) - fn(minus)) / (2 * eps)
    grads[name] = g
  return grads


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_elman_grad_equals_hand_bptt_and_finite_differences(activation):
  with jax.enable_x64(True):
    params, V, c, rng = _random_elman(0)
    xs = rng.normal(size=(2, 6, 3))
    targets = rng.normal(size=(2, 6, 2))
    loss = jax.jit(lambda p: _elman_loss(p, V, c, xs, targets, activation))
    autodiff = jax.grad(loss)({k: jnp.asarray(v) for k, v in params.items()})
    by_hand = _hand_bptt(params, V, c, xs, targets, activation)
    numeric = _central_differences(lambda p: float(loss(p)), params)
    for name in params:
      np.testing.assert_allclose(autodiff[name], by_hand[name], rtol=1e-10, atol=1e-12)
      np.testing.assert_allclose(autodiff[name], numeric[name], rtol=1e-6, atol=1e-8)


def test_float32_grad_matches_hand_bptt():
  params, V, c, rng = _random_elman(1)
  xs, targets = rng.normal(size=(3, 9, 3)), rng.normal(size=(3, 9, 2))
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  autodiff = jax.grad(_elman_loss)(jax.tree.map(f32, params), f32(V), f32(c), f32(xs),
                                   f32(targets), "tanh")
  by_hand = _hand_bptt(params, V, c, xs, targets, "tanh")
  for name in params:
    np.testing.assert_allclose(autodiff[name], by_hand[name], rtol=1e-4, atol=1e-5)


# The notes' worked example (003, after Behera, "Intelligent Systems and Control"):
#   y(t) = sigma(w x(t-1) + g y(t-1)),  E = 1/2 sum_t (y_d(t) - y(t))^2,
#   x(0) = 0.05, x(1) = 0.1, w = 0.3, g = 0.4, y(0) = 0, y_d(1) = 0.6, y_d(2) = 0.75.
X = np.array([0.05, 0.1])
Y_D = np.array([0.6, 0.75])
W0, G0, ETA = 0.3, 0.4, 0.5


def _logistic_net_loss(w, g):
  """The output recurs: a Jordan cell with one logistic unit, V = 1, c = 0."""
  cell = cells.make("jordan", output_size=1, activation="sigmoid")
  params = {
      "U": jnp.reshape(w, (1, 1)),
      "W": jnp.reshape(g, (1, 1)),
      "b": jnp.zeros(1),
      "V": jnp.ones((1, 1)),
      "c": jnp.zeros(1),
  }
  xs = jnp.asarray(X, jnp.float64).reshape(1, 2, 1)
  _, ys = unroll.scan(cell.step, params, cell.initial_carry(params, (1,)), xs)
  return 0.5 * jnp.sum((Y_D - ys[0, :, 0]) ** 2), ys[0, :, 0]


def test_worked_example_of_the_notes():
  with jax.enable_x64(True):
    (_, ys), (dw, dg) = jax.value_and_grad(_logistic_net_loss, argnums=(0, 1), has_aux=True)(
        jnp.float64(W0), jnp.float64(G0)
    )
    # Forward pass as printed in the notes (they round: sigma(0.23148) = 0.55762, printed 0.5575).
    np.testing.assert_allclose(ys, [0.5037, 0.5575], atol=1.5e-4)
    # The notes' backward recursion: delta_2 = y2(1-y2) e2; delta_1 = y1(1-y1)(e1 + g delta_2).
    y1, y2 = np.asarray(ys)
    d2 = y2 * (1 - y2) * (Y_D[1] - y2)
    d1 = y1 * (1 - y1) * ((Y_D[0] - y1) + G0 * d2)
    np.testing.assert_allclose([d2, d1], [0.0474, 0.0288], atol=1e-4)
    # Delta w = eta sum_t delta_t x(t-1) = -eta dE/dw; likewise for g with y(t-1).
    np.testing.assert_allclose(-ETA * dw, ETA * (d2 * X[1] + d1 * X[0]), rtol=1e-12)
    np.testing.assert_allclose(-ETA * dg, ETA * (d2 * y1 + d1 * 0.0), rtol=1e-12)
    # The notes print g_new = 0.4119; their w_new = 0.300307 slips an addition:
    # 0.3 + 0.5 * (0.0474 * 0.1 + 0.0288 * 0.05) = 0.30309.
    np.testing.assert_allclose(G0 - ETA * dg, 0.4119, atol=1e-4)
    np.testing.assert_allclose(W0 - ETA * dw, 0.30309, atol=1e-5)
    loss_at = lambda w: _logistic_net_loss(w, G0)[0]
    numeric_dw = (loss_at(W0 + 1e-6) - loss_at(W0 - 1e-6)) / 2e-6
    np.testing.assert_allclose(dw, numeric_dw, rtol=1e-7)
