"""Output heads over hidden states h [..., H] for large vocabularies (notes 002, to-do list).

Full softmax (o = h V + c, row-vector form of the notes' o = c + V h):

    log p(w | h) = o_w - log Z,   Z = sum_v exp(o_v),   loss = -log p(y | h)

Sampled softmax (Bengio & Senecal 2008; Jean et al. 2015): K negatives w_1..w_K drawn i.i.d.
(with replacement) from a proposal Q, shared by the whole batch; each negative's logit is
corrected by the log of its expected count in the sample, o_w - log(K Q(w)); negatives equal
to the target ("accidental hits") are removed; the target itself is in the candidate set
with certainty (expected count 1, no correction):

    Z_hat = exp(o_y) + sum_{j: w_j != y} exp(o_{w_j} - log(K Q(w_j))),   loss = log Z_hat - o_y

E_Q[Z_hat] = Z exactly for every K (importance sampling of sum_{v != y} exp(o_v)), so
E[exp(loss)] = exp(full loss) and loss -> full loss as K grows; with every class in the
candidate set at expected count 1 the loss equals the full loss exactly.

Hierarchical (two-level, class-based) softmax (Goodman 2001; Mikolov et al. 2011), each word
w in exactly one class k(w):

    P(w | h) = P(k(w) | h) P(w | k(w), h)
    P(k | h) = softmax_k(h V_class + c_class),   P(w | k, h) = softmax over w' in k of (h V + c)

Every head: `__call__(h)` -> exact log p(. | h) [..., vocab]; `nll(h, y)` -> exact -log p(y | h);
`loss(h, y, key)` -> the training loss (sampled for `SampledSoftmaxHead`, else `nll`). Logits
are computed in `dtype`, losses in float32.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqlab.models.recurrent import cast_floats

Array = jax.Array
_NEG = -1e30  # a logit that exp() turns into exactly 0 (float32)


def log_uniform_log_q(vocab_size: int) -> Array:
  """Zipfian proposal over ids sorted by falling frequency: Q(w) = log((w+2)/(w+1)) / log(V+1)."""
  w = jnp.arange(vocab_size, dtype=jnp.float32)
  return jnp.log(jnp.log((w + 2.0) / (w + 1.0)) / jnp.log(vocab_size + 1.0))


def unigram_log_q(counts: Sequence[float], power: float = 1.0) -> Array:
  """Unigram proposal Q(w) proportional to counts[w]^power (word2vec uses power 0.75)."""
  q = jnp.asarray(counts, jnp.float32) ** power
  return jnp.log(q / q.sum())


def sampled_softmax_loss(h: Array, targets: Array, V: Array, c: Array, candidates: Array,
                         log_expected_counts: Array, remove_accidental_hits: bool = True
                         ) -> Array:
  """log Z_hat - o_y for h [N, H], targets [N], negatives `candidates` [K] shared by all rows.

  log_expected_counts [K]: log of each candidate's expected count in the sample (log(K Q(w))
  for i.i.d. sampling; 0 for a candidate included with certainty).
  """
  o_y = jnp.einsum("nh,nh->n", h, jnp.take(V, targets, axis=1).T) + c[targets]
  o_s = h @ jnp.take(V, candidates, axis=1) + c[candidates]  # [N, K]
  o_s = o_s.astype(jnp.float32) - log_expected_counts
  if remove_accidental_hits:
    o_s = jnp.where(candidates[None, :] == targets[:, None], _NEG, o_s)
  o_y = o_y.astype(jnp.float32)
  log_z_hat = jax.nn.logsumexp(jnp.concatenate([o_y[:, None], o_s], axis=1), axis=1)
  return log_z_hat - o_y


class SoftmaxHead(nn.Module):
  """Full softmax head: log p(w | h) = log_softmax(h V + c)_w."""

  vocab_size: int
  features: int  # H, the size of the hidden states
  dtype: Any = jnp.float32

  def setup(self):
    self.V = self.param("V", nn.initializers.lecun_normal(), (self.features, self.vocab_size))
    self.c = self.param("c", nn.initializers.zeros, (self.vocab_size,))

  def _params(self, h):
    return cast_floats((self.V, self.c, h), self.dtype)

  def logits(self, h: Array) -> Array:
    """o = h V + c [..., vocab]."""
    V, c, h = self._params(h)
    return h @ V + c

  def __call__(self, h: Array) -> Array:
    return jax.nn.log_softmax(self.logits(h).astype(jnp.float32), axis=-1)

  def nll(self, h: Array, targets: Array) -> Array:
    """-log p(targets | h) [...], exact."""
    return -jnp.take_along_axis(self(h), targets[..., None], axis=-1)[..., 0]

  def loss(self, h: Array, targets: Array, key: Array | None = None) -> Array:
    """Training loss per position: the exact nll (key unused)."""
    del key
    return self.nll(h, targets)


class SampledSoftmaxHead(SoftmaxHead):
  """Softmax head trained by sampled softmax; exact distribution for evaluation."""

  num_sampled: int = 64  # K
  proposal: str = "log_uniform"  # "log_uniform", "uniform" or "unigram" (needs counts)
  counts: tuple[float, ...] | None = None  # unigram counts per id
  remove_accidental_hits: bool = True

  def log_q(self) -> Array:
    """log Q(w) of the proposal [vocab]."""
    if self.proposal == "log_uniform":
      return log_uniform_log_q(self.vocab_size)
    if self.proposal == "uniform":
      return jnp.full((self.vocab_size,), -np.log(self.vocab_size), jnp.float32)
    if self.proposal == "unigram" and self.counts is not None:
      return unigram_log_q(self.counts)
    raise ValueError(f"unknown proposal {self.proposal!r} (unigram needs counts); known "
                     "proposals: ['log_uniform', 'uniform', 'unigram']")

  def sample(self, key: Array) -> tuple[Array, Array]:
    """K i.i.d. ids from Q and their log expected counts log(K Q(w))."""
    log_q = self.log_q()
    ids = jax.random.choice(key, self.vocab_size, (self.num_sampled,), p=jnp.exp(log_q))
    return ids, jnp.log(float(self.num_sampled)) + log_q[ids]

  def loss(self, h: Array, targets: Array, key: Array | None = None) -> Array:
    """Sampled-softmax loss log Z_hat - o_y per position, from K negatives drawn with `key`."""
    V, c, h = self._params(h)
    candidates, log_counts = self.sample(key)
    flat = sampled_softmax_loss(h.reshape(-1, h.shape[-1]), targets.reshape(-1), V, c,
                                candidates, log_counts, self.remove_accidental_hits)
    return flat.reshape(targets.shape)


BINNINGS = ("mass", "size")


def frequency_classes(counts: Sequence[float], num_classes: int,
                      binning: str = "mass") -> tuple[int, ...]:
  """Words by falling count, cut into `num_classes` runs: of ~equal unigram mass ("mass",
  Mikolov et al. 2011's frequency binning) or of equal size ceil(V / C) ("size").

  Mass binning puts the frequent words in small classes, but the rare words share one
  class of a large share of V; a head that pads every class to the largest (as
  `HierarchicalSoftmaxHead` does, to stay vectorised) then costs O(C + max size) per
  position, which equal sizes bring down to O(2 sqrt(V)) with C = sqrt(V).
  """
  if binning not in BINNINGS:
    raise ValueError(f"unknown class binning {binning!r}; known: {list(BINNINGS)}")
  counts = np.asarray(counts, np.float64)
  order = np.argsort(-counts, kind="stable")
  if binning == "size":
    bins = np.arange(len(counts)) // -(-len(counts) // num_classes)
  else:
    before = np.concatenate([[0.0], np.cumsum(counts[order])[:-1]])  # mass before each word
    bins = np.minimum(np.floor(num_classes * before / counts.sum()).astype(int),
                      num_classes - 1)  # the bin where each word's mass starts
  class_of = np.empty(len(counts), int)
  class_of[order] = bins
  _, class_of = np.unique(class_of, return_inverse=True)  # drop empty bins: ids 0..C'-1
  return tuple(int(k) for k in class_of)


class HierarchicalSoftmaxHead(nn.Module):
  """Two-level class-based softmax: P(w | h) = P(k(w) | h) P(w | k(w), h)."""

  class_of: tuple[int, ...]  # k(w) for every word id w; classes 0..C-1, none empty
  features: int  # H
  dtype: Any = jnp.float32

  def setup(self):
    class_of = np.asarray(self.class_of)
    num_classes, vocab = int(class_of.max()) + 1, len(class_of)
    sizes = np.bincount(class_of, minlength=num_classes)
    if class_of.min() < 0 or not sizes.all():
      raise ValueError(f"classes must be 0..C-1 with none empty; sizes: {sizes.tolist()}")
    order = np.argsort(class_of, kind="stable")  # word ids grouped by class
    starts = np.cumsum(sizes) - sizes
    slot = np.empty(vocab, np.int32)  # slot[w]: w's place in its class
    slot[order] = np.arange(vocab) - starts[class_of[order]]
    members = np.zeros((num_classes, sizes.max()), np.int32)  # members[k, m]: m-th word of k
    members[class_of, slot] = np.arange(vocab)
    self.tables = dict(class_of=jnp.asarray(class_of, jnp.int32), members=jnp.asarray(members),
                       real=jnp.asarray(np.arange(sizes.max())[None, :] < sizes[:, None]),
                       slot=jnp.asarray(slot))
    init = nn.initializers.lecun_normal()
    self.V_class = self.param("V_class", init, (self.features, num_classes))
    self.c_class = self.param("c_class", nn.initializers.zeros, (num_classes,))
    self.V = self.param("V", init, (self.features, vocab))
    self.c = self.param("c", nn.initializers.zeros, (vocab,))

  def class_log_probs(self, h: Array) -> Array:
    """log P(k | h) [..., C]."""
    V_class, c_class, h = cast_floats((self.V_class, self.c_class, h), self.dtype)
    return jax.nn.log_softmax((h @ V_class + c_class).astype(jnp.float32), axis=-1)

  def __call__(self, h: Array) -> Array:
    """Exact log P(w | h) for every word [..., vocab] (sums to 1 over the vocabulary)."""
    t = self.tables
    V, c, h = cast_floats((self.V, self.c, h), self.dtype)
    o = (h @ V + c).astype(jnp.float32)  # [..., vocab]
    in_class = jnp.where(t["real"], o[..., t["members"]], _NEG)  # [..., C, M]
    log_norm = jax.nn.logsumexp(in_class, axis=-1)  # log sum_{w' in k} exp(o_w')
    word_given_class = o - log_norm[..., t["class_of"]]
    return self.class_log_probs(h)[..., t["class_of"]] + word_given_class

  def nll(self, h: Array, targets: Array) -> Array:
    """-log P(y | h) [...], from the C class logits and the logits of y's class only."""
    t = self.tables
    k = t["class_of"][targets]
    log_p_class = jnp.take_along_axis(self.class_log_probs(h), k[..., None], axis=-1)[..., 0]
    V, c, h = cast_floats((self.V, self.c, h), self.dtype)
    words = t["members"][k]  # [..., M]
    V_k = jnp.moveaxis(jnp.take(V, words, axis=1), 0, -1)  # [..., M, H]: columns of y's class
    o = jnp.einsum("...h,...mh->...m", h, V_k) + c[words]
    o = jnp.where(t["real"][k], o.astype(jnp.float32), _NEG)
    o_y = jnp.take_along_axis(o, t["slot"][targets][..., None], axis=-1)[..., 0]
    return -(log_p_class + o_y - jax.nn.logsumexp(o, axis=-1))

  def loss(self, h: Array, targets: Array, key: Array | None = None) -> Array:
    """Training loss per position: the exact nll (key unused)."""
    del key
    return self.nll(h, targets)
