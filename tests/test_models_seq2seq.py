"""Seq2Seq (attention itself: test_models_attention.py): teacher forcing == step by step,
padding exactness, the three end rules (set by hand and after overfitting a reversal task),
jit, vmap over stacked params, bfloat16.

Every model test uses one task and three configurations, so that each compiled function
(init, apply, step-by-step, greedy, train step) is built once: XLA compile time is most
of this file's run time. Keys use the "rbg" PRNG, which compiles ~2x faster than threefry.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqlab import unroll
from seqlab.models import seq2seq
from seqlab.models.recurrent import Recurrent
from seqlab.models.seq2seq import Seq2Seq

PAD, BOS, EOS, V = 0, 1, 2, 9  # the symbols are 3..8: six of them
L = 5  # max_length: the decoding length and the largest predicted length


def _key(seed):
  return jax.random.key(seed, impl="rbg")


def _close(a, b, atol=1e-5):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=atol, rtol=1e-5), a, b)


# ---- the model: reverse 8 sequences of length 1..4 over 6 symbols ----

CONFIGS = {
    # The encoder's final carry is the decoder's initial state; <eos> ends the output.
    "context": dict(attention=None, cell="lstm"),
    # Additive attention, a decoder of another size started by tanh(C W_s + b_s), C also
    # fed at every step; a Bernoulli stop output. (Elman cells: the cheapest to compile.)
    "additive": dict(attention="additive", cell="elman", decoder_hidden_size=24,
                     init_decoder="dense", condition=True, length_strategy="stop"),
    # The notes' dot score e_tj = s_{t-1} . a_j, Elman cells, a zero initial decoder state
    # (all it knows comes through attention); a predicted length; its own output vocabulary.
    "dot": dict(attention="dot", cell="elman", init_decoder="zeros", length_strategy="length",
                output_size=V + 1),
    # Bahdanau et al.'s encoder: forward and backward GRUs, a_j = [h->_j; h<-_j], the
    # decoder started from the backward carry, general attention over 2H annotations.
    "bidirectional": dict(attention="general", cell="gru", bidirectional=True),
}


def _model(**kw):
  return Seq2Seq(**(dict(vocab_size=V, hidden_size=32, embed_size=16, max_length=L) | kw))


@functools.cache
def _task(strategy):
  """Sources (junk after each length: masking must hide it), targets = reversed sources."""
  rng = np.random.default_rng(0)
  src_lengths = np.array([4, 4, 3, 2, 4, 3, 1, 4])
  src = rng.integers(3, 9, (8, 4)).astype(np.int32)
  tgt = np.zeros((8, 4), np.int32)
  for b, n in enumerate(src_lengths):
    tgt[b, :n] = src[b, :n][::-1]
  tgt, tgt_lengths = jnp.asarray(tgt), jnp.asarray(src_lengths)
  if strategy == "eos":
    tgt, tgt_lengths = seq2seq.with_eos(tgt, tgt_lengths, EOS, PAD)
  return jnp.asarray(src), jnp.asarray(src_lengths), tgt, tgt_lengths


@functools.cache
def _setup(name):
  """The model CONFIGS[name], its task and its initial params (built once per session)."""
  model = _model(**CONFIGS[name])
  src, src_lengths, tgt, tgt_lengths = _task(model.length_strategy)
  variables = _jit_init(model)(_key(0), src, src_lengths, tgt)
  return model, variables, (src, src_lengths, tgt, tgt_lengths)


@functools.cache
def _jit_init(model):
  return jax.jit(model.init)


@functools.cache
def _jit_apply(model, method="__call__"):
  """model.apply(..., method=method), jitted once per (model, method)."""
  return jax.jit(functools.partial(model.apply, method=method))


def _decoder_step(model, state, y_prev):
  """The decoder's full step output (logits, stop logit, alpha); `Seq2Seq.step` returns
  the logits of the same call."""
  return model.decoder(state, y_prev)


def _step_by_step(model, variables, src, src_lengths, inputs):
  """start, then the single-step decoder called once per target position."""
  state, outs = _jit_apply(model, "start")(variables, src, src_lengths), []
  for t in range(inputs.shape[1]):
    state, out = _jit_apply(model, _decoder_step)(variables, state, inputs[:, t])
    outs.append(out)
  return jax.tree.map(lambda *x: jnp.stack(x, axis=1), *outs)


@pytest.mark.parametrize("name", CONFIGS)
def test_teacher_forced_sequence_equals_single_steps(name):
  model, variables, (src, src_lengths, tgt, _) = _setup(name)
  out = _jit_apply(model)(variables, src, src_lengths, tgt)
  inputs = unroll.shift_right(tgt, BOS)
  np.testing.assert_array_equal(inputs[:, 0], BOS)
  np.testing.assert_array_equal(inputs[:, 1:], tgt[:, :-1])
  steps = _step_by_step(model, variables, src, src_lengths, inputs)
  _close(steps.logits, out.logits)
  _close(steps.stop_logit, out.stop_logits)
  _close(steps.alpha, out.alpha)


@pytest.mark.parametrize("name", ["additive", "bidirectional"])
def test_padded_batch_equals_each_sequence_alone(name):
  model, variables, (src, src_lengths, tgt, _) = _setup(name)
  apply, greedy = _jit_apply(model), _jit_apply(model, "greedy")
  out, dec = apply(variables, src, src_lengths, tgt), greedy(variables, src, src_lengths)
  alpha = np.asarray(out.alpha)
  b, n = 3, 2  # a source of length 2 padded to 4 (one more shape: one more compile)
  alone = apply(variables, src[b:b + 1, :n], None, tgt[b:b + 1])
  _close(out.logits[b], alone.logits[0])
  if out.stop_logits is not None:
    _close(out.stop_logits[b], alone.stop_logits[0])
  _close(alpha[b, :, :n], alone.alpha[0])
  one = greedy(variables, src[b:b + 1, :n], None)
  np.testing.assert_array_equal(dec.tokens[b], one.tokens[0])
  np.testing.assert_array_equal(dec.lengths[b], one.lengths[0])
  real = np.arange(4)[None, None, :] < np.asarray(src_lengths)[:, None, None]
  assert np.all(alpha[np.broadcast_to(~real, alpha.shape)] == 0.0)
  np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-6)


def test_bidirectional_encoder_halves_equal_separate_runs():
  """a_j = [h->_j; h<-_j]: the forward half is a forward run, the backward half a forward
  run over each source reversed within its own length; C = [h->_T; h<-_1]; s_0 = h<-_1."""
  model, variables, (src, src_lengths, _, _) = _setup("bidirectional")
  p = variables["params"]
  state = _jit_apply(model, "start")(variables, src, src_lengths)
  a, C = np.asarray(state.memory.annotations), np.asarray(state.memory.context)
  H = model.hidden_size
  assert a.shape == (*src.shape, 2 * H) and C.shape == (src.shape[0], 2 * H)
  embedded = p["src_embed"]["embedding"][src]
  gru = Recurrent("gru", H)
  for b in (0, 3, 6):  # sources of length 4 (no padding), 2 and 1
    n = int(src_lengths[b])
    x = embedded[b:b + 1, :n]
    h_fwd, fwd = gru.apply({"params": p["encoder"]}, x)
    h_bwd, bwd = gru.apply({"params": p["backward_encoder"]}, x[:, ::-1])
    _close(a[b, :n, :H], fwd[0])
    _close(a[b, :n, H:], bwd[0, ::-1])
    np.testing.assert_array_equal(a[b, n:], 0.0)  # padded positions: zero annotations
    _close(C[b], np.concatenate([h_fwd[0], h_bwd[0]]))
    _close(state.carry[b], h_bwd[0])


def _set(variables, path, value):
  """A copy of `variables` with the leaf at `path` (a tuple of keys) replaced."""
  params = jax.tree.map(lambda x: x, variables["params"])
  node = params
  for key in path[:-1]:
    node = node[key]
  node[path[-1]] = jnp.broadcast_to(jnp.asarray(value, jnp.float32), node[path[-1]].shape)
  return {"params": params}


def test_end_rules_with_hand_set_params():
  # eos: the output layer says "always symbol 5" (never ends) or "always <eos>".
  model, variables, (src, src_lengths, _, _) = _setup("context")
  greedy = _jit_apply(model, "greedy")
  variables = _set(variables, ("decoder", "out", "kernel"), 0.0)
  for token, tokens, length in [(5, [5] * L, L), (EOS, [EOS] + [PAD] * (L - 1), 1)]:
    v = _set(variables, ("decoder", "out", "bias"), 10.0 * jax.nn.one_hot(token, V))
    dec = greedy(v, src, src_lengths)
    np.testing.assert_array_equal(dec.tokens, [tokens] * 8)
    np.testing.assert_array_equal(dec.lengths, [length] * 8)
  # stop: p_t = sigmoid(0 . s_t + b) > 0.5 iff b > 0: stop after one token, or never.
  model, variables, (src, src_lengths, _, _) = _setup("additive")
  greedy = _jit_apply(model, "greedy")
  variables = _set(variables, ("decoder", "stop", "kernel"), 0.0)
  for bias, length in [(3.0, 1), (-3.0, L)]:
    dec = greedy(_set(variables, ("decoder", "stop", "bias"), bias), src, src_lengths)
    np.testing.assert_array_equal(dec.lengths, [length] * 8)
    assert np.all(np.asarray(dec.tokens)[:, length:] == PAD)
    assert np.all(np.asarray(dec.alpha)[:, length:] == 0.0)
  # length: P(T_y = k) peaked on k -> exactly k tokens, the first k of the free run.
  model, variables, (src, src_lengths, _, _) = _setup("dot")
  greedy = _jit_apply(model, "greedy")
  variables = _set(variables, ("length_head", "kernel"), 0.0)
  free_running = None
  for k in (L, 1, 3):
    v = _set(variables, ("length_head", "bias"), 5.0 * jax.nn.one_hot(k - 1, L))
    dec = greedy(v, src, src_lengths)
    tokens, alpha = np.asarray(dec.tokens), np.asarray(dec.alpha)
    free_running = tokens if free_running is None else free_running
    np.testing.assert_array_equal(dec.lengths, [k] * 8)
    np.testing.assert_array_equal(tokens[:, :k], free_running[:, :k])
    assert np.all(tokens[:, k:] == PAD)
    assert np.all(alpha[:, k:] == 0.0)
    np.testing.assert_allclose(alpha[:, :k].sum(-1), 1.0, atol=1e-6)


def test_losses_equal_their_definitions():
  rng = np.random.default_rng(3)
  logits, stop, length_logits = (rng.normal(size=shape).astype(np.float32)
                                 for shape in [(2, 3, 4), (2, 3), (2, 3)])
  targets, lengths = np.array([[1, 2, 3], [0, 1, 0]]), np.array([3, 2])
  out = seq2seq.Outputs(logits, stop, length_logits, None)
  total, terms = jax.jit(seq2seq.loss)(out, targets, lengths)
  log_softmax = lambda z: z - np.log(np.exp(z).sum(-1, keepdims=True))
  sigmoid = lambda z: 1 / (1 + np.exp(-z))
  real = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]  # (b, t) with t < lengths[b]
  last = [(0, 2), (1, 1)]  # t = lengths[b] - 1
  token = -np.mean([log_softmax(logits[b, t])[targets[b, t]] for b, t in real])
  bce = -np.mean([np.log(sigmoid(stop[b, t]) if (b, t) in last else 1 - sigmoid(stop[b, t]))
                  for b, t in real])
  length = -(log_softmax(length_logits[0])[2] + log_softmax(length_logits[1])[1]) / 2
  np.testing.assert_allclose([terms["token"], terms["stop"], terms["length"], total],
                             [token, bce, length, token + bce + length], rtol=1e-5)
  padded, n = seq2seq.with_eos(jnp.asarray(targets), jnp.asarray(lengths), EOS, PAD)
  np.testing.assert_array_equal(padded, [[1, 2, 3, EOS], [0, 1, EOS, PAD]])
  np.testing.assert_array_equal(n, [4, 3])


def test_bad_configurations_raise():
  src, src_lengths, tgt, _ = _task("stop")
  init = lambda m: jax.eval_shape(m.init, _key(0), src, src_lengths, tgt)
  for kw, message in [
      (dict(attention="cosine"), "unknown attention"),
      (dict(length_strategy="never"), "unknown length_strategy"),
      (dict(init_decoder="mean"), "unknown init_decoder"),
      (dict(decoder_hidden_size=7), "init_decoder='copy' needs"),
      (dict(attention="dot", decoder_hidden_size=7, init_decoder="zeros"), "dot attention"),
  ]:
    with pytest.raises(ValueError, match=message):
      init(_model(**kw))


# ---- overfitting, then free-running decoding ----


@functools.cache
def _fit(name, steps=150):
  """Adam on the teacher-forced loss from `_setup(name)`: the params and every step's loss."""
  model, variables, (src, src_lengths, tgt, tgt_lengths) = _setup(name)
  opt = optax.adam(0.03)

  @jax.jit
  def train_step(variables, opt_state):
    loss_fn = lambda v: seq2seq.loss(model.apply(v, src, src_lengths, tgt), tgt, tgt_lengths)[0]
    value, grads = jax.value_and_grad(loss_fn)(variables)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(variables, updates), opt_state, value

  opt_state, losses = opt.init(variables), []
  for _ in range(steps):
    variables, opt_state, value = train_step(variables, opt_state)
    losses.append(value)
  return variables, np.asarray(losses)


