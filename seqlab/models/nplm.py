"""`NPLM`: the neural probabilistic language model of Bengio et al. (2003).

The feed-forward language-model baseline (notes 002, to-do list): an n-gram model whose
context words are embedded, concatenated and passed through one tanh layer:

    x_t = (C(w_{t-1}), C(w_{t-2}), ..., C(w_{t-n+1}))        (concatenated, [(n-1) m])
    y_t = b + W x_t + U tanh(d + H x_t)                       (W x_t: optional direct part)
    P(w_t = i | w_{t-n+1..t-1}) = softmax(y_t)_i

C is the embedding table [V, m] (`nn.Embed` "C"); H [(n-1) m, h] with bias d is
`nn.Dense` "H"; U [h, V] with bias b is `nn.Dense` "U"; W [(n-1) m, V] is `nn.Dense`
"W" without bias (row-vector code: y_t = b + x_t @ W + tanh(d + x_t @ H) @ U).
On a sequence [B, T] every position t is predicted at once, from tokens t-n+1..t-1;
positions before the start read `pad_id` (a padding / beginning-of-sequence token).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def context_windows(tokens: Array, context: int, pad_id: int) -> Array:
  """[B, T, n-1]: at t, the tokens (w_{t-1}, ..., w_{t-n+1}), pad_id before the start."""
  T = tokens.shape[1]
  padded = jnp.pad(tokens, ((0, 0), (context, 0)), constant_values=pad_id)
  return jnp.stack([padded[:, context - k : context - k + T] for k in range(1, context + 1)],
                   axis=-1)


class NPLM(nn.Module):
  """Bengio et al.'s n-gram net y = b + W x + U tanh(d + H x) over each position's context.

  Attributes:
    vocab_size: |V|.
    order: n; each prediction reads the n - 1 previous tokens.
    embed_size: m, the size of C(w).
    hidden_size: h.
    direct: include the direct connections W x.
    pad_id: the token read before the start of a sequence.
    dtype: computation dtype (params are stored in float32).
  """

  vocab_size: int
  order: int = 4
  embed_size: int = 32
  hidden_size: int = 64
  direct: bool = True
  pad_id: int = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens: Array) -> Array:
    """Logits y_t [B, T, V] of w_t given w_{t-n+1..t-1}, for tokens [B, T]."""
    if self.order < 2:
      raise ValueError(f"NPLM needs order n >= 2, got {self.order}")
    window = context_windows(tokens, self.order - 1, self.pad_id)
    C = nn.Embed(self.vocab_size, self.embed_size, dtype=self.dtype, name="C")
    x = C(window).reshape(*tokens.shape, (self.order - 1) * self.embed_size)
    a = jnp.tanh(nn.Dense(self.hidden_size, dtype=self.dtype, name="H")(x))  # tanh(d + H x)
    y = nn.Dense(self.vocab_size, dtype=self.dtype, name="U")(a)  # b + U tanh(d + H x)
    if self.direct:
      y = y + nn.Dense(self.vocab_size, use_bias=False, dtype=self.dtype, name="W")(x)
    return y
