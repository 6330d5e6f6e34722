"""Output heads: full, sampled and hierarchical softmax against numpy and the full softmax."""

import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqlab.models import heads

H, VOCAB = 6, 20
CLASS_OF = (0, 0, 1, 2, 1, 1, 3, 0, 2, 2, 3, 3, 3, 1, 0, 2, 3, 1, 0, 4)  # class 4: one word
TOL = {"atol": 1e-5, "rtol": 1e-5}


def _np_log_softmax(o, axis=-1):
  o = o - o.max(axis, keepdims=True)
  return o - np.log(np.exp(o).sum(axis, keepdims=True))


def _hidden(seed, shape=(3, 4)):
  return jax.random.normal(jax.random.key(seed), shape + (H,))


def _targets(seed, shape=(3, 4), vocab=VOCAB):
  return jax.random.randint(jax.random.key(seed), shape, 0, vocab)


def _init(head, h, seed=0):
  """Params with the structure of head.init, every leaf N(0, 1) (numpy): logits of order 1-3."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(head.init, jax.random.key(0), h)
  return jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), jnp.float32), shapes)


def _jit(head, method="__call__"):
  """jax.jit(head.apply) with `method`: compiled once, cheaper than op-by-op on CPU."""
  return jax.jit(lambda params, *args: head.apply(params, *args, method=getattr(head, method)))


def _heads():
  return {
      "softmax": heads.SoftmaxHead(VOCAB, H),
      "sampled": heads.SampledSoftmaxHead(VOCAB, H, num_sampled=8),
      "hierarchical": heads.HierarchicalSoftmaxHead(CLASS_OF, H),
  }


# ---------------------------------------------------------------------------
# Full and hierarchical softmax against numpy.
# ---------------------------------------------------------------------------


def test_full_softmax_equals_numpy():
  head, h, y = heads.SoftmaxHead(VOCAB, H), _hidden(0), _targets(1)
  params = _init(head, h)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params["params"])
  ref = _np_log_softmax(np.asarray(h, np.float64) @ p["V"] + p["c"])
  np.testing.assert_allclose(_jit(head)(params, h), ref, **TOL)
  np.testing.assert_allclose(_jit(head, "nll")(params, h, y),
                             -np.take_along_axis(ref, np.asarray(y)[..., None], -1)[..., 0], **TOL)


def test_hierarchical_softmax_is_class_times_word_given_class():
  """log P(w|h) = log P(k(w)|h) + log P(w|k(w),h) in numpy; sums to 1; nll agrees."""
  head, h, y = heads.HierarchicalSoftmaxHead(CLASS_OF, H), _hidden(0), _targets(1)
  params = _init(head, h)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params["params"])
  hn, class_of = np.asarray(h, np.float64), np.asarray(CLASS_OF)
  log_p_class = _np_log_softmax(hn @ p["V_class"] + p["c_class"])  # [3, 4, C]
  o = hn @ p["V"] + p["c"]
  ref = np.zeros(o.shape)
  for w in range(VOCAB):
    same = class_of == class_of[w]
    log_p_word = o[..., w] - np.log(np.exp(o[..., same]).sum(-1))
    ref[..., w] = log_p_class[..., class_of[w]] + log_p_word
  log_probs = _jit(head)(params, h)
  np.testing.assert_allclose(log_probs, ref, **TOL)
  np.testing.assert_allclose(np.exp(np.asarray(log_probs, np.float64)).sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(np.exp(ref[..., class_of == 4]), np.exp(log_p_class[..., 4:5]),
                             **TOL)  # a one-word class: P(w | k) = 1
  np.testing.assert_allclose(_jit(head, "nll")(params, h, y),
                             -np.take_along_axis(ref, np.asarray(y)[..., None], -1)[..., 0], **TOL)


def test_hierarchical_tables_and_empty_class_error():
  head = heads.HierarchicalSoftmaxHead((2, 0, 2, 1, 0), H)
  tables = head.bind(_init(head, _hidden(0))).tables
  np.testing.assert_array_equal(tables["members"], [[1, 4], [3, 0], [0, 2]])
  np.testing.assert_array_equal(tables["real"], [[True, True], [True, False], [True, True]])
  np.testing.assert_array_equal(tables["slot"], [0, 0, 1, 0, 1])
  with pytest.raises(ValueError, match="none empty"):
    heads.HierarchicalSoftmaxHead((0, 2, 2), H).init(jax.random.key(0), _hidden(0))


def test_frequency_classes_bin_equal_unigram_mass():
  """Words by falling count; class k holds the words whose mass starts in [k/C, (k+1)/C)."""
  counts = [5, 50, 10, 20, 5, 10]  # by count: ids 1 (0.5), 3 (0.2), 2, 5 (0.1), 0, 4 (0.05)
  assert heads.frequency_classes(counts, 3) == (2, 0, 2, 1, 2, 2)
  assert heads.frequency_classes(counts, 2) == (1, 0, 1, 1, 1, 1)
  assert heads.frequency_classes([1.0] * 8, 4) == (0, 0, 1, 1, 2, 2, 3, 3)
  assert heads.frequency_classes([100, 1, 1], 4) == (0, 1, 1)  # empty bins dropped


def test_frequency_classes_by_size_cut_equal_runs_of_falling_count():
  counts = [5, 50, 10, 20, 5, 10, 1]  # by count: ids 1, 3, 2, 5, 0, 4, 6
  assert heads.frequency_classes(counts, 3, "size") == (1, 0, 0, 0, 1, 1, 2)  # runs of 3
  assert heads.frequency_classes(counts, 7, "size") == (4, 0, 2, 1, 5, 3, 6)
  zipf = np.random.default_rng(0).zipf(1.3, 2000).astype(float)
  by_size = np.bincount(heads.frequency_classes(zipf, 45, "size"))
  by_mass = np.bincount(heads.frequency_classes(zipf, 45))
  assert by_size.max() == 45 and by_mass.max() > 10 * 45  # mass binning: one huge rare class
  with pytest.raises(ValueError, match="unknown class binning"):
    heads.frequency_classes(counts, 3, "count")


# ---------------------------------------------------------------------------
# Sampled softmax: how the sampled loss estimates the full loss.
# ---------------------------------------------------------------------------


def _sampled_setup(seed=0, n=6):
  head = heads.SampledSoftmaxHead(VOCAB, H)
  h, y = _hidden(seed, (n,)), _targets(seed + 1, (n,))
  params = _init(head, h, seed)
  full = _jit(head, "nll")(params, h, y)
  return head, params, h, y, full


def test_sampled_loss_with_every_class_at_certainty_is_the_full_loss():
  """Candidates = the whole vocabulary, each with expected count 1: log Z_hat = log Z."""
  head, params, h, y, full = _sampled_setup()
  p = params["params"]
  every = jnp.arange(VOCAB)
  loss = jax.jit(heads.sampled_softmax_loss)(h, y, p["V"], p["c"], every, jnp.zeros(VOCAB))
  np.testing.assert_allclose(loss, full, **TOL)


@pytest.mark.parametrize("remove_hits", [True, False])
def test_sampled_partition_estimate_is_unbiased_only_without_accidental_hits(remove_hits):
  """E[exp(loss)] = E[Z_hat] / exp(o_y) = Z / exp(o_y) = exp(full loss), for K = 5 < V = 20.

  Keeping the accidental hits adds sum_j [w_j = y] exp(o_y) / (K Q(y)), whose expectation
  is exp(o_y): then E[exp(loss)] = exp(full loss) + 1.
  """
  head, params, h, y, full = _sampled_setup()
  head = head.clone(num_sampled=5, remove_accidental_hits=remove_hits)
  draws = 20000
  sample = jax.jit(jax.vmap(lambda k: head.apply(params, h, y, k, method=head.loss)))
  ratio = np.exp(np.asarray(sample(jax.random.split(jax.random.key(7), draws)), np.float64))
  mean, stderr = ratio.mean(0), ratio.std(0) / np.sqrt(draws)
  expected = np.exp(np.asarray(full, np.float64)) + (0.0 if remove_hits else 1.0)
  print(f"hits removed {remove_hits}: |mean - expected| / stderr =",
        np.round(np.abs(mean - expected) / stderr, 2))
  assert np.all(np.abs(mean - expected) < 4.5 * stderr), (mean, expected, stderr)


def test_sampled_loss_and_gradient_approach_the_full_ones_as_k_grows():
  """Z_hat -> Z as K grows, so the loss (biased low, by Jensen) and its gradient converge."""
  head, params, h, y, full = _sampled_setup()
  grad_full = jax.jit(jax.grad(lambda p: head.apply(p, h, y, method=head.nll).mean()))(params)
  grad_full = np.concatenate([np.ravel(g) for g in jax.tree.leaves(grad_full)])
  loss_errors, grad_errors = [], []
  for k in (4, 64, 1024):
    head_k = head.clone(num_sampled=k)
    loss_fn = lambda p, key, head_k=head_k: head_k.apply(p, h, y, key, method=head_k.loss).mean()
    losses, grads = jax.jit(jax.vmap(jax.value_and_grad(loss_fn), in_axes=(None, 0)))(
        params, jax.random.split(jax.random.key(k), 400))
    grads = np.concatenate([np.ravel(g.mean(0)) for g in jax.tree.leaves(grads)])
    loss_errors.append(float(losses.mean() - full.mean()))
    grad_errors.append(float(np.linalg.norm(grads - grad_full) / np.linalg.norm(grad_full)))
  print("E[sampled loss] - full loss:", np.round(loss_errors, 4),
        "| relative gradient error:", np.round(grad_errors, 4))
  assert loss_errors[0] < loss_errors[1] < 0 and abs(loss_errors[2]) < 0.01
  assert grad_errors[0] > grad_errors[1] > grad_errors[2] and grad_errors[2] < 0.05


def test_proposals_and_sampler_frequencies():
  """Log-uniform Q(w) = log((w+2)/(w+1)) / log(V+1) sums to 1; draws follow Q; K Q counts."""
  q = np.exp(np.asarray(heads.log_uniform_log_q(VOCAB), np.float64))
  w = np.arange(VOCAB)
  np.testing.assert_allclose(q, np.log((w + 2) / (w + 1)) / np.log(VOCAB + 1), rtol=1e-5)
  np.testing.assert_allclose(q.sum(), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.exp(heads.unigram_log_q([1, 3, 4], power=0.5)),
                             np.sqrt([1, 3, 4]) / np.sqrt([1, 3, 4]).sum(), rtol=1e-5)
  head = heads.SampledSoftmaxHead(VOCAB, H, num_sampled=50000)
  params = _init(head, _hidden(0))
  ids, log_counts = _jit(head, "sample")(params, jax.random.key(0))
  np.testing.assert_allclose(np.exp(log_counts), 50000 * q[np.asarray(ids)], rtol=1e-4)
  freq = np.bincount(np.asarray(ids), minlength=VOCAB) / 50000
  np.testing.assert_allclose(freq, q, atol=4 * np.sqrt(q * (1 - q) / 50000).max())
  unigram = head.clone(proposal="unigram", counts=(1.0,) * (VOCAB - 1) + (3.0,))
  log_q = unigram.apply(params, method=unigram.log_q)
  np.testing.assert_allclose(np.exp(log_q)[-1], 3 / (VOCAB + 2), rtol=1e-5)
  with pytest.raises(ValueError, match="known proposals"):
    head.clone(proposal="unigram").apply(params, method=head.log_q)


# ---------------------------------------------------------------------------
# A tiny GRU language model trained with each head.
# ---------------------------------------------------------------------------


class TinyLM(nn.Module):
  """A trigram neural LM: embeddings of x_{t-1}, x_t -> tanh layer -> head (Bengio et al.)."""

  head: nn.Module
  vocab_size: int

  def setup(self):
    self.embed = nn.Embed(self.vocab_size, 16)
    self.hidden_layer = nn.Dense(32)

  def hidden(self, tokens):
    previous = jnp.pad(tokens[:, :-1], ((0, 0), (1, 0)))
    context = jnp.concatenate([self.embed(previous), self.embed(tokens)], axis=-1)
    return jnp.tanh(self.hidden_layer(context))

  def __call__(self, tokens, targets, key):
    return self.head.loss(self.hidden(tokens), targets, key).mean()

  def nll(self, tokens, targets):
    return self.head.nll(self.hidden(tokens), targets).mean()


@pytest.mark.parametrize("name", ["softmax", "sampled", "hierarchical"])
def test_tiny_lm_overfits_with_each_head(name):
  """8 random sequences over 200 words (distinct contexts), T = 10: exact NLL 5.3 -> < 0.05."""
  vocab, rng = 200, np.random.default_rng(0)
  tokens = rng.integers(0, vocab, (8, 11))
  tokens[:, 0] = np.arange(8)
  head = {"softmax": heads.SoftmaxHead(vocab, 32),
          "sampled": heads.SampledSoftmaxHead(vocab, 32, num_sampled=16),
          "hierarchical": heads.HierarchicalSoftmaxHead(
              heads.frequency_classes(rng.zipf(1.3, vocab).astype(float), 14), 32)}[name]
  model, x, y = TinyLM(head, vocab), tokens[:, :-1], tokens[:, 1:]
  opt = optax.adam(1e-2)

  @jax.jit
  def train(params, keys):  # 150 adam steps in one scan; the sampled head draws per step
    def step(carry, key):
      params, opt_state = carry
      loss, grads = jax.value_and_grad(model.apply)(params, x, y, key)
      updates, opt_state = opt.update(grads, opt_state)
      return (optax.apply_updates(params, updates), opt_state), loss
    return jax.lax.scan(step, (params, opt.init(params)), keys)[0][0]

  nll = jax.jit(lambda p: model.apply(p, x, y, method=model.nll))
  params = jax.jit(model.init)(jax.random.key(0), x, y, jax.random.key(1))
  t0, start = time.time(), float(nll(params))
  end = float(nll(train(params, jax.random.split(jax.random.key(2), 150))))
  print(f"{name}: exact NLL {start:.3f} -> {end:.4f} nats in {time.time() - t0:.1f} s")
  assert end < 0.05


# ---------------------------------------------------------------------------
# jit, vmap over stacked params, bfloat16.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["softmax", "sampled", "hierarchical"])
def test_jit_vmap_over_params_and_bfloat16(name):
  head, h, y, key = _heads()[name], _hidden(0), _targets(1), jax.random.key(3)
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *[_init(head, h, seed) for seed in range(3)])
  run = lambda p, h: (head.apply(p, h), head.apply(p, h, y, key, method=head.loss))
  log_probs, losses = jax.jit(jax.vmap(run, in_axes=(0, None)))(stacked, h)
  member_log_probs, member_loss = _jit(head), _jit(head, "loss")
  for i in range(3):
    member = jax.tree.map(lambda a, i=i: a[i], stacked)
    np.testing.assert_allclose(log_probs[i], member_log_probs(member, h), **TOL)
    np.testing.assert_allclose(losses[i], member_loss(member, h, y, key), **TOL)
  assert np.abs(log_probs[1] - log_probs[0]).max() > 1e-2
  low = head.clone(dtype=jnp.bfloat16)
  low_log_probs, low_loss = _jit(low)(member, h), _jit(low, "loss")(member, h, y, key)
  assert low_log_probs.dtype == jnp.float32  # losses and log-probs are kept in float32
  print(f"{name}: bfloat16 max |diff| log-probs",
        float(jnp.abs(low_log_probs - log_probs[2]).max()))
  np.testing.assert_allclose(low_log_probs, log_probs[2], atol=0.15, rtol=0.05)
  np.testing.assert_allclose(low_loss, losses[2], atol=0.15, rtol=0.05)
