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


# ---- batched beams against numpy: a table model whose logits are known for every prefix ----
#
# The "model" is a table: the logits of the next token after prefix y_1..y_n of row b are
# TABLE[b, code(y_1..y_n)], code(empty) = 0, code(y_1..y_n, y) = V * code(y_1..y_n) + y + 1.
# Its state (row, code) must follow each beam through beam search's reordering, so a beam
# that inherits another row's or another beam's state scores different logits.

TABLE_LEN = 4  # tokens per decoded sequence


def _table(rows, seed, eos_bias):
  """Random logits for every prefix of up to TABLE_LEN - 1 tokens; eos (if any) biased per row."""
  codes = sum(V**n for n in range(TABLE_LEN))
  table = np.random.default_rng(seed).normal(0.0, 1.5, (rows, codes, V))
  table[:, :, 1] += np.asarray(eos_bias)[:, None]  # token 1 is eos where a test uses one
  return table.astype(np.float32)


def _table_step(table):
  """step(carry, token) -> (carry, logits) over carry = (row, code); code -1 = before <bos>."""
  table = jnp.asarray(table)

  def step(carry, token):
    row, code = carry
    code = jnp.where(code < 0, 0, V * code + token + 1)
    return (row, code), table[row, code]

  return step


def _table_state(rows):
  return (jnp.asarray(rows, jnp.int32), jnp.full(len(rows), -1, jnp.int32))


def _log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_extend(table, row, seq, eos):
  """log p(y | seq) for every y: eos only (at 0) once seq has ended with eos."""
  if eos is not None and eos in seq:
    out = np.full(V, -np.inf)
    out[eos] = 0.0
    return out
  code = 0
  for token in seq:
    code = V * code + token + 1
  return _log_softmax(table[row, code].astype(np.float64))


def _np_length(seq, eos):
  return seq.index(eos) + 1 if eos is not None and eos in seq else len(seq)


def _np_exhaustive(table, row, eos):
  """Every distinct sequence of row `row` with its log-probability, best first."""
  seqs = {_canonical(list(s), eos) for s in itertools.product(range(V), repeat=TABLE_LEN)}
  scored = []
  for s in seqs:
    scored.append((sum(_np_extend(table, row, list(s[:t]), eos)[s[t]]
                       for t in range(TABLE_LEN)), s))
  return sorted(scored, reverse=True)


def _np_beam_search(table, row, width, eos, length_penalty):
  """Textbook beam search: keep the `width` best extensions of the live beams at every step."""
  beams = [(0.0, [])]
  for _ in range(TABLE_LEN):
    candidates = [(score + lp, seq + [y]) for score, seq in beams
                  for y, lp in enumerate(_np_extend(table, row, seq, eos)) if lp > -np.inf]
    beams = sorted(candidates, key=lambda c: -c[0])[:width]
  return sorted(beams, key=lambda c: -c[0] / _np_length(c[1], eos) ** length_penalty)


def _assert_beams(beams, b, expected, eos):
  for k, (score, seq) in enumerate(expected):
    assert tuple(map(int, beams.tokens[b, k])) == tuple(seq), (b, k)
    np.testing.assert_allclose(beams.log_probs[b, k], score, rtol=1e-5, atol=1e-5)
    assert int(beams.lengths[b, k]) == _np_length(list(seq), eos)


ROWS_EOS_BIAS = [3.0, -2.0, 0.5]  # row 0 ends early, row 1 late: beams of different lengths


