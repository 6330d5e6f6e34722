"""Transformer baseline: attention and positions against numpy, no look-ahead, padding, decode."""

import functools
import time
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqlab.models import transformer as tf

SRC_V, TGT_V, D, HEADS, FF = 11, 13, 16, 4, 32
TOL = {"atol": 2e-5, "rtol": 2e-5}


def _tokens(seed, shape, vocab):
  return jax.random.randint(jax.random.key(seed), shape, 0, vocab)


class Case(NamedTuple):
  model: nn.Module
  apply: Any  # jax.jit(model.apply)
  params: Any  # member 0 of stacked
  stacked: Any  # 3 parameter sets stacked on a leading axis
  args: tuple


def _random_params(model, *args, seed=0):
  """Params with the structure of model.init (traced, not compiled), drawn in numpy.

  Matrices ~ N(0, 1 / fan_in) with fan_in = prod(shape[:-1]), biases ~ N(0, 0.1^2),
  LayerNorm scales ~ 1 + N(0, 0.1^2): cheaper than compiling flax's random initialisers.
  """
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(model.init, jax.random.key(0), *args)

  def draw(path, leaf):
    name, noise = str(getattr(path[-1], "key", "")), rng.normal(size=leaf.shape)
    if leaf.ndim >= 2:
      return jnp.asarray(noise / np.sqrt(np.prod(leaf.shape[:-1])), jnp.float32)
    return jnp.asarray((name == "scale") + 0.1 * noise, jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def _case(model, *args):
  members = [_random_params(model, *args, seed=seed) for seed in range(3)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *members)
  return Case(model, jax.jit(model.apply), members[0], stacked, args)


@pytest.fixture(scope="module")
def seq2seq():
  """One layer each side; source lengths 6, 3, 4 (padded to 6), targets of length 5."""
  return _case(tf.Transformer(SRC_V, TGT_V, D, HEADS, 1, FF), _tokens(0, (3, 6), SRC_V),
               _tokens(1, (3, 5), TGT_V), jnp.array([6, 3, 4]))


@pytest.fixture(scope="module")
def lm():
  """Two layers: look-ahead and the decode cache are checked through a stack."""
  return _case(tf.TransformerLM(TGT_V, D, HEADS, 2, FF), _tokens(3, (3, 7), TGT_V))


@pytest.fixture(scope="module")
def classifier():
  return _case(tf.TransformerClassifier(SRC_V, 3, D, HEADS, 1, FF), _tokens(0, (3, 6), SRC_V),
               jnp.array([6, 3, 4]))


def _np_softmax(s):
  e = np.exp(s - s.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------------------
# The equations: attention and positional encodings against numpy.
# ---------------------------------------------------------------------------


def test_attention_equals_numpy_softmax_qk_over_sqrt_d_times_v():
  rng = np.random.default_rng(0)
  q, k = rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(2, 3, 7, 4))
  v = rng.normal(size=(2, 3, 7, 6))
  mask = rng.random((2, 1, 5, 7)) < 0.6
  mask[..., 0] = True  # every query keeps at least one key
  out, weights = tf.dot_product_attention(*(jnp.asarray(a, jnp.float32) for a in (q, k, v)), mask)
  scores = np.where(mask, q @ np.swapaxes(k, -1, -2) / np.sqrt(4), -np.inf)
  np.testing.assert_allclose(weights, _np_softmax(scores), **TOL)
  np.testing.assert_allclose(out, _np_softmax(scores) @ v, **TOL)
  np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, atol=1e-6)
  assert np.all(np.asarray(weights)[np.broadcast_to(~mask, weights.shape)] == 0.0)
  out, weights = tf.dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v))
  np.testing.assert_allclose(out, _np_softmax(q @ np.swapaxes(k, -1, -2) / 2.0) @ v, **TOL)


@pytest.mark.parametrize("d", [10, 7])
def test_sinusoidal_table_equals_closed_form(d):
  T = 64
  ref = np.zeros((T, d))
  for pos in range(T):
    for j in range(d):
      angle = pos / 10000.0 ** ((j - j % 2) / d)  # columns 2i and 2i+1 share 2i
      ref[pos, j] = np.sin(angle) if j % 2 == 0 else np.cos(angle)
  np.testing.assert_allclose(tf.sinusoidal_positions(jnp.arange(T), d), ref, atol=2e-5)


def test_masks():
  np.testing.assert_array_equal(tf.causal_mask(3)[0, 0], np.tril(np.ones((3, 3), bool)))
  np.testing.assert_array_equal(tf.padding_mask(jnp.array([2, 0]), 3)[:, 0, 0],
                                [[True, True, False], [False, False, False]])


