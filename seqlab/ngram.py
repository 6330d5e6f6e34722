"""Token n-gram language models with interpolated Kneser-Ney smoothing: the classical baseline.

Chen & Goodman (1998), interpolated Kneser-Ney with one discount per order. For the highest
order N the counts are the n-grams' own counts c(h w); every lower order uses continuation
counts, the number of distinct tokens seen before the n-gram, N1+(. h w). With h' the
context h without its oldest token:

    P_n(w | h) = max(c(h w) - D_n, 0) / c(h) + D_n N1+(h .) / c(h) P_{n-1}(w | h')
    P_n(w | h) = P_{n-1}(w | h')                       where the context h was never seen
    P_1(w)     = max(N1+(. w) - D_1, 0) / N1+(. .) + D_1 N1+(.) / N1+(. .) / V

where c(h) = sum_w c(h w), N1+(h .) counts the distinct tokens after h, and the discount is
D_n = n1 / (n1 + 2 n2) from the numbers n1, n2 of n-grams counted once and twice. Each
distribution sums to one over the V tokens. n-grams are base-V integers, so counting is
np.unique over sliding windows and lookups are binary searches.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class _Order:
  """The counts of one order n: n-gram codes with their (continuation) counts, the context
  codes with their totals c(h) and distinct followers N1+(h .), and the discount D_n."""

  grams: np.ndarray
  counts: np.ndarray
  contexts: np.ndarray
  totals: np.ndarray
  followers: np.ndarray
  discount: float


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
  """values[keys == q] for each query, 0 where a query is not among the sorted keys."""
  idx = np.minimum(np.searchsorted(keys, queries), max(len(keys) - 1, 0))
  found = (keys[idx] == queries) if len(keys) else np.zeros(len(queries), bool)
  return np.where(found, values[idx], 0)


def _windows(ids: np.ndarray, n: int, vocab_size: int) -> np.ndarray:
  """The base-V code of every n-gram of `ids`, in order."""
  codes = np.zeros(len(ids) - n + 1, np.int64)
  for j in range(n):
    codes = codes * vocab_size + ids[j:len(ids) - n + 1 + j]
  return codes


def _discount(counts: np.ndarray) -> float:
  n1, n2 = np.sum(counts == 1), np.sum(counts == 2)
  return float(n1 / (n1 + 2 * n2)) if n1 + n2 else 0.5


class KneserNey:
  """An interpolated Kneser-Ney model of order `order` over token ids in [0, vocab_size)."""

  def __init__(self, ids: np.ndarray, order: int, vocab_size: int):
    if order < 1 or vocab_size ** order >= 2 ** 62:
      raise ValueError(f"order {order} with {vocab_size} tokens does not fit base-V codes")
    ids = np.asarray(ids, np.int64)
    self.order, self.vocab_size = order, vocab_size
    self.orders: list[_Order] = []
    higher = None  # the distinct (n+1)-grams, for the continuation counts of order n
    for n in range(order, 0, -1):
      if n == order:
        grams, counts = np.unique(_windows(ids, n, vocab_size), return_counts=True)
      else:  # N1+(. g): distinct (n+1)-grams whose last n tokens are g
        grams, counts = np.unique(higher % vocab_size ** n, return_counts=True)
      contexts, first = np.unique(grams // vocab_size, return_index=True)
      totals = np.add.reduceat(counts, first)
      followers = np.diff(np.append(first, len(grams)))
      self.orders.insert(0, _Order(grams, counts, contexts, totals, followers,
                                   _discount(counts)))
      higher = grams

  def probabilities(self, ids: np.ndarray) -> np.ndarray:
    """P(ids[t] | the up to order-1 tokens before it), for every position t."""
    ids = np.asarray(ids, np.int64)
    v = self.vocab_size
    unigram = self.orders[0]
    total = unigram.counts.sum()
    seen = _lookup(unigram.grams, unigram.counts, ids)
    p = (np.maximum(seen - unigram.discount, 0) / total
         + unigram.discount * len(unigram.grams) / total / v)
    for n in range(2, self.order + 1):
      counts = self.orders[n - 1]
      codes = _windows(ids, n, v)  # position t = n - 1 + i
      contexts = codes // v
      c_h = _lookup(counts.contexts, counts.totals, contexts).astype(np.float64)
      c_hw = _lookup(counts.grams, counts.counts, codes)
      after = _lookup(counts.contexts, counts.followers, contexts)
      lower = p[n - 1:]
      safe = np.maximum(c_h, 1)
      mixed = (np.maximum(c_hw - counts.discount, 0) / safe
               + counts.discount * after / safe * lower)
      p = np.concatenate([p[:n - 1], np.where(c_h > 0, mixed, lower)])
    return p

  def bits_per_token(self, ids: np.ndarray) -> float:
    """Cross-entropy of `ids` in bits per token."""
    return float(-np.mean(np.log2(self.probabilities(ids))))