@pytest.mark.parametrize("name", CONFIGS)
def test_overfits_reversal_and_greedy_decoding_stops_where_the_target_ends(name):
  model, _, (src, src_lengths, tgt, tgt_lengths) = _setup(name)
  variables, losses = _fit(name)
  print(f"{name} ({model.length_strategy}): loss {losses[0]:.3f} -> {losses[-1]:.5f}")
  assert losses[-1] < 0.01 < 1.0 < losses[0]
  dec = _jit_apply(model, "greedy")(variables, src, src_lengths)
  np.testing.assert_array_equal(dec.lengths, tgt_lengths)
  np.testing.assert_array_equal(dec.tokens[:, :tgt.shape[1]], tgt)
  assert np.all(np.asarray(dec.tokens)[:, tgt.shape[1]:] == PAD)


# ---- jit, vmap over stacked params, bfloat16 ----


def test_jit_matches_eager():
  model, variables, (src, src_lengths, tgt, _) = _setup("context")
  state = _jit_apply(model, "start")(variables, src, src_lengths)
  y = tgt[:, 0]
  _close(model.apply(variables, state, y, method="step"),
         _jit_apply(model, "step")(variables, state, y))


def test_vmap_over_stacked_params_equals_each_member():
  model, _, (src, src_lengths, tgt, _) = _setup("dot")
  members = [_jit_init(model)(_key(seed), src, src_lengths, tgt) for seed in (7, 8, 9)]
  stacked = jax.tree.map(lambda *x: jnp.stack(x), *members)
  apply = _jit_apply(model)
  out = jax.jit(jax.vmap(apply, in_axes=(0, None, None, None)))(stacked, src, src_lengths, tgt)
  for m, member in enumerate(members):
    _close(jax.tree.map(lambda x, m=m: x[m], out), apply(member, src, src_lengths, tgt))
  assert not np.allclose(out.logits[0], out.logits[1])


def test_bfloat16_agrees_loosely_with_float32():
  model, _, (src, src_lengths, tgt, _) = _setup("dot")
  variables, _ = _fit("dot")  # trained: confident outputs, a fair test of precision
  out32 = _jit_apply(model)(variables, src, src_lengths, tgt)
  out16 = _jit_apply(model.clone(dtype=jnp.bfloat16))(variables, src, src_lengths, tgt)
  assert out16.logits.dtype == jnp.bfloat16 and out16.alpha.dtype == jnp.bfloat16
  for name in ("logits", "length_logits", "alpha"):
    a, b = np.asarray(getattr(out16, name), np.float32), np.asarray(getattr(out32, name))
    np.testing.assert_allclose(a, b, atol=0.05 * np.abs(b).max() + 0.02)
  np.testing.assert_array_equal(out16.logits.argmax(-1), out32.logits.argmax(-1))
  np.testing.assert_allclose(np.asarray(out16.alpha, np.float32).sum(-1), 1.0, atol=2e-2)