# ---------------------------------------------------------------------------
# Masks at work: no look-ahead, padded keys ignored, padded batch == each alone.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("t", [1, 3, 4])
def test_causal_decoder_does_not_look_ahead(seq2seq, lm, t):
  """Changing tokens at positions >= t leaves outputs < t unchanged (and changes output t)."""
  src, tgt, lengths = seq2seq.args
  changed = tgt.at[:, t:].set((tgt[:, t:] + 1) % TGT_V)
  a, b = seq2seq.apply(seq2seq.params, src, tgt, lengths), seq2seq.apply(seq2seq.params, src,
                                                                         changed, lengths)
  np.testing.assert_allclose(a[:, :t], b[:, :t], **TOL)
  assert np.abs(a[:, t] - b[:, t]).max(-1).min() > 1e-3  # every row sees its own token t
  (tokens,) = lm.args
  changed = tokens.at[:, t:].set((tokens[:, t:] + 1) % TGT_V)
  a, b = lm.apply(lm.params, tokens), lm.apply(lm.params, changed)
  np.testing.assert_allclose(a[:, :t], b[:, :t], **TOL)
  assert np.abs(a[:, t] - b[:, t]).max(-1).min() > 1e-3


def test_padded_keys_get_zero_weight_and_causal_weights_are_lower_triangular(seq2seq):
  src, tgt, lengths = seq2seq.args
  apply = jax.jit(functools.partial(seq2seq.model.apply, mutable="intermediates"))
  _, state = apply(seq2seq.params, src, tgt, lengths)
  flat = jax.tree_util.tree_flatten_with_path(state["intermediates"])[0]
  weights = {"/".join(str(getattr(k, "key", k)) for k in path[:-1]): w for path, w in flat}
  key_is_pad = np.arange(src.shape[1])[None, :] >= np.asarray(lengths)[:, None]  # [B, S]
  assert len(weights) == 3  # encoder self, decoder self, decoder cross
  for name, w in weights.items():
    w = np.asarray(w)  # [B, heads, Tq, Tk]
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    if "encoder" in name or "cross" in name:
      assert np.all(w.transpose(0, 3, 1, 2)[key_is_pad] == 0.0), name
      assert np.all(w.transpose(0, 3, 1, 2)[~key_is_pad] > 0.0), name
    else:  # decoder self-attention: nothing above the diagonal
      future = ~np.tril(np.ones(w.shape[-2:], bool))
      assert np.all(w[..., future] == 0.0) and np.all(w[..., ~future] > 0.0), name


def test_padded_batch_equals_each_sequence_alone(seq2seq, classifier):
  """Source padding (with garbage in it) and target padding change no real output."""
  src, tgt, lengths = seq2seq.args
  tgt_lengths = [5, 2, 4]
  garbage = src.at[1, 3:].set(7).at[2, 4:].set(2)
  logits = seq2seq.apply(seq2seq.params, garbage, tgt, lengths)
  pooled = classifier.apply(classifier.params, garbage, lengths)
  for b in (1, 2):  # row 0 is unpadded
    alone_src, alone_tgt = src[b:b + 1, :lengths[b]], tgt[b:b + 1, :tgt_lengths[b]]
    np.testing.assert_allclose(logits[b, :tgt_lengths[b]],
                               seq2seq.apply(seq2seq.params, alone_src, alone_tgt)[0], **TOL)
    np.testing.assert_allclose(pooled[b], classifier.apply(classifier.params, alone_src)[0],
                               **TOL)


# ---------------------------------------------------------------------------
# Incremental decoding under jit equals the teacher-forced forward pass.
# ---------------------------------------------------------------------------


def _scan_steps(model, params, carry, tokens):
  """Feed tokens [B, T] one step at a time through model.step inside lax.scan."""
  def body(carry, token):
    return model.apply(params, carry, token, method=model.step)
  _, logits = jax.lax.scan(body, carry, tokens.T)
  return jnp.swapaxes(logits, 0, 1)


def test_incremental_decode_equals_full_forward(seq2seq, lm):
  model = seq2seq.model
  src, tgt, lengths = seq2seq.args

  @jax.jit
  def stepped(params):
    carry = model.apply(params, src, lengths, 8, method=model.start)  # cache longer than T
    return _scan_steps(model, params, carry, tgt)

  np.testing.assert_allclose(stepped(seq2seq.params), seq2seq.apply(seq2seq.params, *seq2seq.args),
                             **TOL)
  (tokens,) = lm.args
  carry = lm.model.apply(lm.params, tokens.shape[0], tokens.shape[1], method=lm.model.start)
  stepped = jax.jit(lambda p, c: _scan_steps(lm.model, p, c, tokens))
  np.testing.assert_allclose(stepped(lm.params, carry), lm.apply(lm.params, tokens), **TOL)


# ---------------------------------------------------------------------------
# Overfitting a tiny batch of each task.
# ---------------------------------------------------------------------------


