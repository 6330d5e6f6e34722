"""Value tests of the `ESN`: reservoir == the pure cell, ridge readout == numpy, Mackey-Glass."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqlab import cells, unroll
from seqlab.models.esn import ESN, fit, ridge_regression

TOL = {"atol": 1e-5, "rtol": 1e-5}
B, T, I, H, O = 3, 20, 2, 12, 2
OPTIONS = {"rho": 0.9, "density": 0.3, "input_scaling": 0.8, "bias_scaling": 0.2, "leak_rate": 0.7}


def inputs(seed=0, batch=B, steps=T):
  """Random inputs [B, T, I] and targets [B, T, O] (a nonlinear function of the inputs)."""
  rng = np.random.default_rng(seed)
  xs = rng.uniform(-1, 1, (batch, steps, I))
  ys = np.stack([np.sin(2 * xs[..., 0]), xs[..., 0] * np.roll(xs[..., 1], 1, axis=1)], -1)
  return jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.float32)


def mackey_glass(n, tau=17.0, beta=0.2, gamma=0.1, power=10, dt=0.1, every=10, seed=0):
  """dx/dt = beta x(t - tau) / (1 + x(t - tau)^power) - gamma x(t), Euler, sampled each 1.0."""
  rng = np.random.default_rng(seed)
  lag = int(round(tau / dt))
  x = list(1.2 + 0.1 * rng.standard_normal(lag + 1))
  for _ in range((n + 100) * every):
    x_now, x_lag = x[-1], x[-lag - 1]
    x.append(x_now + dt * (beta * x_lag / (1 + x_lag**power) - gamma * x_now))
  return np.array(x[lag + 1 :: every][100 : 100 + n])  # drop the transient


def nrmse(pred, target):
  """sqrt(mean((y_hat - y)^2) / var(y))."""
  pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
  return float(np.sqrt(np.mean((pred - target) ** 2) / np.var(target)))


# ---------------------------------------------------------------------------
# Values.
# ---------------------------------------------------------------------------


def test_reservoir_states_equal_the_pure_cell():
  """h_t of the model == cells.esn stepped one step at a time and via unroll.scan (padded)."""
  xs, _ = inputs()
  lengths = jnp.array([20, 7, 13])
  model = ESN(hidden_size=H, output_size=O, readout_input=True, **OPTIONS)
  variables = model.init(jax.random.key(0), xs)
  assert set(variables) == {"params", "reservoir"}
  assert set(variables["params"]) == {"W_out"}
  reservoir = variables["reservoir"]["reservoir"]["cell"]
  z = model.apply(variables, xs, lengths, method=ESN.features)

  cell = cells.make("esn", **OPTIONS)
  _, hs = unroll.scan(cell.step, reservoir, cell.initial_carry(reservoir, (B,)), xs, lengths)
  np.testing.assert_allclose(z[..., 1 + I :], hs, **TOL)
  h, mask = cell.initial_carry(reservoir, (B,)), np.asarray(unroll.length_mask(lengths, T))
  for t in range(T):  # step by step, the carry passed along
    h, _ = cell.step(reservoir, h, xs[:, t])
    np.testing.assert_allclose(z[mask[:, t], t, 1 + I :], h[mask[:, t]], **TOL)
  np.testing.assert_array_equal(z[:, :, :1], mask[..., None])  # the constant 1
  np.testing.assert_allclose(z[..., 1 : 1 + I], np.where(mask[..., None], xs, 0), **TOL)


def test_fitted_readout_equals_numpy_ridge_solution():
  xs, ys = inputs(1)
  lengths, washout, ridge = jnp.array([20, 15, 18]), 4, 1e-2
  model = ESN(hidden_size=H, output_size=O, **OPTIONS)
  variables = fit(model, model.init(jax.random.key(0), xs), xs, ys,
                  ridge=ridge, washout=washout, lengths=lengths)

  z = np.asarray(model.apply(variables, xs, lengths, method=ESN.features), np.float64)
  rows = [(b, t) for b in range(B) for t in range(washout, int(lengths[b]))]
  Z = np.stack([z[b, t] for b, t in rows]).T  # [D, N], the notes' column layout
  Y = np.stack([np.asarray(ys[b, t], np.float64) for b, t in rows]).T  # [O, N]
  # W_out = Y Z^T (Z Z^T + lambda I)^-1, i.e. W_out^T solves (Z Z^T + lambda I) W_out^T = Z Y^T.
  W_out = np.linalg.solve(Z @ Z.T + ridge * np.eye(Z.shape[0]), Z @ Y.T).T
  np.testing.assert_allclose(variables["params"]["W_out"], W_out.T, atol=1e-4, rtol=1e-4)
  pred = model.apply(variables, xs, lengths)
  np.testing.assert_allclose(pred, z @ W_out.T, atol=1e-4, rtol=1e-4)
  np.testing.assert_array_equal(pred[1, 15:], 0)  # padded steps


def test_ridge_regression_recovers_a_linear_map():
  rng = np.random.default_rng(2)
  z = rng.standard_normal((200, 5))
  W = rng.standard_normal((5, 3))
  np.testing.assert_allclose(ridge_regression(jnp.asarray(z), jnp.asarray(z @ W), 0.0), W,
                             atol=1e-4)


def test_mackey_glass_one_step_prediction():
  """Mackey-Glass (tau = 17), ridge fit on steps 100..1000, NRMSE on the next 400 steps."""
  u = np.tanh(mackey_glass(1401) - 1.0)  # squashed around 0, as in Jaeger (2001)
  xs = jnp.asarray(u[None, :-1, None], jnp.float32)
  ys = jnp.asarray(u[None, 1:, None], jnp.float32)
  model = ESN(hidden_size=100, output_size=1, rho=0.9, input_scaling=0.5, bias_scaling=0.2,
              readout_input=True)
  variables = fit(model, model.init(jax.random.key(0), xs), xs[:, :1000], ys[:, :1000],
                  ridge=1e-8, washout=100)
  pred = jax.jit(model.apply)(variables, xs)
  test_error = nrmse(pred[0, 1000:], ys[0, 1000:])
  persistence = nrmse(xs[0, 1000:], ys[0, 1000:])  # predict y_t = x_t
  print(f"Mackey-Glass NRMSE: ESN {test_error:.4f}, persistence {persistence:.4f}")
  assert test_error < 0.02
  assert test_error < persistence / 10


def test_gradient_training_of_the_readout():
  """Adam on W_out alone lowers the MSE to near the ridge optimum; no gradient reaches U, W, b."""
  xs, ys = inputs(3, batch=4, steps=40)
  model = ESN(hidden_size=H, output_size=O, readout_input=True, **OPTIONS)
  variables = model.init(jax.random.key(0), xs)

  def loss_fn(params, variables=variables):
    pred = model.apply({**variables, "params": params}, xs)
    return jnp.mean((pred - ys) ** 2)

  full_grads = jax.grad(lambda v: jnp.mean((model.apply(v, xs) - ys) ** 2))(variables)
  assert all(np.all(g == 0) for g in jax.tree.leaves(full_grads["reservoir"]))

  opt = optax.adam(3e-2)

  @jax.jit
  def train_step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  params, opt_state = variables["params"], opt.init(variables["params"])
  initial = float(loss_fn(params))
  for _ in range(300):
    params, opt_state, loss = train_step(params, opt_state)
  optimum = float(loss_fn(fit(model, variables, xs, ys, ridge=1e-8)["params"]))
  print(f"ESN readout by gradient: MSE {initial:.4f} -> {float(loss):.4f}; ridge {optimum:.4f}")
  assert loss < 0.2 * initial
  assert loss < 1.2 * optimum  # the reservoir, not the optimiser, limits the fit


# ---------------------------------------------------------------------------
# jit, vmap, dtype.
# ---------------------------------------------------------------------------


def test_vmap_over_stacked_reservoirs_equals_each_member():
  """A stack of ESNs (reservoirs and fitted readouts) under vmap == each member alone."""
  xs, ys = inputs(4)
  model = ESN(hidden_size=H, output_size=O, **OPTIONS)
  keys = jax.random.split(jax.random.key(0), 3)
  stacked = jax.vmap(model.init, in_axes=(0, None))(keys, xs)
  stacked = jax.vmap(lambda v: fit(model, v, xs, ys, ridge=1e-3, washout=2))(stacked)
  preds = jax.jit(jax.vmap(model.apply, in_axes=(0, None)))(stacked, xs)
  for m in range(3):
    member = jax.tree.map(lambda a, m=m: a[m], stacked)
    np.testing.assert_allclose(preds[m], model.apply(member, xs), atol=1e-4, rtol=1e-4)
  assert not np.allclose(preds[0], preds[1])


def test_bfloat16_forward_close_to_float32():
  xs, ys = inputs(5)
  model32 = ESN(hidden_size=H, output_size=O, **OPTIONS)
  model16 = ESN(hidden_size=H, output_size=O, dtype=jnp.bfloat16, **OPTIONS)
  variables = fit(model32, model32.init(jax.random.key(0), xs), xs, ys, ridge=1e-1)
  pred32 = model32.apply(variables, xs)
  pred16 = jax.jit(model16.apply)(variables, xs)
  assert pred16.dtype == jnp.bfloat16
  # measured max |bf16 - f32| ~ 0.007 on outputs of median size ~0.14: ~3x that
  np.testing.assert_allclose(np.asarray(pred16, np.float32), pred32, atol=2e-2, rtol=1e-2)
