"""The cuDNN LSTM path's weight layout, checked on any backend through lstm_ref."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells, unroll
from seqlab.unroll import cudnn

B, T, I, H = 3, 5, 4, 6


def _setup():
  cell = cells.make("lstm")
  k_p, k_x, k_b = jax.random.split(jax.random.key(0), 3)
  params = cell.init(k_p, I, H)
  params["b"] = jax.random.normal(k_b, params["b"].shape)  # every gate's bias matters
  h0 = jax.tree.map(lambda a: a + 0.5, cell.initial_carry(params, (B,)))
  return cell, params, h0, jax.random.normal(k_x, (B, T, I))


@pytest.mark.parametrize("lengths", [None, jnp.array([5, 2, 1], jnp.int32)], ids=["full", "padded"])
def test_packed_weights_through_lstm_ref_equal_the_scan(lengths):
  cell, params, h0, xs = _setup()
  want_carry, want_ys = unroll.scan(cell.step, params, h0, xs, lengths)
  carry, ys = cudnn.reference(params, h0, xs, lengths)
  np.testing.assert_allclose(ys, want_ys, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(carry.h, want_carry.h, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(carry.c, want_carry.c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [{"peephole": True}, {"coupled": True}, {"layer_norm": True}])
def test_variants_are_refused_with_their_name(options):
  params = cells.make("lstm", **options).init(jax.random.key(0), I, H)
  with pytest.raises(ValueError, match="standard LSTM only"):
    cudnn.pack_weights(params)


@pytest.mark.skipif(not cudnn.available(), reason="needs a CUDA GPU")
def test_cudnn_equals_the_scan_on_gpu():
  cell, params, h0, xs = _setup()
  lengths = jnp.array([5, 2, 1], jnp.int32)
  loss = lambda run: lambda p: jnp.sum(jnp.sin(run(p)[1]))
  want = jax.value_and_grad(loss(lambda p: unroll.scan(cell.step, p, h0, xs, lengths)))(params)
  got = jax.value_and_grad(loss(lambda p: cudnn.lstm(p, h0, xs, lengths)))(params)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_model_backend_is_checked():
  from seqlab.models.recurrent import Recurrent

  xs = jnp.ones((B, T, I))
  with pytest.raises(ValueError, match="unknown recurrent backend 'cuda'"):
    Recurrent("lstm", H, backend="cuda").init(jax.random.key(0), xs)
  with pytest.raises(ValueError, match="forward LSTM layer only"):
    Recurrent("gru", H, backend="cudnn").init(jax.random.key(0), xs)
  if not cudnn.available():
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
      Recurrent("lstm", H, backend="cudnn").init(jax.random.key(0), xs)