def _fit(model, params, inputs, targets, steps, lr=3e-3):
  """Adam on mean cross-entropy with a jitted train step; returns the loss per step."""
  opt = optax.adam(lr)

  def loss_fn(params):
    logits = model.apply(params, *inputs)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()

  @jax.jit
  def train_step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state, losses = opt.init(params), []
  for _ in range(steps):
    params, opt_state, loss = train_step(params, opt_state)
    losses.append(float(loss))
  return losses


def test_overfits_reversal_seq2seq():
  """y = reverse(x) over 9 symbols, T = 6, 16 pairs, 150 steps: cross-entropy 3.0 -> < 0.05."""
  rng = np.random.default_rng(0)
  src = rng.integers(2, SRC_V, (16, 6))  # 0 = pad, 1 = BOS
  tgt = src[:, ::-1]
  tgt_in = np.concatenate([np.ones((16, 1), int), tgt[:, :-1]], axis=1)
  model = tf.Transformer(SRC_V, d_model=32, num_heads=4, num_layers=1, d_ff=64)
  t0 = time.time()
  losses = _fit(model, _random_params(model, src, tgt_in), (src, tgt_in), tgt, 150)
  print(f"reversal: {losses[0]:.3f} -> {losses[-1]:.4f} in {time.time() - t0:.1f} s")
  assert losses[-1] < 0.05


def test_overfits_character_lm():
  """Next character of 4 strings of 23 characters, 150 steps: 3.7 nats -> < 0.05."""
  text = ["hello world, hello jax!", "the quick brown fox ju.", "sequence models learn!!",
          "attention is all we use"]
  chars = sorted(set("".join(text)))
  ids = np.array([[chars.index(c) for c in line] for line in text])
  model = tf.TransformerLM(len(chars), d_model=32, num_heads=4, num_layers=1, d_ff=64)
  t0 = time.time()
  losses = _fit(model, _random_params(model, ids[:, :-1]), (ids[:, :-1],), ids[:, 1:], 150)
  print(f"char LM: {losses[0]:.3f} -> {losses[-1]:.4f} in {time.time() - t0:.1f} s")
  assert losses[-1] < 0.05


def test_overfits_classification_with_padding():
  """Many-to-one: 12 random padded sequences, random labels of 3 classes: -> < 0.05 nats."""
  rng = np.random.default_rng(1)
  tokens, lengths = rng.integers(0, SRC_V, (12, 8)), rng.integers(3, 9, 12)
  labels = rng.integers(0, 3, 12)
  model = tf.TransformerClassifier(SRC_V, 3, d_model=32, num_heads=4, num_layers=1, d_ff=64)
  losses = _fit(model, _random_params(model, tokens, lengths), (tokens, lengths), labels,
                150)
  print(f"classifier: {losses[0]:.3f} -> {losses[-1]:.4f}")
  assert losses[-1] < 0.05


# ---------------------------------------------------------------------------
# jit, vmap over stacked params, bfloat16.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["seq2seq", "lm", "classifier"])
def test_jit_vmap_over_params_and_bfloat16(name, request):
  case = request.getfixturevalue(name)
  in_axes = (0,) + (None,) * len(case.args)
  keys = jax.random.split(jax.random.key(0), 3)  # vmap(init) traces (compiling it costs ~5 s)
  traced = jax.eval_shape(jax.vmap(case.model.init, in_axes=in_axes), keys, *case.args)
  assert jax.tree.map(lambda a: a.shape, traced) == jax.tree.map(jnp.shape, case.stacked)
  out = jax.jit(jax.vmap(case.model.apply, in_axes=in_axes))(case.stacked, *case.args)
  for i in range(3):
    member = jax.tree.map(lambda a, i=i: a[i], case.stacked)
    np.testing.assert_allclose(out[i], case.apply(member, *case.args), **TOL)
  assert np.abs(out[1] - out[0]).max() > 1e-2  # the members differ
  low = jax.jit(case.model.clone(dtype=jnp.bfloat16).apply)(case.params, *case.args)
  assert low.dtype == jnp.bfloat16
  scale = float(jnp.abs(out[0]).max())
  print(f"{name}: bfloat16 max |diff| {float(jnp.abs(low - out[0]).max()):.3f}, scale {scale:.2f}")
  np.testing.assert_allclose(low.astype(jnp.float32), out[0], atol=0.05 * scale, rtol=0.05)


def test_dropout_is_active_only_when_not_deterministic(lm):
  model = lm.model.clone(dropout_rate=0.5)
  apply = jax.jit(functools.partial(model.apply, lm.params, *lm.args),
                  static_argnames="deterministic")
  np.testing.assert_allclose(apply(), lm.apply(lm.params, *lm.args), **TOL)
  a = apply(deterministic=False, rngs={"dropout": jax.random.key(1)})
  b = apply(deterministic=False, rngs={"dropout": jax.random.key(2)})
  assert np.abs(a - b).max() > 1e-3 and np.abs(a - apply()).max() > 1e-3
