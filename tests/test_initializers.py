"""Value tests of the weight initialisation schemes and the cells' init layouts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells
from seqlab.cells import initializers

KEY = jax.random.key(0)


def np_radius(W):
  """rho(W) = max |lambda_i(W)| in float64 numpy."""
  return np.abs(np.linalg.eigvals(np.asarray(W, np.float64))).max()


def blocks(W, num_blocks):
  """The [H, H] gate blocks of a fused recurrent matrix [H, k*H]."""
  return np.split(np.asarray(W), num_blocks, axis=1)


# ---------------------------------------------------------------------------
# Identity (IRNN).
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_identity_elman(scale):
  params = cells.make("elman", recurrent_init="identity", recurrent_scale=scale).init(KEY, 3, 7)
  np.testing.assert_array_equal(params["W"], scale * np.eye(7, dtype=np.float32))


@pytest.mark.parametrize("coupled,gates", [(False, 4), (True, 3)])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_identity_lstm_per_gate(scale, coupled, gates):
  cell = cells.make("lstm", recurrent_init="identity", recurrent_scale=scale, coupled=coupled)
  W = cell.init(KEY, 3, 5)["W"]
  assert W.shape == (5, gates * 5)
  for block in blocks(W, gates):
    np.testing.assert_array_equal(block, scale * np.eye(5, dtype=np.float32))


def test_identity_gru_per_gate():
  W = cells.make("gru", recurrent_init="identity", recurrent_scale=0.5).init(KEY, 3, 4)["W"]
  for block in blocks(W, 3):
    np.testing.assert_array_equal(block, 0.5 * np.eye(4, dtype=np.float32))


def test_identity_non_square_raises():
  with pytest.raises(ValueError, match=r"identity init needs a square matrix, got shape \(3, 4\)"):
    initializers.identity(KEY, (3, 4))
  # A Jordan W is [output, hidden]: not square when output_size != hidden_size.
  cell = cells.make("jordan", output_size=3, recurrent_init="identity")
  with pytest.raises(ValueError, match=r"square matrix, got shape \(3, 5\)"):
    cell.init(KEY, 2, 5)


# ---------------------------------------------------------------------------
# Target spectral radius.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 8, 32, 100])
@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0, 1.1, 1.5])
def test_spectral_radius_init(rho, size):
  W = cells.make("elman", recurrent_init="spectral_radius", recurrent_scale=rho).init(KEY, 3, size)
  assert W["W"].shape == (size, size)
  assert abs(np_radius(W["W"]) - rho) < 1e-4


@pytest.mark.parametrize("rho", [0.5, 1.1])
def test_spectral_radius_init_per_gate(rho):
  cell = cells.make("lstm", recurrent_init="spectral_radius", recurrent_scale=rho)
  W = cell.init(KEY, 3, 16)["W"]
  radii = [np_radius(block) for block in blocks(W, 4)]
  np.testing.assert_allclose(radii, rho, atol=1e-4)
  assert len({block.tobytes() for block in blocks(W, 4)}) == 4  # independent draws


def test_spectral_radius_function_values():
  rng = np.random.default_rng(0)
  Ws = rng.standard_normal((5, 12, 12)).astype(np.float32)
  expected = [np_radius(W) for W in Ws]
  radius = initializers.spectral_radius
  np.testing.assert_allclose(radius(jnp.asarray(Ws[0])), expected[0], rtol=1e-6)
  # Leading batch dims are handled directly.
  np.testing.assert_allclose(radius(jnp.asarray(Ws)), expected, rtol=1e-6)
  # A rotation has complex eigenvalues of modulus 1: the radius is a modulus, not a real part.
  theta = 0.7
  rot = 2.0 * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
  np.testing.assert_allclose(radius(jnp.asarray(rot, jnp.float32)), 2.0, rtol=1e-6)


def test_spectral_radius_under_jit_and_vmap():
  rng = np.random.default_rng(1)
  Ws = jnp.asarray(rng.standard_normal((4, 9, 9)), jnp.float32)
  expected = np.array([np_radius(W) for W in Ws])
  got_jit = jax.jit(initializers.spectral_radius)(Ws[2])
  assert got_jit.shape == () and got_jit.dtype == jnp.float32
  np.testing.assert_allclose(got_jit, expected[2], rtol=1e-6)
  got_vmap = jax.vmap(initializers.spectral_radius)(Ws)
  assert got_vmap.shape == (4,)
  np.testing.assert_allclose(got_vmap, expected, rtol=1e-6)
  got_jit_vmap = jax.jit(jax.vmap(initializers.spectral_radius))(Ws)
  np.testing.assert_allclose(got_jit_vmap, expected, rtol=1e-6)
  # vmap with the matrix axis not first, and rescaling under jit.
  got_axis = jax.vmap(initializers.spectral_radius, in_axes=2)(jnp.moveaxis(Ws, 0, 2))
  np.testing.assert_allclose(got_axis, expected, rtol=1e-6)
  scaled = jax.jit(initializers.scale_to_spectral_radius, static_argnums=1)(Ws[0], 0.8)
  assert abs(np_radius(scaled) - 0.8) < 1e-5


# ---------------------------------------------------------------------------
# Orthogonal.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 0.5, 1.2])
@pytest.mark.parametrize("size", [5, 32])
def test_orthogonal_elman(scale, size):
  W = np.asarray(cells.make("elman", recurrent_scale=scale).init(KEY, 3, size)["W"], np.float64)
  np.testing.assert_allclose(W.T @ W, scale**2 * np.eye(size), atol=1e-5)
  np.testing.assert_allclose(W @ W.T, scale**2 * np.eye(size), atol=1e-5)


def test_orthogonal_lstm_per_gate():
  W = cells.make("lstm", recurrent_scale=0.9).init(KEY, 3, 8)["W"]
  for block in blocks(W, 4):
    block = np.asarray(block, np.float64)
    np.testing.assert_allclose(block.T @ block, 0.81 * np.eye(8), atol=1e-5)


def test_orthogonal_semi_orthogonal_shapes():
  tall = np.asarray(initializers.orthogonal(KEY, (12, 5), 0.5), np.float64)
  np.testing.assert_allclose(tall.T @ tall, 0.25 * np.eye(5), atol=1e-5)
  wide = np.asarray(initializers.orthogonal(KEY, (5, 12), 2.0), np.float64)
  np.testing.assert_allclose(wide @ wide.T, 4.0 * np.eye(5), atol=1e-5)
  np.testing.assert_allclose(np.linalg.svd(wide, compute_uv=False), 2.0, atol=1e-5)


def test_orthogonal_bfloat16():
  W = initializers.orthogonal(KEY, (8, 8), 1.0, jnp.bfloat16)
  assert W.dtype == jnp.bfloat16
  W = np.asarray(W, np.float64)
  np.testing.assert_allclose(W.T @ W, np.eye(8), atol=3e-2)


# ---------------------------------------------------------------------------
# Xavier.
# ---------------------------------------------------------------------------


def test_xavier_bounds_and_variance():
  fan_in, fan_out = 400, 600
  W = np.asarray(initializers.xavier(KEY, (fan_in, fan_out)), np.float64)
  limit = np.sqrt(6.0 / (fan_in + fan_out))
  assert np.abs(W).max() <= limit
  assert np.abs(W).max() > 0.99 * limit  # the whole range is used
  assert abs(W.mean()) < 1e-3
  # Var of U(-a, a) is a^2 / 3 = 2 / (fan_in + fan_out).
  np.testing.assert_allclose(W.var(), 2.0 / (fan_in + fan_out), rtol=0.02)


def test_xavier_scale_and_elman_input():
  W = np.asarray(initializers.xavier(KEY, (50, 30), scale=2.0), np.float64)
  limit = 2.0 * np.sqrt(6.0 / 80)
  assert np.abs(W).max() <= limit and np.abs(W).max() > 0.9 * limit
  U = np.asarray(cells.make("elman").init(KEY, 300, 200)["U"], np.float64)
  assert np.abs(U).max() <= np.sqrt(6.0 / 500)
  np.testing.assert_allclose(U.var(), 2.0 / 500, rtol=0.03)


def test_xavier_recurrent_jordan():
  W = np.asarray(cells.make("jordan", output_size=40).init(KEY, 3, 60)["W"], np.float64)
  assert W.shape == (40, 60)
  assert np.abs(W).max() <= np.sqrt(6.0 / 100)


# ---------------------------------------------------------------------------
# Echo-state reservoir.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.2])
def test_esn_init(rho):
  density, scaling = 0.1, 0.4
  cell = cells.make("esn", rho=rho, density=density, input_scaling=scaling)
  params = cell.init(KEY, 7, 200)
  W, U = np.asarray(params["W"], np.float64), np.asarray(params["U"], np.float64)
  assert abs(np_radius(W) - rho) < 1e-4
  # 40000 Bernoulli(0.1) entries: the nonzero fraction has std ~0.0015.
  assert abs(np.count_nonzero(W) / W.size - density) < 0.01
  assert U.shape == (7, 200)
  assert np.abs(U).max() <= scaling and np.abs(U).max() > 0.95 * scaling
  np.testing.assert_array_equal(params["b"], 0.0)  # bias_scaling defaults to 0


def test_esn_init_bias_and_density():
  params = cells.make("esn", bias_scaling=0.2, density=1.0).init(KEY, 3, 50)
  b = np.asarray(params["b"])
  assert np.abs(b).max() <= 0.2 and np.abs(b).max() > 0.1
  assert np.count_nonzero(params["W"]) == 50 * 50
  for bad in (0.0, 1.5):
    with pytest.raises(ValueError, match="esn density must lie in"):
      cells.make("esn", density=bad).init(KEY, 3, 10)


# ---------------------------------------------------------------------------
# Biases.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("forget_bias", [1.0, 2.5, 0.0])
def test_lstm_forget_bias(forget_bias):
  H = 5
  b = np.asarray(cells.make("lstm", forget_bias=forget_bias).init(KEY, 3, H)["b"])
  b_i, b_f, b_g, b_o = np.split(b, 4)
  np.testing.assert_array_equal(b_f, forget_bias)
  for other in (b_i, b_g, b_o):
    np.testing.assert_array_equal(other, 0.0)


def test_lstm_forget_bias_coupled():
  H = 5
  b = np.asarray(cells.make("lstm", coupled=True, forget_bias=2.0).init(KEY, 3, H)["b"])
  assert b.shape == (3 * H,)
  b_i, b_g, b_o = np.split(b, 3)
  np.testing.assert_array_equal(b_i, -2.0)  # f = 1 - sigma(b_i) = sigma(2.0) at zero input
  np.testing.assert_array_equal(b_g, 0.0)
  np.testing.assert_array_equal(b_o, 0.0)


def test_lstm_default_forget_bias_is_one():
  b = np.asarray(cells.make("lstm").init(KEY, 3, 4)["b"])
  np.testing.assert_array_equal(np.split(b, 4)[1], 1.0)


@pytest.mark.parametrize("max_lag", [10.0, 200.0])
def test_chrono_bias_is_log_of_uniform_1_to_max_lag_minus_1(max_lag):
  u = np.exp(np.asarray(initializers.chrono_bias(KEY, 20_000, max_lag), np.float64))
  assert 1.0 - 1e-5 <= u.min() < 1.1 and max_lag - 1.1 < u.max() <= max_lag - 1.0 + 1e-3
  # U[1, T - 1]: mean T / 2, standard deviation (T - 2) / sqrt(12), +-5 standard errors.
  np.testing.assert_allclose(u.mean(), max_lag / 2, atol=5 * (max_lag - 2) / np.sqrt(12 * 20_000))
  with pytest.raises(ValueError, match="max_lag > 2"):
    initializers.chrono_bias(KEY, 4, 2.0)


def test_lstm_chrono_sets_b_f_and_b_i_to_minus_b_f_and_nothing_else():
  H, T = 64, 50.0
  plain = cells.make("lstm").init(KEY, 3, H)
  params = cells.make("lstm", chrono=T).init(KEY, 3, H)
  b_i, b_f, b_g, b_o = np.split(np.asarray(params["b"]), 4)
  np.testing.assert_array_equal(b_f, initializers.chrono_bias(jax.random.fold_in(KEY, 2), H, T))
  np.testing.assert_array_equal(b_i, -b_f)
  np.testing.assert_array_equal(np.concatenate([b_g, b_o]), 0.0)
  assert np.all((b_f >= 0) & (b_f <= np.log(T - 1) + 1e-6)) and b_f.std() > 0.3
  for name in ("U", "W"):  # the weights are those of the plain init
    np.testing.assert_array_equal(params[name], plain[name])
  coupled = np.split(np.asarray(cells.make("lstm", chrono=T, coupled=True).init(KEY, 3, H)["b"]), 3)
  np.testing.assert_array_equal(coupled[0], -b_f)  # f = 1 - sigma(b_i) = sigma(b_f)


def test_gru_chrono_sets_the_update_gate_bias_only():
  H, T = 64, 50.0
  plain = cells.make("gru").init(KEY, 3, H)
  params = cells.make("gru", chrono=T).init(KEY, 3, H)
  b_r, b_z, b_n = np.split(np.asarray(params["b"]), 3)
  np.testing.assert_array_equal(b_z, initializers.chrono_bias(jax.random.fold_in(KEY, 2), H, T))
  np.testing.assert_array_equal(np.concatenate([b_r, b_n]), 0.0)
  for name in ("U", "W"):
    np.testing.assert_array_equal(params[name], plain[name])


def test_zero_initialised_extras():
  p = cells.make("lstm", peephole=True, layer_norm=True).init(KEY, 3, 4)
  for name in ("p_i", "p_f", "p_o", "ln_c_bias"):
    np.testing.assert_array_equal(p[name], 0.0)
  for name in ("ln_x", "ln_h"):
    assert p[name].shape == (4, 4)
    np.testing.assert_array_equal(p[name], 1.0)
  np.testing.assert_array_equal(p["ln_c_gain"], 1.0)
  g = cells.make("gru", variant="torch", layer_norm=True).init(KEY, 3, 4)
  np.testing.assert_array_equal(g["b"], 0.0)
  np.testing.assert_array_equal(g["b_hn"], 0.0)
  assert g["ln_x"].shape == g["ln_h"].shape == (3, 4)
