"""How the layers are wired, against numpy written from the equations with random params:
the seq2seq decoder (input [E y_{t-1}; c_t; C], query s_{t-1}, readout [s_t; c_t]) and one
pre-LN Transformer block (x + Attention(LN x), then + FFN(LN x))."""

import jax
import jax.numpy as jnp
import numpy as np

from seqlab.models.seq2seq import Seq2Seq
from seqlab.models.transformer import Block


def _randomized(variables, seed, scale=0.5):
  """Every param drawn at random (biases, LayerNorm scales included), so each one matters."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda a: jnp.asarray(rng.normal(0.0, scale, a.shape), a.dtype), variables)


def _softmax(e, mask=None):
  if mask is not None:
    e = np.where(mask, e, -np.inf)
  w = np.exp(e - e.max(-1, keepdims=True))
  return w / w.sum(-1, keepdims=True)


# ---- the seq2seq decoder ----


def _numpy_seq2seq(p, src, src_lengths, targets, bos):
  """Elman encoder and decoder, dot attention, s_0 = C, condition on C; float64 loops.

      h_j = tanh(E_x[x_j] U + h_{j-1} W + b)    (padded steps keep h; a_j = 0 there)
      alpha_t = softmax_j(s_{t-1} . a_j),  c_t = sum_j alpha_tj a_j
      s_t = tanh([E_y[y_{t-1}]; c_t; C] U_d + s_{t-1} W_d + b_d)
      logits_t = [s_t; c_t] V + b_V
  """
  f = lambda a: np.asarray(a, np.float64)
  enc, dec = p["encoder"]["cell"], p["decoder"]["cell"]
  E_x, E_y = f(p["src_embed"]["embedding"]), f(p["decoder"]["embed"]["embedding"])
  V_out, b_out = f(p["decoder"]["out"]["kernel"]), f(p["decoder"]["out"]["bias"])
  logits, alphas = [], []
  for row, length, target in zip(src, src_lengths, targets, strict=True):
    h, a = np.zeros(enc["W"].shape[0]), np.zeros((len(row), enc["W"].shape[0]))
    for j in range(length):
      h = np.tanh(E_x[row[j]] @ f(enc["U"]) + h @ f(enc["W"]) + f(enc["b"]))
      a[j] = h
    C, s = h, h
    row_logits, row_alpha = [], []
    for y_prev in [bos, *target[:-1]]:
      alpha = _softmax(a @ s, np.arange(len(row)) < length)
      c = alpha @ a
      x = np.concatenate([E_y[y_prev], c, C])
      s = np.tanh(x @ f(dec["U"]) + s @ f(dec["W"]) + f(dec["b"]))
      row_logits.append(np.concatenate([s, c]) @ V_out + b_out)
      row_alpha.append(alpha)
    logits.append(row_logits)
    alphas.append(row_alpha)
  return np.array(logits), np.array(alphas)


def test_seq2seq_decoder_steps_equal_numpy():
  model = Seq2Seq(vocab_size=7, cell="elman", hidden_size=5, embed_size=3, attention="dot",
                  condition=True, init_decoder="copy", bos_id=1)
  src = np.array([[3, 4, 5, 6], [6, 5, 0, 0]], np.int32)
  src_lengths = np.array([4, 2], np.int32)
  targets = np.array([[4, 3, 6], [5, 5, 2]], np.int32)
  variables = _randomized(model.init(jax.random.key(0), src, src_lengths, targets), seed=1)
  out = model.apply(variables, src, src_lengths, targets)
  logits, alpha = _numpy_seq2seq(variables["params"], src, src_lengths, targets, bos=1)
  np.testing.assert_allclose(out.alpha, alpha, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.logits, logits, rtol=1e-5, atol=1e-5)


# ---- one Transformer block ----


def _layer_norm(x, p, eps=1e-6):
  """(x - mean) / sqrt(var + eps) * scale + bias over the last axis (flax's default eps)."""
  mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * np.asarray(p["scale"]) + np.asarray(p["bias"])


def _mha(p, x, context, mask):
  """concat_h softmax(Q_h K_h^T / sqrt(d_k)) V_h, then W_O; Q = x W_Q + b, K, V from context."""
  f = lambda name, part: np.asarray(p[name][part], np.float64)
  q = np.einsum("btd,dhk->bhtk", x, f("query", "kernel")) + f("query", "bias")[:, None]
  k = np.einsum("btd,dhk->bhtk", context, f("key", "kernel")) + f("key", "bias")[:, None]
  v = np.einsum("btd,dhk->bhtk", context, f("value", "kernel")) + f("value", "bias")[:, None]
  weights = _softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]), mask)
  return np.einsum("bhtk,hkd->btd", weights @ v, f("out", "kernel")) + f("out", "bias")


def _numpy_block(p, x, mask, memory, memory_mask):
  """Pre-LN: x += SelfAttn(LN x); x += CrossAttn(LN x, memory); x += FFN(LN x)."""
  y = _layer_norm(x, p["ln_self"])
  x = x + _mha(p["self_attention"], y, y, mask)
  x = x + _mha(p["cross_attention"], _layer_norm(x, p["ln_cross"]), memory, memory_mask)
  y = _layer_norm(x, p["ln_ffn"])
  hidden = np.maximum(y @ np.asarray(p["ffn_1"]["kernel"]) + np.asarray(p["ffn_1"]["bias"]), 0)
  return x + hidden @ np.asarray(p["ffn_2"]["kernel"]) + np.asarray(p["ffn_2"]["bias"])


def test_transformer_block_equals_numpy():
  B, T, T_mem, d = 2, 4, 3, 8
  rng = np.random.default_rng(0)
  x = rng.normal(size=(B, T, d)).astype(np.float32)
  memory = rng.normal(size=(B, T_mem, d)).astype(np.float32)
  mask = np.tril(np.ones((T, T), bool))[None, None]  # causal
  memory_mask = (np.arange(T_mem)[None] < np.array([3, 2])[:, None])[:, None, None, :]
  block = Block(num_heads=2, d_ff=16)
  variables = _randomized(block.init(jax.random.key(0), x, mask, memory, memory_mask), seed=2)
  out, _, _ = block.apply(variables, x, mask, memory, memory_mask)  # (x, cache, cross weights)
  expected = _numpy_block(variables["params"], x.astype(np.float64), mask, memory, memory_mask)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
