"""Shared helpers of the cell tests: sizes, tolerances, randomised params, the variants."""

import jax
import jax.numpy as jnp
import numpy as np

from seqlab import cells

I, H, O, B = 4, 6, 3, 3  # input, hidden, output sizes (all distinct) and batch
TOL = {"atol": 1e-5, "rtol": 1e-5}
BF16_TOL = {"atol": 3e-2, "rtol": 3e-2}

LSTM_VARIANTS = [
    {},
    {"peephole": True},
    {"coupled": True},
    {"coupled": True, "peephole": True},
    {"layer_norm": True},
    {"peephole": True, "layer_norm": True},
    {"coupled": True, "peephole": True, "layer_norm": True},
]

GRU_VARIANTS = [
    {"variant": "cho"},
    {"variant": "torch"},
    {"variant": "cho", "layer_norm": True},
    {"variant": "torch", "layer_norm": True},
]


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
