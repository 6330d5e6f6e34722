"""Bidirectional, DeepRNN and the multiple-timescale cells, by value."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from model_testing import assert_bfloat16_close, assert_vmap_over_params, overfit

from seqlab import cells, unroll
from seqlab.models.bidirectional import Bidirectional
from seqlab.models.deep import DeepRNN, mlp
from seqlab.models.recurrent import Recurrent
from seqlab.models.rnn import RNN

B, T, F, H, O = 3, 7, 4, 6, 5


def _xs(seed=0, shape=(B, T, F)):
  return jax.random.normal(jax.random.key(seed), shape)


# --- Bidirectional


def test_bidirectional_halves_are_the_forward_and_the_flipped_backward_runs():
  model = Bidirectional("gru", H)
  xs = _xs()
  variables = model.init(jax.random.key(0), xs)
  hs = model.apply(variables, xs)
  p = variables["params"]
  _, fwd = Recurrent("gru", H).apply({"params": p["forward"]}, xs)
  _, bwd_flipped = Recurrent("gru", H).apply({"params": p["backward"]}, xs[:, ::-1])
  np.testing.assert_allclose(hs[..., :H], fwd, atol=1e-6)
  np.testing.assert_allclose(hs[..., H:], bwd_flipped[:, ::-1], atol=1e-6)
  summed = Bidirectional("gru", H, merge="sum").apply(variables, xs)
  np.testing.assert_allclose(summed, fwd + bwd_flipped[:, ::-1], atol=1e-6)


def test_bidirectional_on_a_padded_batch_equals_each_sequence_alone():
  model = Bidirectional("lstm", H, output_size=O)
  xs = _xs(1)
  variables = model.init(jax.random.key(0), xs)
  lengths = jnp.array([7, 3, 5])
  out = model.apply(variables, xs, lengths)
  for b, length in enumerate(lengths):
    alone = model.apply(variables, xs[b : b + 1, :length])
    np.testing.assert_allclose(out[b : b + 1, :length], alone, atol=1e-5)


def test_bidirectional_sees_the_future_and_overfits():
  """Tag each position with the NEXT token: impossible forward-only, easy bidirectionally."""
  tokens = jax.random.randint(jax.random.key(0), (8, T), 0, O)
  xs = jax.nn.one_hot(tokens, O)
  target = jnp.concatenate([tokens[:, 1:], jnp.zeros((8, 1), jnp.int32)], 1)
  model = Bidirectional("gru", 16, output_size=O)
  v = model.init(jax.random.key(1), xs)
  loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
      model.apply(p, xs), target).mean()
  assert overfit(loss, v, 200) < 0.05
  with pytest.raises(ValueError, match="unknown merge 'avg'"):
    Bidirectional("gru", H, merge="avg").init(jax.random.key(0), xs)


def test_bidirectional_vmap_and_bfloat16():
  xs = _xs()
  assert_vmap_over_params(Bidirectional("gru", H), (xs,))
  v = Bidirectional("gru", H).init(jax.random.key(0), xs)
  assert_bfloat16_close(Bidirectional("gru", H), Bidirectional("gru", H, dtype=jnp.bfloat16),
                        v, (xs,))


# --- DeepRNN


def _layer(params, name, xs):
  _, hs = Recurrent("elman", params[name]["cell"]["W"].shape[0]).apply(
      {"params": params[name]}, xs)
  return hs


def _dense(params, name, x):
  return x @ params[name]["kernel"] + params[name]["bias"]


def test_stacked_layers_compose():
  model = DeepRNN("elman", (H, H), O)
  xs = _xs()
  v = model.init(jax.random.key(0), xs)
  p = v["params"]
  expected = _dense(p, "V", _layer(p, "layer_1", _layer(p, "layer_0", xs)))
  np.testing.assert_allclose(model.apply(v, xs), expected, atol=1e-5)


def test_skip_and_residual_connections():
  xs = _xs()
  skip = DeepRNN("elman", (H, H), O, skip=True)
  v = skip.init(jax.random.key(0), xs)
  p = v["params"]
  h0 = _layer(p, "layer_0", xs)
  h1 = _layer(p, "layer_1", jnp.concatenate([h0, xs], -1))  # every layer reads x_t
  expected = _dense(p, "V", jnp.concatenate([h0, h1], -1))  # the output reads every layer
  np.testing.assert_allclose(skip.apply(v, xs), expected, atol=1e-5)

  residual = DeepRNN("elman", (H, H), O, residual=True)
  v = residual.init(jax.random.key(0), xs)
  p = v["params"]
  h0 = _layer(p, "layer_0", xs)
  expected = _dense(p, "V", _layer(p, "layer_1", h0) + h0)
  np.testing.assert_allclose(residual.apply(v, xs), expected, atol=1e-5)


def test_deep_input_transition_and_output_mlps():
  """h_t = tanh(x'_t U + MLP(h_{t-1}) W + b) with x'_t = tanh(x_t A + a), o_t = V tanh(.)."""
  model = DeepRNN("elman", (H,), O, input_mlp=(5,), transition_mlp=(4,), output_mlp=(3,))
  xs = _xs()
  v = model.init(jax.random.key(0), xs)
  p = v["params"]
  x_in = jnp.tanh(_dense(p, "input_mlp_0", xs))
  cell_p, mlp_p = p["layer_0"]["transition"]["cell"], p["layer_0"]["transition"]["mlp"]
  h, hs = jnp.zeros((B, H)), []
  for t in range(T):
    h_mid = h
    for layer in mlp_p:  # the deep transition, written out
      h_mid = jnp.tanh(h_mid @ layer["W"] + layer["b"])
    h = jnp.tanh(x_in[:, t] @ cell_p["U"] + h_mid @ cell_p["W"] + cell_p["b"])
    hs.append(h)
  expected = _dense(p, "V", jnp.tanh(_dense(p, "output_mlp_0", jnp.stack(hs, 1))))
  np.testing.assert_allclose(model.apply(v, xs), expected, atol=1e-5)
  assert len(mlp_p) == 2 and mlp_p[0]["W"].shape == (H, 4)
  np.testing.assert_allclose(mlp(mlp_p, h), jnp.tanh(jnp.tanh(h @ mlp_p[0]["W"]) @ mlp_p[1]["W"]),
                             atol=1e-6)


def test_deep_transition_shortcut():
  """DT(S): h_t = tanh(x_t U + (h_{t-1} + MLP(h_{t-1})) W + b), the MLP skipped by one path."""
  model = DeepRNN("elman", (H,), O, transition_mlp=(4, 5), transition_shortcut=True)
  xs = _xs(2)
  v = model.init(jax.random.key(0), xs)
  p = v["params"]
  cell_p, mlp_p = p["layer_0"]["transition"]["cell"], p["layer_0"]["transition"]["mlp"]
  h, hs = np.zeros((B, H)), []
  for t in range(T):
    h_mid = h
    for layer in mlp_p:
      h_mid = np.tanh(h_mid @ np.asarray(layer["W"]) + np.asarray(layer["b"]))
    h = np.tanh(np.asarray(xs[:, t]) @ cell_p["U"] + (h + h_mid) @ cell_p["W"] + cell_p["b"])
    hs.append(h)
  expected = _dense(p, "V", jnp.asarray(np.stack(hs, 1), jnp.float32))
  np.testing.assert_allclose(model.apply(v, xs), expected, atol=1e-5)
  # The shortcut is a path through time that skips the MLP: with the MLP's last layer
  # zeroed, MLP(h) = 0 and the layer is the plain Elman RNN.
  mlp_p[-1]["W"] = jnp.zeros_like(mlp_p[-1]["W"])
  _, plain = Recurrent("elman", H).apply({"params": {"cell": cell_p}}, xs)
  np.testing.assert_allclose(model.apply({"params": p}, xs), _dense(p, "V", plain), atol=1e-5)
  with pytest.raises(ValueError, match="transition_shortcut needs a transition_mlp"):
    DeepRNN("elman", (H,), O, transition_shortcut=True).init(jax.random.key(0), xs)


def test_deep_rnn_with_lstm_transitions_overfits_and_vmaps():
  tokens = jax.random.randint(jax.random.key(0), (8, T), 0, O)
  target = jnp.concatenate([jnp.zeros((8, 2), jnp.int32), tokens[:, :-2]], 1)
  model = DeepRNN("lstm", (16, 16), O, transition_mlp=(16,), skip=True, vocab_size=O,
                  embed_size=8)
  v = model.init(jax.random.key(1), tokens)
  loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
      model.apply(p, tokens), target).mean()
  assert overfit(loss, v, 250) < 0.05
  assert_vmap_over_params(DeepRNN("gru", (H, H), O, residual=True), (_xs(),))


# --- Multiple timescales: leaky units, skip connections through time, clockwork.


def test_delayed_cell_by_hand_and_its_gradient_shortcut():
  cell = cells.make("delayed", delay=3)
  params = cell.init(jax.random.key(0), F, H)
  xs = _xs()
  carry, hs = unroll.scan(cell.step, params, cell.initial_carry(params, (B,)), xs)
  past = [jnp.zeros((B, H))] * 3
  for t in range(T):
    h = jnp.tanh(xs[:, t] @ params["U"] + past[-1] @ params["W"] + past[-3] @ params["W_d"]
                 + params["b"])
    np.testing.assert_allclose(hs[:, t], h, atol=1e-5)
    past = past[1:] + [h]
  np.testing.assert_allclose(carry[:, 0], hs[:, -1], atol=1e-6)
  # With W = 0 only the delay-3 path links states: dh_5/dh_2 != 0, dh_4/dh_2 = dh_6/dh_2 = 0.
  no_w = dict(params, W=jnp.zeros_like(params["W"]))

  def h_at(t_out, h2):  # run steps 3..t_out from history [h_2, h_1 = 0, h_0 = 0]
    history = jnp.stack([h2, jnp.zeros_like(h2), jnp.zeros_like(h2)], 1)
    _, hs = unroll.scan(cell.step, no_w, history, xs[:, 3:t_out + 1])
    return hs[:, -1].sum()
  h2 = hs[:, 2]
  assert jnp.abs(jax.grad(h_at, argnums=1)(5, h2)).sum() > 0
  assert jnp.abs(jax.grad(h_at, argnums=1)(4, h2)).sum() == 0
  assert jnp.abs(jax.grad(h_at, argnums=1)(6, h2)).sum() == 0


def test_clockwork_updates_each_module_on_its_period():
  periods = (1, 2, 4)
  cell = cells.make("clockwork", periods=periods)
  params = cell.init(jax.random.key(0), F, H)  # H = 6: modules of 2 units
  xs = _xs()
  _, hs = unroll.scan(cell.step, params, cell.initial_carry(params, (B,)), xs)
  unit_period = np.repeat(periods, 2)
  mask = (unit_period[:, None] >= unit_period[None, :])
  np.testing.assert_array_equal(np.asarray(params["W"])[~mask], 0.0)  # slow -> fast only
  h = np.zeros((B, H))
  for t in range(T):
    h_new = np.tanh(np.asarray(xs[:, t]) @ params["U"] + h @ (params["W"] * mask) + params["b"])
    h = np.where(t % unit_period == 0, h_new, h)
    np.testing.assert_allclose(hs[:, t], h, atol=1e-5)


@pytest.mark.parametrize("cell,options", [
    ("leaky", {"rate": (1.0, 0.5, 0.1)}),
    ("delayed", {"delay": 4}),
    ("clockwork", {"periods": (1, 2, 4, 8)}),
])
def test_timescale_cells_learn_a_lagged_copy(cell, options):
  """Output the token from 4 steps back: a dependency the slower units can carry."""
  tokens = jax.random.randint(jax.random.key(0), (8, 12), 0, 4)
  target = jnp.concatenate([jnp.zeros((8, 4), jnp.int32), tokens[:, :-4]], 1)
  model = RNN(cell, 32, 4, cell_options=options, vocab_size=4, embed_size=8)
  v = model.init(jax.random.key(1), tokens)
  loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
      model.apply(p, tokens), target).mean()
  assert overfit(loss, v, 300) < 0.1


# --- DeepRNN's model step interface: start / step / run


DEEP_VARIANTS = {
    "stacked": {},
    "skip, residual, input and output MLPs": {"skip": True, "residual": True,
                                              "input_mlp": (5,), "output_mlp": (7,)},
    "deep transition with shortcut": {"transition_mlp": (6,), "transition_shortcut": True},
}


@pytest.mark.parametrize("fields", DEEP_VARIANTS.values(), ids=DEEP_VARIANTS.keys())
def test_deep_step_by_step_and_window_by_window_equal_the_whole_sequence(fields):
  """Tokens through `step` one at a time, and through `run` in two windows from the carried
  state, give __call__'s logits on the whole sequence (cells lstm and gru, two layers)."""
  tokens = jax.random.randint(jax.random.key(3), (B, T), 0, 9)
  for cell in ("lstm", "gru"):
    model = DeepRNN(cell, (H, H), O, vocab_size=9, embed_size=4, **fields)
    v = model.init(jax.random.key(0), tokens)
    whole = model.apply(v, tokens)
    bound = model.bind(v)
    carry, stepped = bound.start(B), []
    for t in range(T):
      carry, logits = bound.step(carry, tokens[:, t])
      stepped.append(logits)
    np.testing.assert_allclose(jnp.stack(stepped, 1), whole, atol=1e-5, err_msg=cell)
    carry, first = bound.run(bound.start(B), tokens[:, :3])
    carry, second = bound.run(carry, tokens[:, 3:])
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole, atol=1e-5,
                               err_msg=cell)
