"""The word-level LM: the word corpus, exact evaluation for every head, and completion by
greedy, beam and sampling."""

import math

import jax
import numpy as np
import optax
import pytest
from config_testing import load_config

from seqlab import decode
from seqlab.data import vocab as vocab_lib
from seqlab.problems import build_problem


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def _config(data_dir, head, **model):
  c = load_config("word_lm", f"head={head},vocab=300")
  c.task.data_dir = str(data_dir)
  c.task.options.max_chars = 40_000
  c.model.hidden_size, c.model.embed_size, c.model.num_sampled = 16, 8, 20
  c.model.update(model)
  c.train.batch_size, c.train.seq_len, c.train.tbptt_k2 = 4, 6, 6
  c.decode.max_len = 5
  return c


def test_word_corpus_keeps_the_most_frequent_words(data_dir):
  problem = build_problem(_config(data_dir, "full"))
  vocab = problem.vocab
  assert vocab.level == "word" and len(vocab) == 300
  ids = problem.task.token_stream("train")
  counts = np.bincount(ids, minlength=len(vocab))
  kept = counts[4:]  # most frequent first (ties by token)
  assert np.all(np.diff(kept) <= 0) and counts[vocab_lib.UNK] > kept[0] // 10
  np.testing.assert_array_equal(problem.model.counts, counts + 1)  # add-one unigram counts


@pytest.mark.parametrize("head", ["full", "sampled", "hierarchical"])
def test_evaluation_is_the_exact_loss_of_the_whole_stream(data_dir, head):
  """Two windows with the carried state score exactly -mean log P of the 2T-token sequence,
  P the model's normalised distribution (for the sampled head: the full softmax)."""
  problem = build_problem(_config(data_dir, head))
  batches = problem.train_batches(seed=0, start_step=0)
  first, second = next(batches), next(batches)
  params = problem.init(jax.random.key(0), first)
  extra = problem.init_extra(params, first)
  s1, extra = problem.eval_sums(params, first, extra)
  s2, _ = problem.eval_sums(params, second, extra)
  inputs = np.concatenate([first["inputs"], second["inputs"]], 1)
  targets = np.concatenate([first["targets"], second["targets"]], 1)
  log_p = problem.model.apply(params, inputs)  # exact log P(w | h) [B, 2T, V]
  np.testing.assert_allclose(np.exp(log_p).sum(-1), 1.0, atol=1e-5)
  whole = -np.take_along_axis(np.asarray(log_p), targets[..., None], -1).mean()
  got = problem.summarize({k: s1[k] + s2[k] for k in s1})
  np.testing.assert_allclose(got["loss"], whole, rtol=1e-5)
  np.testing.assert_allclose(got["perplexity"], math.exp(whole), rtol=1e-4)
  loss, (metrics, _) = problem.loss(params, first, jax.random.key(1),
                                    problem.init_extra(params, first), 0)
  np.testing.assert_allclose(metrics["bits_per_word"], loss / math.log(2), rtol=1e-6)
  exact = float(s1["xent"] / s1["chars"])
  if head == "sampled":  # trained on K = 20 negatives: an estimate, not the exact loss
    assert loss != pytest.approx(exact, rel=1e-3)
  else:
    np.testing.assert_allclose(loss, exact, rtol=1e-5)


def test_sampled_head_trains_the_exact_perplexity_down(data_dir):
  problem = build_problem(_config(data_dir, "sampled"))
  batches = problem.train_batches(seed=0, start_step=0)
  batch = next(batches)
  params = problem.init(jax.random.key(0), batch)
  opt = optax.adam(3e-2)
  fresh = problem.init_extra(params, batch)

  @jax.jit
  def step(params, opt_state, key):
    grads = jax.grad(lambda p: problem.loss(p, batch, key, fresh, 0)[0])(params)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state

  before = problem.eval_sums(params, batch, fresh)[0]["xent"]
  opt_state = opt.init(params)
  for i in range(60):
    params, opt_state = step(params, opt_state, jax.random.key(i))
  after = problem.eval_sums(params, batch, fresh)[0]["xent"]
  assert after < 0.7 * before


def test_completion_methods(data_dir):
  """Sampling with top_k = 1 is greedy; the beam's best is at least as probable as greedy."""
  config = _config(data_dir, "full")
  problem = build_problem(config)
  batch = next(problem.train_batches(seed=0, start_step=0))
  params = problem.init(jax.random.key(3), batch)
  prefixes = ["Romeo :", "the king"]
  greedy = problem.complete(params, prefixes, method="greedy")
  with config.unlocked():
    config.decode.top_k = 1
  assert problem.complete(params, prefixes, method="sample") == greedy
  carry, last = problem._read_prefix(params, prefixes[0])
  step_fn = problem.model.bind(params).step
  g = decode.greedy(step_fn, carry, last, 5)
  b = decode.beam_search(step_fn, carry, last, 5, beam_width=4)
  assert float(b.log_probs[0, 0]) >= float(g.log_probs[0]) - 1e-5
  assert problem.complete(params, prefixes[:1], method="beam")[0] == problem.vocab.decode(
      np.asarray(b.tokens[0, 0]))
  with pytest.raises(ValueError, match="unknown completion method 'nucleus'"):
    problem.complete(params, prefixes, method="nucleus")


def test_word_corpus_needs_the_rnn_lm_model(data_dir):
  config = _config(data_dir, "full")
  config.model.name = "rnn"
  with pytest.raises(ValueError, match="trains config.model.name='rnn_lm'"):
    build_problem(config)
