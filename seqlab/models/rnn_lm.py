"""`RNNLM`: a recurrent language model whose output layer is a large-vocabulary head.

    x_t = E w_t,   h_t = cell(h_{t-1}, x_t),   P(w_{t+1} | w_<=t) = head(h_t)

with head one of `seqlab.models.heads` (notes 002, the large-vocabulary to-do list):
"full" (softmax(h V + c)), "sampled" (trained by sampled softmax with K negatives from a
proposal Q; its distribution is still the full softmax) or "hierarchical" (two levels:
P(class | h) P(w | class, h), words binned into classes of equal unigram mass). Training
calls `head_loss` (sampled for "sampled"); evaluation always scores the exact, normalised
log P(w | h) (`head_nll`), so perplexities of the three heads compare.
"""

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqlab.models import heads
from seqlab.models.recurrent import Recurrent

Array = jax.Array
HEADS = ("full", "sampled", "hierarchical")


class RNNLM(nn.Module):
  """Embedding, one recurrent layer and a full, sampled or hierarchical softmax head.

  Attributes:
    cell, hidden_size, cell_options: the recurrent layer (`seqlab.cells`).
    vocab_size: V, input and output vocabulary.
    embed_size: the size of E's rows.
    head: "full", "sampled" or "hierarchical".
    num_sampled: K, the negatives per training step ("sampled").
    proposal: Q of the sampled head: "log_uniform" (Zipf over ids sorted by frequency),
      "uniform" or "unigram" (needs counts).
    counts: unigram counts per id (the data fixes them; the unigram proposal and the
      hierarchical head's frequency classes use them).
    num_classes: classes of the hierarchical head (0: round(sqrt(V))).
    class_binning: how it cuts the words, by falling count, into classes: "size" (equal
      sizes, the fastest padded head) or "mass" (equal unigram mass, Mikolov et al. 2011).
    dtype: computation dtype (params stored float32).
  """

  cell: str
  hidden_size: int
  vocab_size: int
  embed_size: int = 64
  cell_options: Mapping[str, Any] | None = None
  head: str = "full"
  num_sampled: int = 256
  proposal: str = "log_uniform"
  counts: tuple[float, ...] | None = None
  num_classes: int = 0
  class_binning: str = "size"
  dtype: Any = jnp.float32
  backend: str = "auto"  # auto | scan | onednn | cudnn (see seqlab.unroll)

  def setup(self):
    if self.head not in HEADS:
      raise ValueError(f"unknown head {self.head!r}; known heads: {list(HEADS)}")
    self.embed = nn.Embed(self.vocab_size, self.embed_size, dtype=self.dtype)
    self.recurrent = Recurrent(self.cell, self.hidden_size, self.cell_options, dtype=self.dtype,
                               backend=self.backend)
    if self.head == "hierarchical":
      if self.counts is None:
        raise ValueError("the hierarchical head needs unigram counts to bin words into classes")
      num_classes = self.num_classes or round(self.vocab_size ** 0.5)
      self.output = heads.HierarchicalSoftmaxHead(
          heads.frequency_classes(self.counts, num_classes, self.class_binning),
          self.hidden_size, self.dtype)
    elif self.head == "sampled":
      self.output = heads.SampledSoftmaxHead(
          self.vocab_size, self.hidden_size, self.dtype, num_sampled=self.num_sampled,
          proposal=self.proposal, counts=self.counts)
    else:
      self.output = heads.SoftmaxHead(self.vocab_size, self.hidden_size, self.dtype)

  def __call__(self, tokens: Array) -> Array:
    """Exact log P(w_{t+1} = v | w_<=t) [B, T, V] for tokens [B, T], from a zero state."""
    _, hs = self.recurrent(self.embed(tokens))
    return self.output(hs)

  def start(self, batch_size: int) -> Any:
    """h_0 for a batch driven step by step."""
    return self.recurrent.initial_carry(batch_size)

  def hidden_run(self, carry: Any, tokens: Array) -> tuple[Any, Array]:
    """(final carry, h [B, T, H]) from `carry`: `hidden_step` over the tokens at once."""
    return self.recurrent(self.embed(tokens), carry=carry)

  def hidden_step(self, carry: Any, tokens: Array) -> tuple[Any, Array]:
    """(h_{t-1}, w_t [B]) -> (h_t, h_t): the recurrent step without the head."""
    return self.recurrent.step(carry, self.embed(tokens))

  def step(self, carry: Any, tokens: Array) -> tuple[Any, Array]:
    """(h_{t-1}, w_t) -> (h_t, log P(. | w_<=t) [B, V]): the decoders' step."""
    carry, h = self.hidden_step(carry, tokens)
    return carry, self.output(h)

  def head_loss(self, h: Array, targets: Array, key: Array | None = None) -> Array:
    """The training loss per position: sampled softmax's for "sampled", else -log P(y | h)."""
    return self.output.loss(h, targets, key)

  def head_nll(self, h: Array, targets: Array) -> Array:
    """-log P(y | h) per position, exact and normalised over the whole vocabulary."""
    return self.output.nll(h, targets)
