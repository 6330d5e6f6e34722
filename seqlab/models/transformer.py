"""Transformer baseline (Vaswani et al. 2017; notes 004, self-attention) beside the RNNs.

Self-attention in the notes' four steps:

    1. position-aware encoding   x_t = sqrt(d) E[token_t] + PE(t),
                                 PE(t, 2i) = sin(t / 10000^(2i/d)),
                                 PE(t, 2i+1) = cos(t / 10000^(2i/d))
    2. query, key, value         Q = x W_Q,  K = x W_K,  V = x W_V      (per head, d_k = d / heads)
    3. attention scores          S = Q K^T / sqrt(d_k)     (masked entries -> -inf)
    4. softmax                   A(Q, K, V) = softmax(S) V,  heads concatenated, then W_O

Layers are pre-LN (Xiong et al. 2020): x <- x + Attention(LN(x)), x <- x + FFN(LN(x)), with
one final LN per stack; FFN(x) = relu(x W_1 + b_1) W_2 + b_2. Masks: padding (keys at
t >= length get zero weight), causal (query t sees keys <= t) and cross-attention from the
decoder to the encoder's non-padded outputs. Three models: `Transformer` (encoder-decoder,
teacher forcing), `TransformerLM` (decoder only) and `TransformerClassifier` (encoder
only, mean-pooled). Incremental decoding: `start(...) -> carry`, `step(carry, token) ->
(carry, logits)`, with the decoder's self-attention keys and values cached in the carry.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqlab import unroll

Array = jax.Array
Cache = tuple[Array, Array]  # one attention layer's (K, V) [B, max_length, heads, d_k]


def sinusoidal_positions(positions: Array, d: int) -> Array:
  """PE[..., 2i] = sin(pos / 10000^(2i/d)), PE[..., 2i+1] = cos(pos / 10000^(2i/d))."""
  two_i = jnp.arange(0, d, 2, dtype=jnp.float32)
  angle = jnp.asarray(positions, jnp.float32)[..., None] / 10000.0 ** (two_i / d)
  pe = jnp.stack([jnp.sin(angle), jnp.cos(angle)], axis=-1)  # interleave: 2i, 2i + 1
  return pe.reshape(pe.shape[:-2] + (-1,))[..., :d]


def dot_product_attention(q: Array, k: Array, v: Array, mask: Array | None = None):
  """softmax(Q K^T / sqrt(d_k)) V over the last two axes; returns (output, weights).

  q: [..., Tq, d_k], k: [..., Tk, d_k], v: [..., Tk, d_v]; mask (True = may attend)
  broadcasts to [..., Tq, Tk]. Scores and softmax are computed in float32; masked keys get
  weight exactly 0 whenever a query has at least one unmasked key.
  """
  d_k = q.shape[-1]
  scores = jnp.einsum("...qd,...kd->...qk", q, k).astype(jnp.float32) / math.sqrt(d_k)
  if mask is not None:
    scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
  weights = jax.nn.softmax(scores, axis=-1)
  return jnp.einsum("...qk,...kd->...qd", weights.astype(v.dtype), v), weights


def padding_mask(lengths: Array, max_length: int) -> Array:
  """[B, 1, 1, T] key mask: True at real steps t < lengths[b]."""
  return unroll.length_mask(lengths, max_length)[:, None, None, :]


def causal_mask(length: int) -> Array:
  """[1, 1, T, T] mask: query t may attend to keys s <= t (no look-ahead)."""
  return jnp.tril(jnp.ones((length, length), bool))[None, None]


class MultiHeadAttention(nn.Module):
  """Multi-head A(Q, K, V) with Q from x and K, V from context; optional key/value cache."""

  num_heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, context: Array, mask: Array | None, cache: Cache | None = None,
               index: Array | None = None) -> tuple[Array, Cache | None]:
    """Attend from x [B, Tq, d] to context [B, Tk, d]; with a cache, x is one step at `index`."""
    d = x.shape[-1]
    if d % self.num_heads:
      raise ValueError(f"d_model={d} is not divisible by num_heads={self.num_heads}")
    proj = lambda name: nn.DenseGeneral((self.num_heads, d // self.num_heads), dtype=self.dtype,
                                        name=name)
    q, k, v = proj("query")(x), proj("key")(context), proj("value")(context)  # [B, T, h, d_k]
    if cache is not None:  # one new step at `index` [B]: write its k, v into the cache
      at = (jnp.arange(cache[0].shape[1])[None, :] == index[:, None])[:, :, None, None]
      k, v = jnp.where(at, k, cache[0]), jnp.where(at, v, cache[1])
      cache = (k, v)
    heads = lambda a: jnp.swapaxes(a, 1, 2)  # [B, h, T, d_k]
    out, weights = dot_product_attention(heads(q), heads(k), heads(v), mask)
    self.sow("intermediates", "attention_weights", weights)
    out = nn.DenseGeneral(d, axis=(-2, -1), dtype=self.dtype, name="out")(heads(out))
    return out, cache


class Block(nn.Module):
  """Pre-LN layer: self-attention, optional cross-attention to `memory`, then FFN."""

  num_heads: int
  d_ff: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, mask: Array, memory: Array | None = None,
               memory_mask: Array | None = None, cache: Cache | None = None,
               index: Array | None = None, deterministic: bool = True
               ) -> tuple[Array, Cache | None]:
    drop = lambda y: nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)
    ln = lambda name: nn.LayerNorm(dtype=self.dtype, name=name)
    mha = lambda name: MultiHeadAttention(self.num_heads, self.dtype, name=name)
    y = ln("ln_self")(x)
    y, cache = mha("self_attention")(y, y, mask, cache, index)
    x = x + drop(y)
    if memory is not None:
      y, _ = mha("cross_attention")(ln("ln_cross")(x), memory, memory_mask)
      x = x + drop(y)
    y = nn.Dense(self.d_ff, dtype=self.dtype, name="ffn_1")(ln("ln_ffn")(x))
    y = nn.Dense(x.shape[-1], dtype=self.dtype, name="ffn_2")(nn.relu(y))
    return x + drop(y), cache


class Stack(nn.Module):
  """Embedding sqrt(d) E[token] + PE(position), `num_layers` blocks, final LN."""

  vocab_size: int
  d_model: int
  num_heads: int
  num_layers: int
  d_ff: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens: Array, positions: Array, mask: Array, memory: Array | None = None,
               memory_mask: Array | None = None, cache: tuple[Cache, ...] | None = None,
               deterministic: bool = True) -> tuple[Array, tuple[Cache | None, ...]]:
    x = nn.Embed(self.vocab_size, self.d_model, dtype=self.dtype, name="embed")(tokens)
    x = x * math.sqrt(self.d_model) + sinusoidal_positions(positions, self.d_model).astype(x.dtype)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    index = None if cache is None else positions[:, 0]
    new_cache = []
    for i in range(self.num_layers):
      x, c = Block(self.num_heads, self.d_ff, self.dropout_rate, self.dtype, name=f"layer_{i}")(
          x, mask, memory, memory_mask, None if cache is None else cache[i], index, deterministic)
      new_cache.append(c)
    return nn.LayerNorm(dtype=self.dtype, name="ln_final")(x), tuple(new_cache)


def _empty_cache(batch, max_length, num_layers, num_heads, d_model, dtype):
  """Per layer (K, V) zeros [B, max_length, heads, d_k]."""
  z = jnp.zeros((batch, max_length, num_heads, d_model // num_heads), dtype)
  return tuple((z, z) for _ in range(num_layers))


class _Decoding(nn.Module):
  """Shared causal-decoder parts: the decoder stack, output projection and one decode step."""

  def _decoder(self):
    return Stack(self.tgt_vocab, self.d_model, self.num_heads, self.num_layers, self.d_ff,
                 self.dropout_rate, self.dtype, name="decoder")

  def _run_decoder(self, tokens, memory, memory_mask, deterministic):
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    y, _ = self.decoder(tokens, positions, causal_mask(tokens.shape[1]), memory, memory_mask,
                        deterministic=deterministic)
    return self.output(y)

  def _start(self, batch, max_length, extra):
    return dict(position=jnp.zeros((batch,), jnp.int32), **extra,
                cache=_empty_cache(batch, max_length, self.num_layers, self.num_heads,
                                   self.d_model, self.dtype))

  def step(self, carry: dict, token: Array) -> tuple[dict, Array]:
    """Feed token [B] at carry["position"]; returns (carry, next-token logits [B, vocab]).

    Every leaf of the carry has the batch axis first (beam search may reorder it). The
    self-attention keys/values of earlier steps come from the cache; positions past
    max_length (the cache size) are not supported.
    """
    p = carry["position"]
    cache_size = carry["cache"][0][0].shape[1]
    mask = (jnp.arange(cache_size)[None, :] <= p[:, None])[:, None, None, :]  # keys s <= p
    memory = carry.get("memory")
    memory_mask = None if memory is None else padding_mask(carry["memory_lengths"],
                                                           memory.shape[1])
    y, cache = self.decoder(token[:, None], p[:, None], mask, memory, memory_mask,
                            cache=carry["cache"])
    return dict(carry, position=p + 1, cache=cache), self.output(y[:, 0])


class Transformer(_Decoding):
  """Encoder-decoder Transformer: logits of p(y_t | y_<t, x) by teacher forcing."""

  src_vocab_size: int
  tgt_vocab_size: int | None = None  # None: the source vocabulary
  d_model: int = 128
  num_heads: int = 4
  num_layers: int = 2  # in the encoder and in the decoder
  d_ff: int = 512
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @property
  def tgt_vocab(self) -> int:
    return self.tgt_vocab_size or self.src_vocab_size

  def setup(self):
    self.encoder = Stack(self.src_vocab_size, self.d_model, self.num_heads, self.num_layers,
                         self.d_ff, self.dropout_rate, self.dtype)
    self.decoder = self._decoder()
    self.output = nn.Dense(self.tgt_vocab, dtype=self.dtype)

  def encode(self, src: Array, src_lengths: Array | None = None,
             deterministic: bool = True) -> Array:
    """Encoder outputs [B, S, d], zero at padded steps."""
    lengths = jnp.full(src.shape[:1], src.shape[1]) if src_lengths is None else src_lengths
    positions = jnp.broadcast_to(jnp.arange(src.shape[1]), src.shape)
    memory, _ = self.encoder(src, positions, padding_mask(lengths, src.shape[1]),
                             deterministic=deterministic)
    return memory * unroll.length_mask(lengths, src.shape[1])[..., None].astype(memory.dtype)

  def __call__(self, src: Array, tgt_in: Array, src_lengths: Array | None = None,
               deterministic: bool = True) -> Array:
    """Logits [B, T, tgt_vocab] for tgt_in = (BOS, y_1, ..., y_{T-1}) (teacher forcing).

    Target padding needs no mask: it sits after the real steps, which the causal mask
    already hides; mask it out of the loss.
    """
    lengths = jnp.full(src.shape[:1], src.shape[1]) if src_lengths is None else src_lengths
    memory = self.encode(src, lengths, deterministic)
    return self._run_decoder(tgt_in, memory, padding_mask(lengths, src.shape[1]), deterministic)

  def start(self, src: Array, src_lengths: Array | None, max_length: int) -> dict:
    """Decoding carry: encoded source, position 0 and an empty cache of max_length steps."""
    lengths = jnp.full(src.shape[:1], src.shape[1]) if src_lengths is None else src_lengths
    return self._start(src.shape[0], max_length,
                       dict(memory=self.encode(src, lengths), memory_lengths=lengths))


class TransformerLM(_Decoding):
  """Decoder-only Transformer language model: logits of p(x_{t+1} | x_<=t)."""

  vocab_size: int
  d_model: int = 128
  num_heads: int = 4
  num_layers: int = 2
  d_ff: int = 512
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @property
  def tgt_vocab(self) -> int:
    return self.vocab_size

  def setup(self):
    self.decoder = self._decoder()
    self.output = nn.Dense(self.vocab_size, dtype=self.dtype)

  def __call__(self, tokens: Array, deterministic: bool = True) -> Array:
    """Logits [B, T, vocab]; position t sees tokens <= t (padding at the end is harmless)."""
    return self._run_decoder(tokens, None, None, deterministic)

  def start(self, batch_size: int, max_length: int) -> dict:
    """Decoding carry: position 0 and an empty cache of max_length steps."""
    return self._start(batch_size, max_length, {})


class TransformerClassifier(nn.Module):
  """Encoder-only Transformer, mean over real steps, linear: many-to-one logits [B, C]."""

  vocab_size: int
  num_classes: int
  d_model: int = 128
  num_heads: int = 4
  num_layers: int = 2
  d_ff: int = 512
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens: Array, lengths: Array | None = None,
               deterministic: bool = True) -> Array:
    T = tokens.shape[1]
    lengths = jnp.full(tokens.shape[:1], T) if lengths is None else lengths
    positions = jnp.broadcast_to(jnp.arange(T), tokens.shape)
    x, _ = Stack(self.vocab_size, self.d_model, self.num_heads, self.num_layers, self.d_ff,
                 self.dropout_rate, self.dtype, name="encoder")(
                     tokens, positions, padding_mask(lengths, T), deterministic=deterministic)
    real = unroll.length_mask(lengths, T)[..., None].astype(x.dtype)
    pooled = (x * real).sum(1) / jnp.maximum(lengths, 1)[:, None].astype(x.dtype)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="output")(pooled)
