"""Attention (dot, general, additive): scores against numpy, softmax over real positions
only (zero on padding), one-hot alignment reproducing the selected annotation."""

import functools

import jax
import numpy as np
import pytest

from seqlab.models import attention as attn

KINDS = ("dot", "general", "additive")


def _key(seed):
  return jax.random.key(seed, impl="rbg")


@functools.cache
def _attention_setup(kind, B=3, Tx=5, D=4, A=6):
  """An Attention module, its params, a query s [B, D], annotations a [B, Tx, D], a mask."""
  module = attn.Attention(kind, query_size=D, attention_size=A)
  rng = np.random.default_rng(1)
  s = rng.normal(size=(B, D)).astype(np.float32)
  a = rng.normal(size=(B, Tx, D)).astype(np.float32)
  mask = np.arange(Tx)[None] < np.array([5, 3, 1])[:, None]
  init = lambda m, s, a, mask: m(s, m.keys(a), a, mask)  # keys() creates params too
  variables = jax.jit(functools.partial(module.init, method=init))(_key(1), s, a, mask)
  return module, variables, s, a, mask


@functools.cache
def _attend(module):
  """(variables, s, a, mask) -> (scores, context, alpha), jitted."""
  def run(m, s, a, mask):
    keys = m.keys(a)
    return (m.scores(s, keys), *m(s, keys, a, mask))
  return jax.jit(functools.partial(module.apply, method=run))


def _numpy_scores(kind, params, s, a):
  s, a = np.asarray(s, np.float64), np.asarray(a, np.float64)
  if kind == "dot":
    return np.einsum("bd,bjd->bj", s, a)
  if kind == "general":  # s . (W_a a_j); the Dense kernel is W_a^T
    return np.einsum("bd,bjd->bj", s, a @ np.asarray(params["W_a"]["kernel"]))
  W, U = np.asarray(params["W"]["kernel"]), np.asarray(params["U"]["kernel"])
  b, v = np.asarray(params["U"]["bias"]), np.asarray(params["v"])
  return np.tanh((s @ W)[:, None, :] + a @ U + b) @ v


@pytest.mark.parametrize("kind", KINDS)
def test_attention_scores_weights_and_context_equal_numpy(kind):
  module, variables, s, a, mask = _attention_setup(kind)
  e, c, alpha = _attend(module)(variables, s, a, mask)
  e_ref = _numpy_scores(kind, variables.get("params", {}), s, a)
  np.testing.assert_allclose(e, e_ref, rtol=1e-5, atol=1e-5)
  w = np.where(mask, np.exp(e_ref - np.where(mask, e_ref, -np.inf).max(1, keepdims=True)), 0.0)
  w /= w.sum(1, keepdims=True)
  np.testing.assert_allclose(alpha, w, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(c, np.einsum("bj,bjd->bd", w, a), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_attention_weights_sum_to_one_over_real_positions_and_zero_on_padding(kind):
  module, variables, s, a, mask = _attention_setup(kind)
  a = np.where(mask[..., None], a, 1e4).astype(np.float32)  # huge junk on padded positions
  _, c, alpha = map(np.asarray, _attend(module)(variables, s, a, mask))
  np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-6)
  assert np.all(alpha[~mask] == 0.0) and np.all(alpha[mask] > 0.0)
  np.testing.assert_array_equal(alpha[2], [1, 0, 0, 0, 0])  # one real position
  np.testing.assert_array_equal(c[2], a[2, 0])
  assert np.abs(c).max() < 10  # the junk never leaks into c


def test_one_hot_alignment_reproduces_the_selected_annotation():
  a = np.random.default_rng(2).normal(size=(6, 6, 4)).astype(np.float32)
  e = 200.0 * np.eye(6, dtype=np.float32)  # row j: scores that put all weight on a_j
  c, alpha = jax.jit(attn.attend)(e, a)
  np.testing.assert_array_equal(alpha, np.eye(6))
  np.testing.assert_array_equal(c, a[np.arange(6), np.arange(6)])  # c_j = a_j exactly
  # The notes' dot score does it by itself: orthogonal annotations a_j = 30 e_j and the
  # query s_{t-1} = a_j give e_tj = 900 and e_tk = 0 for k != j.
  basis = np.repeat(30.0 * np.eye(4, dtype=np.float32)[None], 4, axis=0)
  module = attn.Attention("dot", query_size=4)
  _, c, alpha = _attend(module)({}, basis[0], basis, np.ones((4, 4), bool))
  np.testing.assert_array_equal(alpha, np.eye(4))
  np.testing.assert_array_equal(c, basis[0])
