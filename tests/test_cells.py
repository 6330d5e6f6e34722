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

from seqlab import cells
from seqlab.cells import common, jordan, leaky, lstm

I, H, O, B = 4, 6, 3, 3  # input, hidden, output sizes (all distinct) and batch
TOL = {"atol": 1e-5, "rtol": 1e-5}
BF16_TOL = {"atol": 3e-2, "rtol": 3e-2}


# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------


def randomize(params, seed, scale=0.5):
  """Every param leaf replaced by scale * N(0, 1) (same shapes and dtypes)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda leaf: jnp.asarray(scale * rng.standard_normal(leaf.shape), leaf.dtype), params
  )


def to_np(tree):
  """A pytree of arrays as float64 numpy arrays."""
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def setup(name, seed=0, input_size=I, hidden_size=H, **options):
  """A cell made with `options` and randomised params."""
  cell = cells.make(name, **options)
  params = randomize(cell.init(jax.random.key(seed), input_size, hidden_size), seed + 100)
  return cell, params


def normal(rng, *shape):
  """A float32 array of standard normals."""
  return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def assert_close(actual, expected, tol=None):
  """Allclose at float32 tolerance."""
  np.testing.assert_allclose(np.asarray(actual, np.float64), expected, **(tol or TOL))


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


LSTM_VARIANTS = [
    {},
    {"peephole": True},
    {"coupled": True},
    {"coupled": True, "peephole": True},
    {"layer_norm": True},
    {"peephole": True, "layer_norm": True},
    {"coupled": True, "peephole": True, "layer_norm": True},
]


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


GRU_VARIANTS = [
    {"variant": "cho"},
    {"variant": "torch"},
    {"variant": "cho", "layer_norm": True},
    {"variant": "torch", "layer_norm": True},
]


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


# ---------------------------------------------------------------------------
# Batch shapes and multi-step loops.
# ---------------------------------------------------------------------------


def test_batch_shape_2x3_lstm():
  options = {"peephole": True, "layer_norm": True}
  cell, params = setup("lstm", **options)
  carry = cell.initial_carry(params, (2, 3))
  assert carry.h.shape == carry.c.shape == (2, 3, H)
  np.testing.assert_array_equal(carry.h, 0.0)
  np.testing.assert_array_equal(carry.c, 0.0)
  rng = np.random.default_rng(12)
  h_ref, c_ref = np.zeros((2, 3, H)), np.zeros((2, 3, H))
  for _ in range(2):
    x = normal(rng, 2, 3, I)
    carry, y = cell.step(params, carry, x)
    h_ref, c_ref = np_lstm(to_np(params), h_ref, c_ref, to_np(x), **options)
    assert y.shape == (2, 3, H)
    assert_close(carry.h, h_ref)
    assert_close(carry.c, c_ref)


@pytest.mark.parametrize(
    "name,options,ref",
    [
        ("elman", {"activation": "relu"}, lambda p, h, x: np_elman(p, h, x, "relu")),
        ("gru", {"variant": "torch", "layer_norm": True},
         lambda p, h, x: np_gru(p, h, x, variant="torch", layer_norm=True)),
        ("leaky", {"rate": (0.5, 0.25)},
         lambda p, h, x: np_leaky(p, h, x, np.array([0.5] * 3 + [0.25] * 3))),
    ],
    ids=["elman", "gru", "leaky"],
)
def test_batch_shape_2x3(name, options, ref):
  cell, params = setup(name, **options)
  carry = cell.initial_carry(params, (2, 3))
  assert carry.shape == (2, 3, H)
  np.testing.assert_array_equal(carry, 0.0)
  rng = np.random.default_rng(13)
  h_ref = np.zeros((2, 3, H))
  for _ in range(2):
    x = normal(rng, 2, 3, I)
    carry, y = cell.step(params, carry, x)
    h_ref = ref(to_np(params), h_ref, to_np(x))
    assert_close(carry, h_ref)
    assert_close(y, h_ref)


def test_batch_shape_2x3_jordan_teacher_mask():
  cell, params = setup("jordan", output_size=O, output_activation="softmax")
  carry = cell.initial_carry(params, (2, 3))
  assert carry.shape == (2, 3, O)
  rng = np.random.default_rng(14)
  carry, x, target = normal(rng, 2, 3, O), normal(rng, 2, 3, I), normal(rng, 2, 3, O)
  use = rng.random((2, 3)) < 0.5
  use[0, 0], use[0, 1] = True, False
  _, y = cell.step(params, carry, jordan.TeacherForced(x, target, jnp.asarray(use)))
  y_prev = np.where(use[..., None], to_np(target), to_np(carry))
  assert_close(y, np_jordan(to_np(params), y_prev, to_np(x), "tanh", "softmax"))


T = 5


@pytest.mark.parametrize("options", LSTM_VARIANTS, ids=lambda o: "-".join(o) or "standard")
def test_lstm_multistep(options):
  cell, params = setup("lstm", seed=20, **options)
  p = to_np(params)
  rng = np.random.default_rng(21)
  xs = normal(rng, T, B, I)
  carry = cell.initial_carry(params, (B,))
  h_ref, c_ref = np.zeros((B, H)), np.zeros((B, H))
  for t in range(T):
    carry, y = cell.step(params, carry, xs[t])
    h_ref, c_ref = np_lstm(p, h_ref, c_ref, to_np(xs[t]), **options)
    assert_close(y, h_ref)
    assert_close(carry.c, c_ref)
  assert np.abs(c_ref).max() > 0.1  # the state really moved


@pytest.mark.parametrize("options", GRU_VARIANTS, ids=lambda o: "-".join(map(str, o.values())))
def test_gru_multistep(options):
  cell, params = setup("gru", seed=30, **options)
  p = to_np(params)
  rng = np.random.default_rng(31)
  xs = normal(rng, T, B, I)
  carry = cell.initial_carry(params, (B,))
  h_ref = np.zeros((B, H))
  for t in range(T):
    carry, y = cell.step(params, carry, xs[t])
    h_ref = np_gru(p, h_ref, to_np(xs[t]), **options)
    assert_close(y, h_ref)
    assert_close(carry, h_ref)
  assert np.abs(h_ref).max() > 0.1


def test_step_under_jit_matches():
  cell, params = setup("lstm", peephole=True, layer_norm=True)
  rng = np.random.default_rng(40)
  carry = lstm.LSTMState(normal(rng, B, H), normal(rng, B, H))
  x = normal(rng, B, I)
  eager = cell.step(params, carry, x)
  jitted = jax.jit(cell.step)(params, carry, x)
  for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------------------
# dtype option.
# ---------------------------------------------------------------------------


BF16_CASES = [
    ("elman", {}),
    ("lstm", {}),
    ("gru", {}),
    ("leaky", {"rate": 0.5}),
    ("elman", {"recurrent_init": "xavier", "activation": "relu"}),
    ("jordan", {"output_size": O, "output_activation": "softmax"}),
    ("lstm", {"peephole": True, "layer_norm": True, "recurrent_init": "xavier"}),
    ("lstm", {"coupled": True, "recurrent_init": "identity"}),
    ("gru", {"variant": "torch", "layer_norm": True, "recurrent_init": "spectral_radius"}),
    ("leaky", {"rate": 0.5, "learn_rate": True, "recurrent_init": "xavier"}),
    ("esn", {"leak_rate": 0.5}),
]


@pytest.mark.parametrize(
    "name,options", BF16_CASES, ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in BF16_CASES]
)
def test_bfloat16_step_matches_float32(name, options):
  cell = cells.make(name, dtype=jnp.bfloat16, **options)
  params16 = cell.init(jax.random.key(0), I, H)
  for leaf in jax.tree.leaves(params16):
    assert leaf.dtype == jnp.bfloat16
  params16 = randomize(params16, 50)
  params32 = jax.tree.map(lambda a: a.astype(jnp.float32), params16)  # the same values
  carry16 = cell.initial_carry(params16, (B,))
  assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(carry16))
  carry32 = cell.initial_carry(params32, (B,))
  rng = np.random.default_rng(51)
  for _ in range(2):
    x = normal(rng, B, I)
    carry16, y16 = cell.step(params16, carry16, x.astype(jnp.bfloat16))
    carry32, y32 = cell.step(params32, carry32, x)
    assert y16.dtype == jnp.bfloat16
    assert y32.dtype == jnp.float32
    assert_close(y16, np.asarray(y32, np.float64), BF16_TOL)
