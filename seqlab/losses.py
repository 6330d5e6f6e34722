"""Masked sums over real steps: the token cross-entropy every token decoder trains with.

    xent = sum_{b,t} m_bt -log softmax(o_bt)[y_bt],   loss = xent / sum_{b,t} m_bt
"""

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


def token_sums(logits: Array, targets: Array, mask: Array) -> tuple[Array, Array, Array]:
  """(sum m * -log softmax(logits)[y], sum m * [argmax == y], sum m) over real steps."""
  m = mask.astype(jnp.float32)
  xent = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return (xent * m).sum(), (correct * m).sum(), m.sum()


def masked_mean(values: Array, mask: Array) -> Array:
  """sum(values * mask) / sum(mask)."""
  mask = mask.astype(jnp.float32)
  return (values * mask).sum() / jnp.maximum(mask.sum(), 1.0)
