"""RNN (three design patterns) and JordanRNN: by value against stepping the cells."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from model_testing import assert_bfloat16_close, assert_vmap_over_params, overfit

from seqlab import cells, decode
from seqlab.models.jordan import JordanRNN
from seqlab.models.rnn import RNN

B, T, F, H, O = 3, 6, 4, 8, 5


def _xs(seed=0, shape=(B, T, F)):
  return jax.random.normal(jax.random.key(seed), shape)


def _step_by_step(cell_name, params, xs, options=None):
  """h_t = cell.step(h_{t-1}, x_t); o_t = c + V h_t, one step at a time in Python."""
  cell = cells.make(cell_name, **(options or {}))
  h = cell.initial_carry(params["recurrent"]["cell"], (xs.shape[0],))
  outs = []
  for t in range(xs.shape[1]):
    h, y = cell.step(params["recurrent"]["cell"], h, xs[:, t])
    outs.append(y @ params["V"]["kernel"] + params["V"]["bias"])
  return jnp.stack(outs, axis=1)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_many_to_many_equals_stepping_one_step_at_a_time(cell):
  model = RNN(cell, H, O)
  xs = _xs()
  variables = model.init(jax.random.key(1), xs)
  np.testing.assert_allclose(
      model.apply(variables, xs), _step_by_step(cell, variables["params"], xs), atol=1e-5
  )


def test_many_to_one_reads_the_last_real_step():
  model = RNN("gru", H, O, pattern="many_to_one")
  xs = _xs()
  variables = model.init(jax.random.key(1), xs)
  lengths = jnp.array([6, 2, 4])
  out = model.apply(variables, xs, lengths)
  for b, length in enumerate(lengths):
    alone = model.apply(variables, xs[b : b + 1, :length])
    np.testing.assert_allclose(out[b : b + 1], alone, atol=1e-5)
  full = _step_by_step("gru", variables["params"], xs)
  np.testing.assert_allclose(out[0], full[0, -1], atol=1e-5)


def test_one_to_many_teacher_forcing_and_greedy_generation_agree():
  """Feeding the greedy decoding's own tokens back as teacher-forced inputs reproduces its
  argmaxes (decode.greedy over the model's start(context=...) and step)."""
  model = RNN("lstm", H, O, pattern="one_to_many", vocab_size=O, embed_size=3)
  context = _xs(shape=(B, F))
  variables = model.init(jax.random.key(2), context, prev_tokens=jnp.zeros((B, T), jnp.int32))
  bound = model.bind(variables)
  tokens = decode.greedy(bound.step, bound.start(context=context), 0, T).tokens
  prev = jnp.concatenate([jnp.zeros((B, 1), jnp.int32), tokens[:, :-1]], axis=1)
  logits = model.apply(variables, context, prev_tokens=prev)
  np.testing.assert_array_equal(jnp.argmax(logits, -1), tokens)
  # The step input is [context; embed(y_{t-1})], stepped by hand:
  p = variables["params"]
  xs = jnp.concatenate(
      [jnp.repeat(context[:, None], T, 1), p["embed"]["embedding"][prev]], axis=-1
  )
  np.testing.assert_allclose(logits, _step_by_step("lstm", p, xs), atol=1e-5)


def test_one_to_many_needs_tokens_or_a_length():
  model = RNN("gru", H, O, pattern="one_to_many")
  with pytest.raises(ValueError, match="prev_tokens .* or num_steps"):
    model.init(jax.random.key(0), _xs(shape=(B, F)))


def test_unknown_pattern_is_named():
  with pytest.raises(ValueError, match="unknown RNN pattern 'two_to_one'.*many_to_one"):
    RNN("gru", H, O, pattern="two_to_one").init(jax.random.key(0), _xs())


def _xent(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def test_each_pattern_overfits_a_tiny_batch():
  key = jax.random.key(3)
  tokens = jax.random.randint(key, (8, T), 0, O)
  # many_to_many: output the previous token (needs one step of memory).
  m2m = RNN("gru", 32, O, vocab_size=O, embed_size=8)
  v = m2m.init(key, tokens)
  target = jnp.concatenate([jnp.zeros((8, 1), jnp.int32), tokens[:, :-1]], 1)
  assert overfit(lambda p: _xent(m2m.apply(p, tokens), target), v, 200) < 0.05
  # many_to_one: parity of 6 bits (needs the whole sequence).
  bits = jax.random.bernoulli(key, 0.5, (16, T)).astype(jnp.int32)
  m2o = RNN("gru", 32, 2, pattern="many_to_one", vocab_size=2, embed_size=4)
  v = m2o.init(key, bits)
  assert overfit(lambda p: _xent(m2o.apply(p, bits), bits.sum(1) % 2), v, 300) < 0.05
  # one_to_many: a context vector (one-hot of a class) -> that class's token sequence.
  context = jnp.eye(4)
  seqs = jax.random.randint(key, (4, T), 1, O)
  prev = jnp.concatenate([jnp.zeros((4, 1), jnp.int32), seqs[:, :-1]], 1)
  o2m = RNN("lstm", 32, O, pattern="one_to_many", vocab_size=O, embed_size=4)
  v = o2m.init(key, context, prev_tokens=prev)
  assert overfit(lambda p: _xent(o2m.apply(p, context, prev_tokens=prev), seqs), v, 200) < 0.05


def test_rnn_jit_vmap_and_bfloat16():
  xs = _xs()
  assert_vmap_over_params(RNN("lstm", H, O), (xs,))
  model = RNN("gru", H, O)
  variables = model.init(jax.random.key(0), xs)
  np.testing.assert_allclose(jax.jit(model.apply)(variables, xs), model.apply(variables, xs),
                             atol=1e-6)
  assert_bfloat16_close(model, RNN("gru", H, O, dtype=jnp.bfloat16), variables, (xs,))


# --- Jordan: output recurrence with teacher forcing, free running and scheduled sampling.


def _jordan_by_hand(params, xs, targets=None):
  """h_t = tanh(x_t U + y_{t-1} W + b), y_t = h_t V + c; y_{t-1} = target or own output."""
  p = params["jordan"]["cell"]
  y_prev = jnp.zeros((xs.shape[0], O))
  ys = []
  for t in range(xs.shape[1]):
    h = jnp.tanh(xs[:, t] @ p["U"] + y_prev @ p["W"] + p["b"])
    y = h @ p["V"] + p["c"]
    ys.append(y)
    y_prev = y if targets is None else targets[:, t]
  return jnp.stack(ys, 1)


def test_jordan_teacher_forced_and_free_running_by_hand():
  model = JordanRNN(H, O)
  xs, targets = _xs(), _xs(1, (B, T, O))
  variables = model.init(jax.random.key(0), xs)
  np.testing.assert_allclose(model.apply(variables, xs),
                             _jordan_by_hand(variables["params"], xs), atol=1e-5)
  np.testing.assert_allclose(model.apply(variables, xs, targets),
                             _jordan_by_hand(variables["params"], xs, targets), atol=1e-5)


def test_scheduled_sampling_interpolates_between_the_two():
  model = JordanRNN(H, O)
  xs, targets = _xs(), _xs(1, (B, T, O))
  variables = model.init(jax.random.key(0), xs)
  rng = jax.random.key(5)
  forced = model.apply(variables, xs, targets)
  free = model.apply(variables, xs)
  np.testing.assert_allclose(model.apply(variables, xs, targets, 0.0, rng), free, atol=1e-6)
  mixed = model.apply(variables, xs, targets, 0.5, rng)
  # Step 1 never depends on the choice (y_0 = 0 either way); later steps do.
  np.testing.assert_allclose(mixed[:, 0], forced[:, 0], atol=1e-6)
  assert not np.allclose(mixed, forced) and not np.allclose(mixed, free)
  with pytest.raises(ValueError, match="needs an rng"):
    model.apply(variables, xs, targets, 0.5)


def test_jordan_overfits_an_output_recurrence():
  """Exponential smoothing y*_t = 0.8 y*_{t-1} + 0.2 x_t: learnable from (x_t, y*_{t-1})."""
  xs = _xs(3, (8, 20, 1))
  targets, y = [], jnp.zeros((8, 1))
  for t in range(20):
    y = 0.8 * y + 0.2 * xs[:, t]
    targets.append(y)
  targets = jnp.stack(targets, 1)
  model = JordanRNN(16, 1)
  v = model.init(jax.random.key(0), xs)
  loss = lambda p: jnp.mean((model.apply(p, xs, targets) - targets) ** 2)
  assert overfit(loss, v, 300) < 1e-4
  free_running = lambda p: jnp.mean((model.apply(p, xs) - targets) ** 2)
  assert free_running(v) > 1e-3  # untrained, for contrast


def test_jordan_vmap_and_bfloat16():
  xs, targets = _xs(), _xs(1, (B, T, O))
  assert_vmap_over_params(JordanRNN(H, O), (xs, targets))
  v = JordanRNN(H, O).init(jax.random.key(0), xs)
  assert_bfloat16_close(JordanRNN(H, O), JordanRNN(H, O, dtype=jnp.bfloat16), v, (xs, targets))


def test_step_method_runs_the_model_one_step_at_a_time():
  model = RNN("lstm", H, O, vocab_size=7, embed_size=3)
  tokens = jax.random.randint(jax.random.key(0), (B, T), 0, 7)
  variables = model.init(jax.random.key(1), tokens)
  bound = model.bind(variables)
  carry = bound.start(B)
  outs = []
  for t in range(T):
    carry, o = bound.step(carry, tokens[:, t])
    outs.append(o)
  np.testing.assert_allclose(jnp.stack(outs, 1), model.apply(variables, tokens), atol=1e-5)
