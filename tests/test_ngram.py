"""The Kneser-Ney baseline against counts done by hand, a plain dict implementation written
from Chen & Goodman's equations, and normalisation over the vocabulary."""

import collections
import itertools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqlab.ngram import KneserNey


def test_a_bigram_model_of_abcab_by_hand():
  """Corpus a b c a b (V = 3). Bigram counts ab 2, bc 1, ca 1: n1 = 2, n2 = 1, D2 = 1/2.
  Continuation counts N1+(. a) = N1+(. b) = N1+(. c) = 1 of N1+(. .) = 3: D1 = 1, so
  P1 = 1/3 each. P2(b | a) = (2 - 1/2)/2 + (1/2)(1)/2 * 1/3 = 5/6, P2(a | c) = (1 - 1/2)/1
  + (1/2)(1)/1 * 1/3 = 2/3, P2(a | a) = (1/2)(1)/2 * 1/3 = 1/12."""
  model = KneserNey(np.array([0, 1, 2, 0, 1]), order=2, vocab_size=3)
  np.testing.assert_allclose(model.probabilities(np.array([0, 1])), [1 / 3, 5 / 6])
  np.testing.assert_allclose(model.probabilities(np.array([2, 0])), [1 / 3, 2 / 3])
  np.testing.assert_allclose(model.probabilities(np.array([0, 0])), [1 / 3, 1 / 12])


def _reference(corpus: list[int], order: int, vocab_size: int):
  """P(w | h) written with dicts and recursion, straight from the equations."""
  grams = {n: collections.Counter(tuple(corpus[i:i + n]) for i in range(len(corpus) - n + 1))
           for n in range(1, order + 1)}
  counts = {order: grams[order]}
  for n in range(order - 1, 0, -1):  # continuation counts N1+(. g)
    counts[n] = collections.Counter(g[1:] for g in counts[n + 1])

  def discount(n):
    values = list(counts[n].values())
    n1, n2 = values.count(1), values.count(2)
    return n1 / (n1 + 2 * n2) if n1 + n2 else 0.5

  def p(w, h):
    n = len(h) + 1
    d = discount(n)
    if n == 1:
      total = sum(counts[1].values())
      return max(counts[1][(w,)] - d, 0) / total + d * len(counts[1]) / total / vocab_size
    c_h = sum(c for g, c in counts[n].items() if g[:-1] == h)
    if c_h == 0:
      return p(w, h[1:])
    after = sum(1 for g in counts[n] if g[:-1] == h)
    return max(counts[n][h + (w,)] - d, 0) / c_h + d * after / c_h * p(w, h[1:])
  return p


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_equals_a_dict_implementation_of_the_equations(order):
  rng = np.random.default_rng(order)
  corpus = list(rng.choice(4, size=300, p=[0.5, 0.3, 0.15, 0.05]))
  corpus += [0, 1, 2, 3] * 5  # every token seen
  test = list(rng.integers(0, 5, size=60))  # token 4 never seen in training
  model = KneserNey(np.array(corpus), order=order, vocab_size=5)
  reference = _reference(corpus, order, 5)
  want = [reference(w, tuple(test[max(0, t - order + 1):t])) for t, w in enumerate(test)]
  np.testing.assert_allclose(model.probabilities(np.array(test)), want, rtol=1e-12)


@pytest.mark.parametrize("order", [2, 3])
def test_every_distribution_sums_to_one(order):
  rng = np.random.default_rng(0)
  model = KneserNey(rng.integers(0, 4, size=200), order=order, vocab_size=5)
  for context in itertools.product(range(5), repeat=order - 1):  # seen and unseen contexts
    last = [model.probabilities(np.array([*context, w]))[-1] for w in range(5)]
    assert sum(last) == pytest.approx(1.0, abs=1e-12), context


def test_a_higher_order_fits_a_markov_source_better():
  """Text from a second-order Markov chain: the trigram beats the unigram on held-out text."""
  rng = np.random.default_rng(1)
  table = rng.dirichlet(np.full(4, 0.2), size=(4, 4))
  ids = [0, 1]
  for _ in range(6000):
    ids.append(rng.choice(4, p=table[ids[-2], ids[-1]]))
  train, held = np.array(ids[:5000]), np.array(ids[5000:])
  bits = [KneserNey(train, n, 4).bits_per_token(held) for n in (1, 3)]
  assert bits[1] < bits[0] - 0.3, bits


def test_the_baseline_script_runs_on_the_char_lm_corpus(tmp_path):
  """`experiments/ngram_baseline.py --quick`: the char LM's corpus, orders 2 and 3."""
  root = Path(__file__).resolve().parent.parent
  result = subprocess.run(
      [sys.executable, "experiments/ngram_baseline.py", "--quick", f"--data_dir={tmp_path}",
       f"--output_dir={tmp_path / 'out'}"], cwd=root, capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  bits = {int(n): float(b) for n, b in re.findall(r"order (\d): ([\d.]+) bits", result.stdout)}
  assert set(bits) == {2, 3} and 2.0 < bits[3] < bits[2] < 4.0, bits
  assert "Best: order 3" in (tmp_path / "out" / "ngram_baseline.md").read_text()
