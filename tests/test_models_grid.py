"""Value tests of `GridRNN`, the 2-D RNN: a double loop in numpy, the four sweeps, training."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from model_testing import overfit

from seqlab.models.grid import GridRNN, grid_scan

TOL = {"atol": 1e-5, "rtol": 1e-5}
B, R, C, H = 2, 4, 5, 3  # batch, rows, columns, hidden (all distinct)


def np_grid(p, image):
  """h_ij = tanh(x_ij U + h_{i,j-1} W_left + h_{i-1,j} W_up + b) by a double loop (float64)."""
  W_left, W_up = p["W"][:H], p["W"][H:]
  rows, cols, _ = image.shape
  h = np.zeros((rows + 1, cols + 1, H))  # row 0 and column 0: the zero border
  for i in range(rows):
    for j in range(cols):
      h[i + 1, j + 1] = np.tanh(image[i, j] @ p["U"] + h[i + 1, j] @ W_left
                                + h[i, j + 1] @ W_up + p["b"])
  return h[1:, 1:]


def random_params(seed, channels):
  rng = np.random.default_rng(seed)
  return {"U": rng.standard_normal((channels, H)) * 0.5,
          "W": rng.standard_normal((2 * H, H)) * 0.5, "b": rng.standard_normal(H) * 0.5}


def test_grid_scan_equals_a_double_loop():
  images = np.random.default_rng(0).standard_normal((B, R, C, 2))
  p = random_params(1, 2)
  hs = grid_scan(jax.tree.map(jnp.float32, p), jnp.asarray(images, jnp.float32))
  assert hs.shape == (B, R, C, H)
  for b in range(B):
    np.testing.assert_allclose(hs[b], np_grid(p, images[b]), **TOL)


@pytest.mark.parametrize("directions", [1, 4])
def test_classifier_reads_the_final_state_of_every_sweep(directions):
  """Sweep d runs the double loop over the image flipped to start from its corner."""
  images = np.random.default_rng(2).standard_normal((B, R, C))
  model = GridRNN(hidden_size=H, output_size=7, directions=directions)
  variables = model.init(jax.random.key(0), jnp.asarray(images, jnp.float32))
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
  assert set(p) == {"V", *[f"sweep_{d}" for d in range(directions)]}
  logits = model.apply(variables, jnp.asarray(images, jnp.float32))
  flips = [lambda x: x, lambda x: x[:, ::-1], lambda x: x[::-1], lambda x: x[::-1, ::-1]]
  for b in range(B):
    finals = [np_grid(p[f"sweep_{d}"], flips[d](images[b])[..., None])[-1, -1]
              for d in range(directions)]
    expected = np.concatenate(finals) @ p["V"]["kernel"] + p["V"]["bias"]
    np.testing.assert_allclose(logits[b], expected, **TOL)


def test_each_state_depends_only_on_the_pixels_above_and_left():
  """dh_ij / dx_kl = 0 unless k <= i and l <= j (the receptive field of one sweep)."""
  p = jax.tree.map(jnp.float32, random_params(3, 1))
  image = jnp.asarray(np.random.default_rng(4).standard_normal((1, R, C, 1)), jnp.float32)
  grad = jax.grad(lambda x: grid_scan(p, x)[0, 1, 2].sum())(image)[0, ..., 0]
  reach = (np.arange(R)[:, None] <= 1) & (np.arange(C)[None, :] <= 2)
  assert np.all(np.asarray(grad)[~reach] == 0) and np.all(np.asarray(grad)[reach] != 0)


def test_bad_directions_raise():
  with pytest.raises(ValueError, match="directions must be 1 or 4, got 2"):
    GridRNN(hidden_size=H, directions=2).init(jax.random.key(0), jnp.zeros((1, R, C)))


def test_four_sweeps_overfit_digits():
  """16 of scikit-learn's 8x8 digits, classified from the four corners' final states."""
  from sklearn import datasets

  digits = datasets.load_digits()
  images = jnp.asarray(digits.images[:16] / 16.0, jnp.float32)
  labels = jnp.asarray(digits.target[:16])
  model = GridRNN(hidden_size=8, output_size=10, directions=4)
  v = model.init(jax.random.key(0), images)
  loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
      model.apply(p, images), labels).mean()
  assert overfit(loss, v, 100, learning_rate=3e-2) < 0.1
