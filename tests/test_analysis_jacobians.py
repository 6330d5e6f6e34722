"""Per-step Jacobians against the closed form (Elman) and central finite differences (gated)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells
from seqlab.analysis import jacobians, state

B, T, I, H = 2, 5, 3, 4


def _inputs(seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(B, T, I)), jnp.float32)


def random_params(cell, seed, scale=0.5, dtype=np.float32):
  """Gaussian params of the cell's init layout (traced by eval_shape: nothing compiled)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), I, H))
  return jax.tree.map(lambda s: jnp.asarray(scale * rng.normal(size=s.shape), dtype), shapes)


@pytest.mark.parametrize("activation, mode", [("tanh", "rev"), ("sigmoid", "fwd")])
def test_elman_jacobian_is_diag_fprime_times_w_transpose(activation, mode):
  cell = cells.make("elman", activation=activation)
  params = random_params(cell, 1, scale=1.0)
  xs = _inputs()
  J = np.asarray(jacobians.step_jacobians(
      cell.step, params, cell.initial_carry(params, (B,)), xs, mode=mode))
  U, W, b = (np.asarray(params[k], np.float64) for k in ("U", "W", "b"))
  for n in range(B):
    h = np.zeros(H)
    for t in range(T):
      a = np.asarray(xs[n, t], np.float64) @ U + h @ W + b  # a_t = x_t U + h_{t-1} W + b
      if activation == "tanh":
        h = np.tanh(a)
        fprime = 1 - h**2
      else:
        h = 1 / (1 + np.exp(-a))
        fprime = h * (1 - h)
      np.testing.assert_allclose(J[n, t], np.diag(fprime) @ W.T, atol=2e-6)


def _finite_difference_jacobians(step, params, carries, xs, eps=1e-6):
  """Central differences of s_t in s_{t-1} at every (b, t), all columns at once (float64)."""
  layout = state.layout(jax.tree.map(lambda c: c[0, 0], carries))
  F = lambda s, like, x: layout.flatten(step(params, layout.unflatten(s, like), x)[0])
  E = eps * jnp.eye(layout.size)

  def one(like, x):
    s = layout.flatten(like)
    cols = jax.vmap(lambda e: (F(s + e, like, x) - F(s - e, like, x)) / (2 * eps))(E)
    return cols.T

  return np.asarray(jax.jit(jax.vmap(jax.vmap(one)))(carries, xs))


@pytest.mark.parametrize("name, options", [
    ("lstm", {"peephole": True}), ("gru", {}), ("gru", {"variant": "torch"}),
])
def test_gated_cell_jacobian_equals_finite_differences(name, options):
  with jax.enable_x64(True):
    cell = cells.make(name, **options)
    params = random_params(cell, 3, dtype=np.float64)
    xs = jnp.asarray(_inputs(5), jnp.float64)
    carry0 = cell.initial_carry(params, (B,))
    J = np.asarray(jacobians.step_jacobians(cell.step, params, carry0, xs))
    carries = jacobians.trajectory(cell.step, params, carry0, xs)
    prev = jax.tree.map(lambda c: c[:, :-1], carries)  # s_{t-1} for t = 1..T
    n = 2 * H if name == "lstm" else H
    assert J.shape == (B, T, n, n)
    fd = _finite_difference_jacobians(cell.step, params, prev, xs)
    np.testing.assert_allclose(J, fd, atol=1e-8)


def test_lstm_hidden_block_is_the_h_rows_and_columns_of_the_state_jacobian():
  cell = cells.make("lstm")
  params = random_params(cell, 6)
  carry0 = cell.initial_carry(params, (B,))
  full = jacobians.step_jacobians(cell.step, params, carry0, _inputs())
  hidden = jacobians.step_jacobians(cell.step, params, carry0, _inputs(), block="hidden")
  assert state.layout(cells.lstm.LSTMState(jnp.zeros(H), jnp.zeros(H))).hidden.tolist() == list(
      range(H))  # s = [h, c]: the hidden block comes first
  np.testing.assert_array_equal(hidden, full[..., :H, :H])


def test_clockwork_counter_is_not_state_and_idle_units_copy_themselves():
  periods = (1, 2)
  cell = cells.make("clockwork", periods=periods)
  params = random_params(cell, 7)
  J = np.asarray(jacobians.step_jacobians(
      cell.step, params, cell.initial_carry(params, (B,)), _inputs()))
  assert J.shape == (B, T, H, H)  # the int step counter is held fixed, not differentiated
  slow = np.arange(H // 2, H)  # period-2 units update at t = 0, 2, 4 (steps 1, 3, 5)
  for t in (1, 3):  # steps 2 and 4: the slow units keep h, dh/dh = identity rows
    np.testing.assert_array_equal(J[:, t][:, slow], np.eye(H)[slow][None].repeat(B, 0))
