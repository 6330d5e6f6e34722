"""Value tests of the feed-forward sequence models: `TDNN` and `NPLM` (Bengio et al. 2003)."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqlab.models.nplm import NPLM
from seqlab.models.tdnn import TDNN

TOL = {"atol": 1e-5, "rtol": 1e-5}


def to_np(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def randomize(variables, seed, scale=0.5):
  """Every leaf replaced by scale * N(0, 1)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda a: jnp.asarray(scale * rng.standard_normal(a.shape), a.dtype), variables
  )


def train(loss_fn, params, steps, learning_rate):
  """`steps` jitted Adam steps on loss_fn(params); returns (params, final loss)."""
  opt = optax.adam(learning_rate)

  @jax.jit
  def train_step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = opt.init(params)
  for _ in range(steps):
    params, opt_state, loss = train_step(params, opt_state)
  return params, float(loss_fn(params))


def check_vmap(model, *args):
  """vmap(apply) over 3 stacked parameter sets == each member's apply."""
  keys = jax.random.split(jax.random.key(0), 3)
  axes = (0,) + (None,) * len(args)
  stacked = jax.vmap(model.init, in_axes=axes)(keys, *args)
  out = jax.jit(jax.vmap(model.apply, in_axes=axes))(stacked, *args)
  apply = jax.jit(model.apply)
  for m in range(3):
    member = jax.tree.map(lambda a, m=m: a[m], stacked)
    np.testing.assert_allclose(out[m], apply(member, *args), **TOL)
  assert not np.allclose(out[0], out[1])


# ---------------------------------------------------------------------------
# TDNN.
# ---------------------------------------------------------------------------


def np_tdnn(p, xs, windows):
  """h^l_t = tanh(b + sum_d h^{l-1}_{t-d} U_d), y_t = c + h^L_t V, by explicit windows."""
  h = np.asarray(xs, np.float64)
  B, T, _ = h.shape
  for l, D in enumerate(windows):
    kernel, bias = p[f"U_{l}"]["kernel"], p[f"U_{l}"]["bias"]
    out = np.zeros((B, T, kernel.shape[-1]))
    for t in range(T):
      a = bias.copy()
      for d in range(D):  # delay d: input h_{t-d}, weight U_d = kernel[D - 1 - d]
        if t - d >= 0:
          a = a + h[:, t - d] @ kernel[D - 1 - d]
      out[:, t] = np.tanh(a)
    h = out
  return h @ p["V"]["kernel"] + p["V"]["bias"]


def test_tdnn_equals_numpy_sliding_windows():
  rng = np.random.default_rng(0)
  xs = jnp.asarray(rng.standard_normal((2, 9, 3)), jnp.float32)
  model = TDNN(features=(5, 4), output_size=2, window=(3, 2))
  assert model.receptive_field == 4
  variables = randomize(model.init(jax.random.key(0), xs), 1)
  ys = jax.jit(model.apply)(variables, xs)
  np.testing.assert_allclose(ys, np_tdnn(to_np(variables["params"]), xs, (3, 2)), **TOL)


def test_tdnn_is_causal_with_a_finite_window():
  """Changing x_s changes y_t only for s <= t < s + R (R = receptive field)."""
  rng = np.random.default_rng(1)
  T = 12
  xs = jnp.asarray(rng.standard_normal((1, T, 2)), jnp.float32)
  model = TDNN(features=(6, 6), output_size=3, window=3)
  R = model.receptive_field
  variables = randomize(model.init(jax.random.key(0), xs), 2)
  ys = model.apply(variables, xs)
  for s in range(T):
    ys_s = model.apply(variables, xs.at[0, s].add(1.0))
    changed = np.abs(np.asarray(ys_s - ys)).max(-1)[0] > 0
    np.testing.assert_array_equal(changed, (np.arange(T) >= s) & (np.arange(T) < s + R))


def test_tdnn_padding_and_token_inputs():
  """Padded steps output zero and leave real steps alone; token ids == their embeddings."""
  rng = np.random.default_rng(2)
  tokens = jnp.asarray(rng.integers(0, 5, (3, 8)))
  lengths = jnp.array([8, 3, 5])
  model = TDNN(features=(4,), output_size=2, window=2, vocab_size=5, embed_size=3)
  variables = randomize(model.init(jax.random.key(0), tokens), 3)
  ys = model.apply(variables, tokens, lengths)
  full = model.apply(variables, tokens)
  for b, n in enumerate(np.asarray(lengths)):
    np.testing.assert_allclose(ys[b, :n], full[b, :n], **TOL)
    np.testing.assert_array_equal(ys[b, n:], 0)
  p = dict(variables["params"])
  embedded = p.pop("Embed_0")["embedding"][tokens]
  vector_model = TDNN(features=(4,), output_size=2, window=2)
  np.testing.assert_allclose(full, vector_model.apply({"params": p}, embedded), **TOL)


def test_tdnn_overfits_a_delayed_product():
  """y_t = x_{t-1} x_{t-2}: inside a window of 3, learnable only through the nonlinearity."""
  rng = np.random.default_rng(3)
  x = rng.uniform(-1, 1, (8, 32))
  y = x * 0
  y[:, 2:] = x[:, 1:-1] * x[:, :-2]
  xs, ys = jnp.asarray(x[..., None], jnp.float32), jnp.asarray(y[..., None], jnp.float32)
  model = TDNN(features=(32,), output_size=1, window=3)

  def loss_fn(params):
    return jnp.mean((model.apply({"params": params}, xs) - ys) ** 2)

  start = time.time()
  params = model.init(jax.random.key(0), xs)["params"]
  initial = float(loss_fn(params))
  _, loss = train(loss_fn, params, steps=400, learning_rate=1e-2)
  print(f"TDNN delayed product: MSE {initial:.4f} -> {loss:.5f} in {time.time() - start:.1f} s")
  assert loss < 2e-3  # target variance ~ 1/9


