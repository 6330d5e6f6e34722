"""cells.make and the registries: every bad name or option is named in the error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells

I, H, O, B = 4, 6, 3, 3


def setup(name, **options):
  """A cell made with `options`, and its initial params."""
  cell = cells.make(name, **options)
  return cell, cell.init(jax.random.key(0), I, H)


def normal(rng, *shape):
  """A float32 array of standard normals."""
  return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def test_make_unknown_cell():
  with pytest.raises(ValueError, match=r"unknown cell 'transformer'.*known cells:.*'elman'"):
    cells.make("transformer")
  with pytest.raises(ValueError) as err:
    cells.make("rnn")
  for name in ("elman", "esn", "gru", "jordan", "leaky", "lstm"):
    assert repr(name) in str(err.value)


def test_make_unknown_option():
  match = r"unknown option\(s\) \['peepholes'\] for cell 'lstm'"
  with pytest.raises(ValueError, match=match) as err:
    cells.make("lstm", peepholes=True)
  for valid in ("peephole", "coupled", "layer_norm", "forget_bias", "recurrent_init", "dtype"):
    assert repr(valid) in str(err.value)
  with pytest.raises(ValueError, match=r"'leak_rate'.*its options are:.*'rate'"):
    cells.make("leaky", leak_rate=0.5)


def test_make_jordan_needs_output_size():
  with pytest.raises(ValueError, match=r"cell 'jordan' needs option\(s\) \['output_size'\]"):
    cells.make("jordan")


def test_unknown_gru_variant():
  cell = cells.make("gru", variant="keras")
  with pytest.raises(ValueError, match=r"unknown GRU variant 'keras'.*'cho'.*'torch'"):
    cell.init(jax.random.key(0), I, H)


def test_unknown_init_scheme():
  with pytest.raises(ValueError, match=r"unknown init scheme 'he'.*'identity'.*'orthogonal'"):
    cells.make("elman", recurrent_init="he").init(jax.random.key(0), I, H)
  with pytest.raises(ValueError, match=r"unknown init scheme 'kaiming'"):
    cells.make("lstm", recurrent_init="kaiming").init(jax.random.key(0), I, H)


def test_unknown_activation():
  cell, params = setup("elman", activation="swish")
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match=r"unknown activation 'swish'.*'relu'.*'tanh'"):
    cell.step(params, normal(rng, B, H), normal(rng, B, I))
  cell, params = setup("jordan", output_size=O, output_activation="gelu")
  with pytest.raises(ValueError, match=r"unknown activation 'gelu'"):
    cell.step(params, normal(rng, B, O), normal(rng, B, I))

