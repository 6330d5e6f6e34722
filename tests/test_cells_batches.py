"""Cells over batch shapes, several steps, jit and bfloat16, against the numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cell_references import np_elman, np_gru, np_jordan, np_leaky, np_lstm
from cell_testing import (
  BF16_TOL,
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
from seqlab.cells import jordan, lstm

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
