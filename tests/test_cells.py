"""Value tests of the pure recurrent cells against independent float64 numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_references import (
  np_elman,
  np_gru,
  np_jordan,
  np_leaky,
  np_lstm,
  np_sigmoid,
)
from cell_testing import (
  GRU_VARIANTS,
  LSTM_VARIANTS,
  B,
  H,
  I,
  O,
  assert_close,
  normal,
  randomize,
  setup,
  to_np,
)

from seqlab import cells
from seqlab.cells import common, jordan, leaky, lstm

# ---------------------------------------------------------------------------
# Single steps.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "leaky_relu", "elu"])
def test_elman_step(activation, use_bias):
  cell, params = setup("elman", activation=activation, use_bias=use_bias)
  assert ("b" in params) == use_bias
  rng = np.random.default_rng(1)
  h, x = normal(rng, B, H), normal(rng, B, I)
  h_new, y = cell.step(params, h, x)
  expected = np_elman(to_np(params), to_np(h), to_np(x), activation)
  assert h_new.shape == (B, H)
  assert_close(h_new, expected)
  assert_close(y, expected)


def test_leaky_relu_and_elu_values_and_derivatives():
  """leaky ReLU: a or 0.01 a, slope 1 or 0.01; ELU: a or e^a - 1, slope 1 or e^a."""
  a = np.array([-3.0, -0.5, -1e-3, 0.25, 2.0])
  closed = {
      "leaky_relu": (np.where(a > 0, a, 0.01 * a), np.where(a > 0, 1.0, 0.01)),
      "elu": (np.where(a > 0, a, np.exp(a) - 1.0), np.where(a > 0, 1.0, np.exp(a))),
  }
  for name, (value, slope) in closed.items():
    f = common.get_activation(name)
    assert_close(f(jnp.asarray(a, jnp.float32)), value)
    assert_close(jax.vmap(jax.grad(f))(jnp.asarray(a, jnp.float32)), slope)
    assert common.DERIVATIVE_BOUND[name] == 1.0


JORDAN_ACTIVATIONS = [("tanh", "identity"), ("relu", "softmax"), ("sigmoid", "tanh")]


@pytest.mark.parametrize("activation,output_activation", JORDAN_ACTIVATIONS)
def test_jordan_free_running(activation, output_activation):
  cell, params = setup(
      "jordan", output_size=O, activation=activation, output_activation=output_activation
  )
  p = to_np(params)
  assert params["W"].shape == (O, H) and params["V"].shape == (H, O)
  rng = np.random.default_rng(2)
  carry = cell.initial_carry(params, (B,))
  assert carry.shape == (B, O)
  np.testing.assert_array_equal(carry, 0.0)
  y_ref = np.zeros((B, O))
  for _ in range(3):  # the carry is y_{t-1}, fed back
    x = normal(rng, B, I)
    carry, y = cell.step(params, carry, x)
    y_ref = np_jordan(p, y_ref, to_np(x), activation, output_activation)
    assert_close(y, y_ref)
    assert_close(carry, y_ref)


@pytest.mark.parametrize("activation,output_activation", JORDAN_ACTIVATIONS)
def test_jordan_teacher_forced(activation, output_activation):
  cell, params = setup(
      "jordan", output_size=O, activation=activation, output_activation=output_activation
  )
  p = to_np(params)
  rng = np.random.default_rng(3)
  carry, x, target = normal(rng, B, O), normal(rng, B, I), normal(rng, B, O)
  # Always the target: the carry is ignored.
  new, y = cell.step(params, carry, jordan.TeacherForced(x, target))
  expected = np_jordan(p, to_np(target), to_np(x), activation, output_activation)
  assert_close(y, expected)
  assert_close(new, expected)
  # Per-row mix (scheduled sampling): True rows see the target, False rows the carry.
  use = np.array([True, False, True])
  _, y = cell.step(params, carry, jordan.TeacherForced(x, target, jnp.asarray(use)))
  y_prev = np.where(use[:, None], to_np(target), to_np(carry))
  assert_close(y, np_jordan(p, y_prev, to_np(x), activation, output_activation))
  # All-False mask is the free-running step.
  _, y_free = cell.step(params, carry, x)
  _, y_none = cell.step(params, carry, jordan.TeacherForced(x, target, jnp.zeros(B, bool)))
  assert_close(y_none, np.asarray(y_free, np.float64))


def _lstm_params_layout(params, options):
  """Checks the param names and fused widths the variant should have."""
  gates = 3 if options.get("coupled") else 4
  assert params["U"].shape == (I, gates * H)
  assert params["W"].shape == (H, gates * H)
  assert params["b"].shape == (gates * H,)
  peeps = {"p_i", "p_o"} if options.get("coupled") else {"p_i", "p_f", "p_o"}
  assert (peeps <= set(params)) == bool(options.get("peephole"))
  if not options.get("peephole"):
    assert not {"p_i", "p_f", "p_o"} & set(params)
  if options.get("coupled") and options.get("peephole"):
    assert "p_f" not in params
  has_ln = {"ln_x", "ln_h", "ln_c_gain", "ln_c_bias"} <= set(params)
  assert has_ln == bool(options.get("layer_norm"))


@pytest.mark.parametrize("options", LSTM_VARIANTS, ids=lambda o: "-".join(o) or "standard")
def test_lstm_step(options):
  cell, params = setup("lstm", **options)
  _lstm_params_layout(params, options)
  rng = np.random.default_rng(4)
  h, c, x = normal(rng, B, H), normal(rng, B, H), normal(rng, B, I)
  carry, y = cell.step(params, lstm.LSTMState(h=h, c=c), x)
  h_ref, c_ref = np_lstm(to_np(params), to_np(h), to_np(c), to_np(x), **options)
  assert isinstance(carry, lstm.LSTMState)
  assert_close(carry.h, h_ref)
  assert_close(carry.c, c_ref)
  assert_close(y, h_ref)


@pytest.mark.parametrize("options", GRU_VARIANTS, ids=lambda o: "-".join(map(str, o.values())))
def test_gru_step(options):
  cell, params = setup("gru", **options)
  assert ("b_hn" in params) == (options["variant"] == "torch")
  assert ({"ln_x", "ln_h"} <= set(params)) == bool(options.get("layer_norm"))
  rng = np.random.default_rng(5)
  h, x = normal(rng, B, H), normal(rng, B, I)
  h_new, y = cell.step(params, h, x)
  expected = np_gru(to_np(params), to_np(h), to_np(x), **options)
  assert_close(h_new, expected)
  assert_close(y, expected)


def test_gru_variants_differ():
  """With b_hn = 0 and random params, reset-before and reset-after still differ."""
  rng = np.random.default_rng(6)
  _, params = setup("gru", variant="cho")
  h, x = normal(rng, B, H), normal(rng, B, I)
  torch_params = params | {"b_hn": jnp.zeros(H)}
  cho = np_gru(to_np(params), to_np(h), to_np(x), variant="cho")
  torch = np_gru(to_np(torch_params), to_np(h), to_np(x), variant="torch")
  assert np.abs(cho - torch).max() > 1e-3
  assert_close(cells.gru.step(torch_params, h, x)[1], torch)


def test_leaky_unit_rates():
  np.testing.assert_array_equal(leaky.unit_rates(0.3, 4), [0.3] * 4)
  np.testing.assert_array_equal(
      leaky.unit_rates((1.0, 0.5, 0.1), 6), [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
  )
  np.testing.assert_array_equal(leaky.unit_rates([0.2, 0.4], 4), [0.2, 0.2, 0.4, 0.4])
  # Not divisible: contiguous groups in the given order, sizes differing by at most one.
  rates = (0.9, 0.5, 0.2, 0.05)
  got = leaky.unit_rates(rates, 10)
  assert got.shape == (10,)
  values, starts, counts = np.unique(got, return_index=True, return_counts=True)
  order = np.argsort(starts)
  np.testing.assert_array_equal(values[order], rates)
  ends = np.cumsum(counts[order])
  np.testing.assert_array_equal(np.sort(starts), np.concatenate([[0], ends[:-1]]))
  assert counts.max() - counts.min() <= 1
  for bad in (0.0, 1.5, (0.5, -0.1)):
    with pytest.raises(ValueError, match=r"leaky rates must lie in \(0, 1\]"):
      leaky.unit_rates(bad, 4)


@pytest.mark.parametrize(
    "rate,expected_a",
    [(0.3, np.full(H, 0.3)), ((1.0, 0.5, 0.1), np.array([1.0, 1.0, 0.5, 0.5, 0.1, 0.1]))],
    ids=["scalar", "tuple"],
)
def test_leaky_fixed_rate_step(rate, expected_a):
  cell, params = setup("leaky", rate=rate)
  assert "a_logit" not in params
  rng = np.random.default_rng(7)
  h, x = normal(rng, B, H), normal(rng, B, I)
  h_new, y = cell.step(params, h, x)
  expected = np_leaky(to_np(params), to_np(h), to_np(x), expected_a)
  assert_close(h_new, expected)
  assert_close(y, expected)


def test_leaky_rate_one_is_elman():
  _, params = setup("leaky", rate=1.0)
  rng = np.random.default_rng(8)
  h, x = normal(rng, B, H), normal(rng, B, I)
  expected = np_elman(to_np(params), to_np(h), to_np(x), "tanh")
  assert_close(cells.leaky.step(params, h, x)[1], expected)


def test_leaky_learned_rate():
  cell = cells.make("leaky", rate=(0.2, 0.7), learn_rate=True)
  init = cell.init(jax.random.key(0), I, H)
  # a_logit starts at logit(rate), i.e. sigmoid(a_logit) = rate per unit group.
  assert_close(jax.nn.sigmoid(init["a_logit"]), np.array([0.2] * 3 + [0.7] * 3))
  params = randomize(init, 9)
  rng = np.random.default_rng(10)
  h, x = normal(rng, B, H), normal(rng, B, I)
  h_new, _ = cell.step(params, h, x)  # the bound `rate` is unused once the rates are learned
  p = to_np(params)
  a = np_sigmoid(p["a_logit"])  # a = sigmoid(a_logit)
  assert_close(h_new, np_leaky(p, to_np(h), to_np(x), a))


def test_esn_step_and_gradients():
  leak = 0.3
  cell, params = setup("esn", leak_rate=leak, rho=0.9, density=0.5)
  assert set(params) == {"U", "W", "b"}
  rng = np.random.default_rng(11)
  h, x = normal(rng, B, H), normal(rng, B, I)
  h_new, y = cell.step(params, h, x)
  p = to_np(params)
  expected = np_leaky(p, to_np(h), to_np(x), leak)  # (1 - alpha) h + alpha tanh(x U + h W + b)
  assert_close(h_new, expected)
  assert_close(y, expected)

  def loss(params, h):
    return jnp.sum(cell.step(params, h, x)[1] ** 2)

  g_params, g_h = jax.grad(loss, argnums=(0, 1))(params, h)
  for name in ("U", "W", "b"):
    np.testing.assert_array_equal(g_params[name], 0.0)
  # dL/dh = (1 - alpha) gy + (alpha gy (1 - tanh^2)) W^T with gy = 2 h_t.
  t = np.tanh(to_np(x) @ p["U"] + to_np(h) @ p["W"] + p["b"])
  gy = 2.0 * expected
  g_ref = (1.0 - leak) * gy + (leak * gy * (1.0 - t**2)) @ p["W"].T
  assert np.abs(np.asarray(g_h)).max() > 1e-3
  assert_close(g_h, g_ref)
