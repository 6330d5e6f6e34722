"""The one autoregressive interface: every decoder exposes `start(...) -> carry` and
`step(carry, token) -> (carry, logits)`, and decoding it through seqlab.decode with `step`
equals its teacher-forced forward pass on the decoded tokens."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import decode, models, unroll
from seqlab.models.jordan import JordanRNN

B, L, V, BOS = 3, 6, 7, 1
TOL = {"atol": 2e-5, "rtol": 2e-5}
SRC = jax.random.randint(jax.random.key(10), (B, 5), 3, V)
SRC_LENGTHS = jnp.array([5, 2, 4])
CONTEXT = jax.random.normal(jax.random.key(11), (B, 4))


def _rnn_lm():
  model = models.get_model("rnn", cell="lstm", hidden_size=8, vocab_size=V, output_size=V,
                           embed_size=4)
  return model, (jnp.zeros((B, L), jnp.int32),), (B,), lambda m, prev: m(prev)


def _rnn_one_to_many():
  model = models.get_model("rnn", cell="gru", hidden_size=8, vocab_size=V, output_size=V,
                           embed_size=4, pattern="one_to_many")
  init = (CONTEXT, None, jnp.zeros((B, L), jnp.int32))
  return model, init, {"context": CONTEXT}, lambda m, prev: m(CONTEXT, prev_tokens=prev)


def _seq2seq(attention):
  def build():
    model = models.get_model("seq2seq", vocab_size=V, cell="gru", hidden_size=8, embed_size=4,
                             attention=attention, bos_id=BOS)
    forced = lambda m, prev: m(SRC, SRC_LENGTHS, jnp.concatenate(  # it shifts right itself
        [prev[:, 1:], jnp.zeros((B, 1), prev.dtype)], axis=1)).logits
    return model, (SRC, SRC_LENGTHS, jnp.zeros((B, L), jnp.int32)), (SRC, SRC_LENGTHS), forced
  return build


def _transformer():
  model = models.get_model("transformer", vocab_size=V, d_model=16, num_heads=2,
                           num_layers=2, d_ff=32)
  init = (SRC, jnp.zeros((B, L), jnp.int32), SRC_LENGTHS)
  return model, init, (SRC, SRC_LENGTHS, L), lambda m, prev: m(SRC, prev, SRC_LENGTHS)


def _transformer_lm():
  model = models.get_model("transformer_lm", vocab_size=V, d_model=16, num_heads=2,
                           num_layers=1, d_ff=32)
  return model, (jnp.zeros((B, L), jnp.int32),), (B, L), lambda m, prev: m(prev)


DECODERS = {"rnn_lm": _rnn_lm, "rnn_one_to_many": _rnn_one_to_many,
            "seq2seq_additive": _seq2seq("additive"), "seq2seq_plain": _seq2seq(None),
            "transformer": _transformer, "transformer_lm": _transformer_lm}


def _forced_log_probs(forced, bound, tokens):
  """log p(tokens) of the teacher-forced pass on the decoded tokens (inputs <bos>, y_1..)."""
  logits = forced(bound, unroll.shift_right(tokens, BOS))
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32))
  return logits, jnp.take_along_axis(log_p, tokens[..., None], -1)[..., 0].sum(-1)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_decoding_with_step_equals_the_teacher_forced_pass(name):
  model, init_args, start, forced = DECODERS[name]()
  params = model.init(jax.random.key(0), *init_args)

  @jax.jit
  def run(params, rng):
    bound = model.bind(params)
    carry = bound.start(**start) if isinstance(start, dict) else bound.start(*start)
    greedy = decode.greedy(bound.step, carry, BOS, L)
    sampled = decode.sample(bound.step, carry, BOS, L, rng)
    beams = decode.beam_search(bound.step, carry, BOS, L, beam_width=3)
    return (greedy, sampled, beams, *_forced_log_probs(forced, bound, greedy.tokens),
            _forced_log_probs(forced, bound, sampled.tokens)[1],
            _forced_log_probs(forced, bound, beams.tokens[:, 0])[1])

  greedy, sampled, beams, logits, greedy_lp, sampled_lp, beam_lp = run(params, jax.random.key(1))
  np.testing.assert_array_equal(jnp.argmax(logits, -1), greedy.tokens)
  np.testing.assert_allclose(greedy.log_probs, greedy_lp, **TOL)
  np.testing.assert_allclose(sampled.log_probs, sampled_lp, **TOL)
  np.testing.assert_allclose(beams.log_probs[:, 0], beam_lp, **TOL)


def test_jordan_steps_equal_its_free_running_pass():
  """The Jordan net's step feeds back its own output y_{t-1}: stepping equals __call__(xs)."""
  model = JordanRNN(hidden_size=5, output_size=3)
  xs = jax.random.normal(jax.random.key(0), (B, L, 2))
  params = model.init(jax.random.key(1), xs)
  bound = model.bind(params)
  _, ys = jax.lax.scan(bound.step, bound.start(B), unroll.time_major(xs))
  np.testing.assert_allclose(unroll.batch_major(ys), model.apply(params, xs), **TOL)