def test_tdnn_vmap_over_stacked_params():
  xs = jnp.asarray(np.random.default_rng(4).standard_normal((2, 7, 3)), jnp.float32)
  check_vmap(TDNN(features=(5, 4), output_size=2, window=(2, 3)), xs)


def test_tdnn_bfloat16_forward_close_to_float32():
  xs = jnp.asarray(np.random.default_rng(5).standard_normal((2, 7, 3)), jnp.float32)
  model32 = TDNN(features=(8, 8), output_size=2)
  model16 = TDNN(features=(8, 8), output_size=2, dtype=jnp.bfloat16)
  variables = model32.init(jax.random.key(0), xs)
  ys16 = jax.jit(model16.apply)(variables, xs)
  assert ys16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(ys16, np.float32), model32.apply(variables, xs),
                             atol=5e-2, rtol=5e-2)


# ---------------------------------------------------------------------------
# NPLM.
# ---------------------------------------------------------------------------


def np_nplm(p, tokens, order, pad_id, direct=True):
  """y_t = b + W x_t + U tanh(d + H x_t), x_t = (C(w_{t-1}), ..., C(w_{t-n+1})), float64."""
  tokens = np.asarray(tokens)
  B, T = tokens.shape
  C = p["C"]["embedding"]
  out = np.zeros((B, T, C.shape[0]))
  for b in range(B):
    for t in range(T):
      context = [tokens[b, t - k] if t - k >= 0 else pad_id for k in range(1, order)]
      x = np.concatenate([C[w] for w in context])
      y = p["U"]["bias"] + np.tanh(p["H"]["bias"] + x @ p["H"]["kernel"]) @ p["U"]["kernel"]
      out[b, t] = y + x @ p["W"]["kernel"] if direct else y
  return out


@pytest.mark.parametrize("direct", [True, False])
def test_nplm_equals_numpy_equation(direct):
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, 7, (2, 6)))
  model = NPLM(vocab_size=7, order=3, embed_size=4, hidden_size=5, direct=direct, pad_id=6)
  variables = randomize(model.init(jax.random.key(0), tokens), 1)
  assert ("W" in variables["params"]) == direct
  logits = jax.jit(model.apply)(variables, tokens)
  expected = np_nplm(to_np(variables["params"]), tokens, 3, 6, direct)
  np.testing.assert_allclose(logits, expected, **TOL)


def test_nplm_reads_exactly_the_previous_n_minus_1_tokens():
  """Changing w_s changes the logits at t only for s < t <= s + n - 1: never at or before s."""
  T, n = 10, 4
  tokens = jnp.asarray(np.random.default_rng(1).integers(0, 5, (1, T)))
  model = NPLM(vocab_size=5, order=n, embed_size=3, hidden_size=8)
  variables = randomize(model.init(jax.random.key(0), tokens), 2)
  logits = model.apply(variables, tokens)
  for s in range(T):
    changed_tokens = tokens.at[0, s].set((tokens[0, s] + 1) % 5)
    changed = np.abs(np.asarray(model.apply(variables, changed_tokens) - logits)).max(-1)[0] > 0
    np.testing.assert_array_equal(changed, (np.arange(T) > s) & (np.arange(T) <= s + n - 1))


def test_nplm_overfits_a_repeated_string():
  """Windows of "hello world " at random offsets; each char is fixed by the 3 before it.

  The first n - 1 positions (whose context holds padding) are ambiguous across offsets
  and left out of the loss.
  """
  text = "hello world "
  vocab = sorted(set(text))
  ids = np.array([vocab.index(c) for c in text * 4]) + 1  # 0 is the padding id
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(np.stack([ids[o : o + 24] for o in rng.integers(0, 12, 16)]))
  n = 4
  model = NPLM(vocab_size=len(vocab) + 1, order=n, embed_size=8, hidden_size=32)

  def loss_fn(params):
    logits = model.apply({"params": params}, tokens)[:, n - 1 :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, n - 1 :]).mean()

  start = time.time()
  params = model.init(jax.random.key(0), tokens)["params"]
  initial = float(loss_fn(params))
  _, loss = train(loss_fn, params, steps=80, learning_rate=3e-2)
  print(f"NPLM hello world: loss {initial:.3f} -> {loss:.4f} nats in {time.time() - start:.1f} s")
  assert loss < 0.02


def test_nplm_vmap_over_stacked_params():
  tokens = jnp.asarray(np.random.default_rng(3).integers(0, 6, (2, 7)))
  check_vmap(NPLM(vocab_size=6, order=3, embed_size=4, hidden_size=8), tokens)


def test_nplm_bfloat16_forward_close_to_float32():
  tokens = jnp.asarray(np.random.default_rng(4).integers(0, 6, (2, 7)))
  model32 = NPLM(vocab_size=6, order=3, embed_size=8, hidden_size=16)
  model16 = NPLM(vocab_size=6, order=3, embed_size=8, hidden_size=16, dtype=jnp.bfloat16)
  variables = model32.init(jax.random.key(0), tokens)
  logits16 = jax.jit(model16.apply)(variables, tokens)
  assert logits16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(logits16, np.float32), model32.apply(variables, tokens),
                             atol=5e-2, rtol=5e-2)
