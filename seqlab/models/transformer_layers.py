"""Transformer layers (Vaswani et al. 2017): the parts `seqlab.models.transformer` builds from.

Self-attention as in notes 004: positions, scaled dot-product attention, masks, multi-head
attention with a key/value cache, the pre-LN block and the embedding + blocks stack.

    PE(t, 2i) = sin(t / 10000^(2i/d)),  PE(t, 2i+1) = cos(t / 10000^(2i/d))
    A(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V       (masked entries -> -inf)
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
               index: Array | None = None) -> tuple[Array, Cache | None, Array]:
    """Attend from x [B, Tq, d] to context [B, Tk, d]; with a cache, x is one step at `index`.

    Returns the output [B, Tq, d], the cache and the weights [B, heads, Tq, Tk].
    """
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
    return out, cache, weights


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
               ) -> tuple[Array, Cache | None, Array | None]:
    """(x, cache, the cross-attention weights [B, heads, Tq, Tk] or None without memory)."""
    drop = lambda y: nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)
    ln = lambda name: nn.LayerNorm(dtype=self.dtype, name=name)
    mha = lambda name: MultiHeadAttention(self.num_heads, self.dtype, name=name)
    y = ln("ln_self")(x)
    y, cache, _ = mha("self_attention")(y, y, mask, cache, index)
    x = x + drop(y)
    cross = None
    if memory is not None:
      y, _, cross = mha("cross_attention")(ln("ln_cross")(x), memory, memory_mask)
      x = x + drop(y)
    y = nn.Dense(self.d_ff, dtype=self.dtype, name="ffn_1")(ln("ln_ffn")(x))
    y = nn.Dense(x.shape[-1], dtype=self.dtype, name="ffn_2")(nn.relu(y))
    return x + drop(y), cache, cross


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
               deterministic: bool = True
               ) -> tuple[Array, tuple[Cache | None, ...], Array | None]:
    """(outputs, per-layer caches, the last layer's cross-attention weights or None)."""
    x = nn.Embed(self.vocab_size, self.d_model, dtype=self.dtype, name="embed")(tokens)
    x = x * math.sqrt(self.d_model) + sinusoidal_positions(positions, self.d_model).astype(x.dtype)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    index = None if cache is None else positions[:, 0]
    new_cache, cross = [], None
    for i in range(self.num_layers):
      block = Block(self.num_heads, self.d_ff, self.dropout_rate, self.dtype, name=f"layer_{i}")
      x, c, cross = block(x, mask, memory, memory_mask, None if cache is None else cache[i],
                          index, deterministic)
      new_cache.append(c)
    return nn.LayerNorm(dtype=self.dtype, name="ln_final")(x), tuple(new_cache), cross