@pytest.mark.parametrize("eos", [None, 1])
def test_batched_wide_beams_are_each_rows_exact_top_sequences(eos):
  """B = 3 rows, K = V^(L-1): every row's beams are its exact most probable sequences."""
  table = _table(3, seed=10, eos_bias=ROWS_EOS_BIAS if eos else [0.0] * 3)
  step_fn = _table_step(table)
  width = V ** (TABLE_LEN - 1)
  search = jax.jit(decode.beam_search, static_argnums=(0, 2, 3, 4, 5))
  beams = search(step_fn, _table_state([0, 1, 2]), 0, TABLE_LEN, width, eos)
  for b in range(3):
    best = _np_exhaustive(table, b, eos)
    _assert_beams(beams, b, best[:width], eos)
  if eos is not None:  # the rows' best sequences really have different lengths
    assert len({int(beams.lengths[b, 0]) for b in range(3)}) > 1


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_batched_narrow_beams_equal_each_row_alone_and_numpy(length_penalty):
  """B = 4, K = 2 < V^(L-1): pruning happens; each row equals itself alone and numpy's search."""
  rows = [0, 1, 2, 3]
  table = _table(4, seed=11, eos_bias=[*ROWS_EOS_BIAS, 1.0])
  step_fn = _table_step(table)
  search = jax.jit(decode.beam_search, static_argnums=(0, 2, 3, 4, 5, 6))  # 2 compiles, not 5
  beams = search(step_fn, _table_state(rows), 0, TABLE_LEN, 2, 1, length_penalty)
  for b in rows:
    alone = search(step_fn, _table_state([b]), 0, TABLE_LEN, 2, 1, length_penalty)
    for field in ("tokens", "log_probs", "lengths"):
      np.testing.assert_array_equal(getattr(beams, field)[b], getattr(alone, field)[0])
    _assert_beams(beams, b, _np_beam_search(table, b, 2, 1, length_penalty), 1)
  assert len({int(beams.lengths[b, 0]) for b in rows}) > 1


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sample_log_probs_are_the_models_sequence_log_probs(temperature):
  """log_probs of sampled sequences = sum_t log p(y_t | y_<t) at temperature 1, up to eos."""
  table = _table(4, seed=12, eos_bias=[0.0] * 4)
  step_fn = _table_step(table)
  rows = [0, 1, 2, 3] * 4
  out = decode.sample(step_fn, _table_state(rows), 0, TABLE_LEN, jax.random.key(5),
                      temperature=temperature, eos_id=1)
  for b, row in enumerate(rows):
    seq = list(map(int, out.tokens[b]))
    expected = sum(_np_extend(table, row, seq[:t], 1)[seq[t]] for t in range(TABLE_LEN))
    np.testing.assert_allclose(out.log_probs[b], expected, rtol=1e-5, atol=1e-5)
    assert int(out.lengths[b]) == _np_length(seq, 1)
  assert len({tuple(map(int, r)) for r in out.tokens}) > 4  # really sampled, not one path


def np_truncate(p, top_k, top_p):
  """Numpy reference: the top_k, then the fewest most probable whose mass reaches top_p."""
  order = np.argsort(-p, kind="stable")
  keep = np.zeros(len(p), bool)
  keep[order[: top_k or len(p)]] = True
  q = np.where(keep, p, 0.0) / np.where(keep, p, 0.0).sum()
  mass = 0.0
  nucleus = np.zeros(len(p), bool)
  for i in np.argsort(-q, kind="stable"):
    if mass >= top_p or q[i] == 0:
      break
    nucleus[i], mass = True, mass + q[i]
  return keep & nucleus


@pytest.mark.parametrize("top_k,top_p,kept", [
    (0, 1.0, [0, 1, 2, 3, 4]), (2, 1.0, [0, 1]), (0, 0.49, [0]), (0, 0.51, [0, 1]),
    (0, 0.79, [0, 1]), (0, 0.81, [0, 1, 2]), (3, 0.95, [0, 1, 2]), (1, 0.99, [0]),
])
def test_truncate_keeps_the_top_k_and_the_nucleus(top_k, top_p, kept):
  p = np.array([0.5, 0.3, 0.15, 0.04, 0.01])
  perm = np.array([3, 0, 4, 2, 1])  # the vocabulary in another order
  out = np.asarray(decode.truncate(jnp.log(jnp.asarray(p[perm])), top_k, top_p))
  expected = np.isin(perm, kept)
  np.testing.assert_array_equal(np.isfinite(out), expected)
  np.testing.assert_array_equal(np.isfinite(out), np_truncate(p[perm], top_k, top_p))
  np.testing.assert_allclose(out[expected], np.log(p[perm])[expected], rtol=1e-6)


def test_top_k_and_nucleus_sampling_follow_the_renormalised_distribution():
  """Frequencies of 8000 draws = the tempered model renormalised over the kept tokens."""
  step_fn, initial = _model(seed=4, vocab=6)
  h = initial(1)
  logits = np.asarray(step_fn(h, jnp.array([0]))[1][0], np.float64)
  many = jnp.repeat(h, 8000, axis=0)
  for temperature, top_k, top_p in [(1.0, 3, 1.0), (0.7, 0, 0.6), (1.5, 4, 0.9)]:
    draws = jax.jit(functools.partial(
        decode.sample, step_fn, bos_id=0, max_len=1, temperature=temperature, top_k=top_k,
        top_p=top_p))(many, rng=jax.random.key(2))
    freq = np.bincount(np.asarray(draws.tokens[:, 0]), minlength=6) / 8000
    p = np.exp(logits / temperature - np.logaddexp.reduce(logits / temperature))
    keep = np_truncate(p, top_k, top_p)
    expected = np.where(keep, p, 0.0) / p[keep].sum()
    np.testing.assert_array_equal(freq > 0, keep)
    np.testing.assert_allclose(freq, expected, atol=0.02)


def test_bad_sampling_options_raise():
  step_fn, initial = _model()
  for bad in [{"temperature": 0.0}, {"top_p": 0.0}, {"top_p": 1.5}, {"top_k": -1}]:
    with pytest.raises(ValueError, match="sampling needs temperature > 0"):
      decode.sample(step_fn, initial(1), 0, 2, jax.random.key(0), **bad)
