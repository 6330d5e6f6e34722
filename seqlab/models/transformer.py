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

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqlab import unroll
from seqlab.models.transformer_layers import (  # noqa: F401 (re-exported: the layers' API)
    Block,
    Cache,
    MultiHeadAttention,
    Stack,
    causal_mask,
    dot_product_attention,
    padding_mask,
    sinusoidal_positions,
)

Array = jax.Array


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
    y, _, cross = self.decoder(tokens, positions, causal_mask(tokens.shape[1]), memory,
                               memory_mask, deterministic=deterministic)
    return self.output(y), cross

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
    y, cache, _ = self.decoder(token[:, None], p[:, None], mask, memory, memory_mask,
                               cache=carry["cache"])
    return dict(carry, position=p + 1, cache=cache), self.output(y[:, 0])


class Transformer(_Decoding):
  """Encoder-decoder Transformer: logits of p(y_t | y_<t, x) by teacher forcing."""

  vocab_size: int  # source tokens
  output_size: int | None = None  # target tokens; None: the source vocabulary
  d_model: int = 128
  num_heads: int = 4
  num_layers: int = 2  # in the encoder and in the decoder
  d_ff: int = 512
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @property
  def tgt_vocab(self) -> int:
    return self.output_size or self.vocab_size

  def setup(self):
    self.encoder = Stack(self.vocab_size, self.d_model, self.num_heads, self.num_layers,
                         self.d_ff, self.dropout_rate, self.dtype)
    self.decoder = self._decoder()
    self.output = nn.Dense(self.tgt_vocab, dtype=self.dtype)

  def encode(self, src: Array, src_lengths: Array | None = None,
             deterministic: bool = True) -> Array:
    """Encoder outputs [B, S, d], zero at padded steps."""
    lengths = jnp.full(src.shape[:1], src.shape[1]) if src_lengths is None else src_lengths
    positions = jnp.broadcast_to(jnp.arange(src.shape[1]), src.shape)
    memory, _, _ = self.encoder(src, positions, padding_mask(lengths, src.shape[1]),
                                deterministic=deterministic)
    return memory * unroll.length_mask(lengths, src.shape[1])[..., None].astype(memory.dtype)

  def __call__(self, src: Array, tgt_in: Array, src_lengths: Array | None = None,
               deterministic: bool = True) -> Array:
    """Logits [B, T, tgt_vocab] for tgt_in = (BOS, y_1, ..., y_{T-1}) (teacher forcing).

    Target padding needs no mask: it sits after the real steps, which the causal mask
    already hides; mask it out of the loss.
    """
    return self._teacher_forced(src, tgt_in, src_lengths, deterministic)[0]

  def _teacher_forced(self, src, tgt_in, src_lengths, deterministic):
    lengths = jnp.full(src.shape[:1], src.shape[1]) if src_lengths is None else src_lengths
    memory = self.encode(src, lengths, deterministic)
    return self._run_decoder(tgt_in, memory, padding_mask(lengths, src.shape[1]), deterministic)

  def alignment(self, src: Array, src_lengths: Array | None, prev_tokens: Array) -> Array:
    """alpha [B, T, S]: the last decoder layer's cross-attention, averaged over the heads,
    teacher-forced on prev_tokens = (BOS, y_1, ..., y_{T-1})."""
    return self._teacher_forced(src, prev_tokens, src_lengths, True)[1].mean(axis=1)

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
    return self._run_decoder(tokens, None, None, deterministic)[0]

  def start(self, batch_size: int, max_length: int) -> dict:
    """Decoding carry: position 0 and an empty cache of max_length steps."""
    return self._start(batch_size, max_length, {})


class TransformerClassifier(nn.Module):
  """Encoder-only Transformer, mean over real steps, linear: many-to-one logits [B, C]."""

  vocab_size: int
  output_size: int  # the number of classes C
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
    x, _, _ = Stack(self.vocab_size, self.d_model, self.num_heads, self.num_layers, self.d_ff,
                 self.dropout_rate, self.dtype, name="encoder")(
                     tokens, positions, padding_mask(lengths, T), deterministic=deterministic)
    real = unroll.length_mask(lengths, T)[..., None].astype(x.dtype)
    pooled = (x * real).sum(1) / jnp.maximum(lengths, 1)[:, None].astype(x.dtype)
    return nn.Dense(self.output_size, dtype=self.dtype, name="output")(pooled)
