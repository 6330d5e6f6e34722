"""Attention over the encoder's annotations (Bahdanau et al. 2015; Luong et al. 2015).

At decoder step t, with s_{t-1} the decoder state before the step and a_j
(j = 1..T_x) the annotations the encoder emitted for the input positions:

    e_tj = score(s_{t-1}, a_j)                          alignment model
      dot:       e_tj = s_{t-1} . a_j                   (the notes' e_tj = h_{t-1} . a^<j>)
      general:   e_tj = s_{t-1} . (W_a a_j)             (Luong's bilinear s^T W_a a)
      additive:  e_tj = v . tanh(W s_{t-1} + U a_j + b) (Bahdanau's one-layer MLP)
    alpha_tj = exp(e_tj) / sum_{k real} exp(e_tk)       softmax over the real positions only
    c_t = sum_j alpha_tj a_j                            context vector

Padded positions (j >= length) get alpha_tj = 0 exactly. The part of each score that
depends on a_j only (a_j itself, W_a a_j, U a_j + b) is the same at every decoder
step, so `Attention.keys` computes it once per input sequence and the per-step
`Attention.__call__` reads it back; its cost is one row of the T_y x T_x table of
attention values the notes count.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

KINDS = ("dot", "general", "additive")


def dot_scores(s: Array, keys: Array) -> Array:
  """e_j = s . k_j for s [B, D], keys [B, T_x, D] -> [B, T_x]."""
  return jnp.einsum("bd,bjd->bj", s, keys)


def additive_scores(ws: Array, keys: Array, v: Array) -> Array:
  """e_j = v . tanh(W s + k_j) for ws = W s [B, A], keys k_j = U a_j + b [B, T_x, A], v [A]."""
  return jnp.tanh(ws[:, None, :] + keys) @ v


def attend(e: Array, a: Array, mask: Array | None = None) -> tuple[Array, Array]:
  """alpha = softmax(e) over the positions where mask is True; c = sum_j alpha_j a_j.

  Args:
    e: alignment scores [B, T_x].
    a: annotations [B, T_x, D].
    mask: [B, T_x] bool, True on real positions (at least one per row); None: all real.

  Returns:
    The context c [B, D] and the weights alpha [B, T_x] (0 on padded positions), both in
    the dtype of `a`; the softmax itself runs in float32.
  """
  e = e.astype(jnp.float32)
  if mask is not None:
    e = jnp.where(mask, e, -jnp.inf)
  alpha = jax.nn.softmax(e, axis=-1)
  if mask is not None:
    alpha = jnp.where(mask, alpha, 0.0)
  alpha = alpha.astype(a.dtype)
  return jnp.einsum("bj,bjd->bd", alpha, a), alpha


class Attention(nn.Module):
  """Scores e_tj = score(s_{t-1}, a_j), weights alpha_tj and context c_t (dot/general/additive).

  Attributes:
    kind: "dot", "general" or "additive".
    query_size: the size of the decoder state s (general: the rows of W_a).
    attention_size: A, the hidden size of the additive MLP (default: query_size).
    dtype: computation dtype (params stay float32).
  """

  kind: str
  query_size: int
  attention_size: int | None = None
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    if self.kind not in KINDS:
      raise ValueError(f"unknown attention {self.kind!r}; known: {list(KINDS)}")
    size = self.attention_size or self.query_size
    if self.kind == "general":
      self.W_a = nn.Dense(self.query_size, use_bias=False, dtype=self.dtype, name="W_a")
    elif self.kind == "additive":
      self.W = nn.Dense(size, use_bias=False, dtype=self.dtype, name="W")
      self.U = nn.Dense(size, use_bias=True, dtype=self.dtype, name="U")  # its bias is b
      self.v = self.param("v", nn.initializers.normal(size ** -0.5), (size,))

  def keys(self, a: Array) -> Array:
    """The step-independent part of the scores for annotations a [B, T_x, D]."""
    if self.kind == "dot":
      if a.shape[-1] != self.query_size:
        raise ValueError(
            f"dot attention needs annotations of the decoder state's size {self.query_size}, "
            f"got {a.shape[-1]}; use 'general' or 'additive'"
        )
      return a
    if self.kind == "general":
      return self.W_a(a)
    return self.U(a)

  def scores(self, s: Array, keys: Array) -> Array:
    """e_j = score(s, a_j) [B, T_x] for the query s [B, query_size] and `keys(a)`."""
    s = s.astype(self.dtype)
    if self.kind == "additive":
      return additive_scores(self.W(s), keys, self.v.astype(self.dtype))
    return dot_scores(s, keys)

  def __call__(
      self, s: Array, keys: Array, a: Array, mask: Array | None = None
  ) -> tuple[Array, Array]:
    """(c_t [B, D], alpha_t [B, T_x]) for the query s = s_{t-1} and annotations a."""
    return attend(self.scores(s, keys), a, mask)
