"""Greedy, sampling and beam search against exhaustive enumeration on a tiny model."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells, decode

V, H = 3, 8


def _model(seed=0, vocab=V):
  """A tiny GRU language model: state h, logits = 3 * h @ V_out (peaked distributions)."""
  cell = cells.make("gru")
  k_cell, k_emb, k_out = jax.random.split(jax.random.key(seed), 3)
  params = {
      "cell": cell.init(k_cell, 4, H),
      "embed": jax.random.normal(k_emb, (vocab, 4)),
      "out": 3.0 * jax.random.normal(k_out, (H, vocab)) / np.sqrt(H),
  }

  def step_fn(h, tokens):
    h, y = cell.step(params["cell"], h, params["embed"][tokens])
    return h, y @ params["out"]

  def initial(batch, seed=1):
    return jax.random.normal(jax.random.key(seed), (batch, H))

  return step_fn, initial


def _sequence_log_prob(step_fn, h, seq, bos, eos=None):
  """log p(seq) by teacher forcing, up to and including the first eos."""
  total, prev = 0.0, bos
  for token in seq:
    h, logits = step_fn(h, jnp.array([prev]))
    total += float(jax.nn.log_softmax(logits[0])[token])
    if token == eos:
      break
    prev = token
  return total


def _canonical(seq, eos):
  """Everything after the first eos becomes eos."""
  if eos is not None and eos in seq:
    i = seq.index(eos)
    return tuple(seq[: i + 1]) + (eos,) * (len(seq) - i - 1)
  return tuple(seq)


def _exhaustive(step_fn, h, vocab, length, bos, eos=None):
  """Every distinct sequence with its log-probability, best first."""
  seqs = {_canonical(list(s), eos) for s in itertools.product(range(vocab), repeat=length)}
  scored = [(_sequence_log_prob(step_fn, h, s, bos, eos), s) for s in seqs]
  return sorted(scored, reverse=True)


def test_beam_width_one_is_greedy():
  step_fn, initial = _model()
  h = initial(4)
  g = decode.greedy(step_fn, h, 0, 7)
  b = decode.beam_search(step_fn, h, 0, 7, beam_width=1)
  np.testing.assert_array_equal(b.tokens[:, 0], g.tokens)
  np.testing.assert_allclose(b.log_probs[:, 0], g.log_probs, rtol=1e-5)


def test_greedy_log_prob_is_the_sequence_log_prob():
  step_fn, initial = _model()
  h = initial(2)
  g = decode.greedy(step_fn, h, 0, 5)
  for b in range(2):
    expected = _sequence_log_prob(step_fn, h[b : b + 1], list(map(int, g.tokens[b])), 0)
    np.testing.assert_allclose(g.log_probs[b], expected, rtol=1e-5)


@pytest.mark.parametrize("eos", [None, 2])
def test_wide_beam_finds_the_exact_most_probable_sequences(eos):
  """With K = V^(L-1) every prefix survives, so the beams are the exact top K."""
  length, width = 4, V ** 3
  step_fn, initial = _model(seed=3)
  h = initial(1, seed=4)
  best = _exhaustive(step_fn, h, V, length, bos=0, eos=eos)
  beams = jax.jit(decode.beam_search, static_argnums=(0, 3, 4, 5))(
      step_fn, h, 0, length, width, eos)
  top = min(width, len(best))
  for k in range(top):
    assert tuple(map(int, beams.tokens[0, k])) == best[k][1]
    np.testing.assert_allclose(beams.log_probs[0, k], best[k][0], rtol=1e-5)
  if eos is not None:  # the lengths count tokens up to the first eos
    for k in range(top):
      seq = list(map(int, beams.tokens[0, k]))
      assert beams.lengths[0, k] == (seq.index(eos) + 1 if eos in seq else length)


def test_length_penalty_ranks_by_log_prob_per_token():
  step_fn, initial = _model(seed=5)
  h = initial(2)
  beams = decode.beam_search(step_fn, h, 0, 5, beam_width=6, eos_id=1, length_penalty=1.0)
  per_token = beams.log_probs / beams.lengths
  assert np.all(np.diff(np.asarray(per_token), axis=1) <= 1e-6)


def test_sampling_follows_the_model_and_cools_to_greedy():
  step_fn, initial = _model()
  h = initial(1)
  cold = decode.sample(step_fn, h, 0, 6, jax.random.key(0), temperature=1e-4)
  np.testing.assert_array_equal(cold.tokens, decode.greedy(step_fn, h, 0, 6).tokens)
  many = jnp.repeat(h, 4000, axis=0)
  draws = jax.jit(functools.partial(decode.sample, step_fn, bos_id=0, max_len=1))(
      many, rng=jax.random.key(1))
  freq = np.bincount(np.asarray(draws.tokens[:, 0]), minlength=V) / 4000
  p = np.asarray(jax.nn.softmax(step_fn(h, jnp.array([0]))[1][0]))
  np.testing.assert_allclose(freq, p, atol=0.03)


def test_finished_sequences_only_repeat_eos():
  step_fn, initial = _model(seed=2)
  out = decode.sample(step_fn, initial(64), 0, 8, jax.random.key(3), eos_id=1)
  tokens = np.asarray(out.tokens)
  for row, length in zip(tokens, np.asarray(out.lengths), strict=True):
    assert np.all(row[length:] == 1)
    if length < 8:
      assert row[length - 1] == 1 and 1 not in row[: length - 1]
