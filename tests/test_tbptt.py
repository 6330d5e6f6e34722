"""Truncated BPTT(k1, k2) against explicit references built step by step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqlab import cells, tbptt, unroll

B, I, H = 2, 3, 4


def _problem(T, name="elman", seed=0):
  cell = cells.make(name)
  k_p, k_x, k_y = jax.random.split(jax.random.key(seed), 3)
  params = cell.init(k_p, I, H)
  xs = jax.random.normal(k_x, (B, T, I))
  targets = jax.random.normal(k_y, (B, T, H))
  return cell, params, xs, targets


def step_loss(params, y, target):
  """L_t = ||y_t - y*_t||^2 summed over the batch."""
  del params
  return jnp.sum((y - target) ** 2)


def _forward_carries(step, params, h0, xs):
  """h[t] = the state entering step t, from one forward pass (h[0] = h0)."""
  hs = [h0]
  for t in range(xs.shape[1]):
    hs.append(step(params, hs[-1], xs[:, t])[0])
  return hs


def _reference_grads(step, params, h0, xs, targets, k1, k2):
  """Update j (chunk [j k1, (j+1) k1)): each loss L_s flows back through the steps of
  the window [max(0, end - k2), end) up to s, or through step s alone if s precedes it."""
  hs = _forward_carries(step, params, h0, xs)
  out = []
  for j in range(xs.shape[1] // k1):
    start, end = j * k1, (j + 1) * k1
    window_start = max(0, end - k2)

    def chunk(p, start=start, window_start=window_start):
      total = 0.0
      for s in range(start, start + k1):
        first = window_start if s >= window_start else s
        h = jax.lax.stop_gradient(hs[first])
        for t in range(first, s + 1):
          h, y = step(p, h, xs[:, t])
        total += step_loss(p, y, targets[:, s])
      return total

    out.append(jax.grad(chunk)(params))
  return jax.tree.map(lambda *g: jnp.stack(g), *out)


def _close(a, b, atol=2e-5):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=atol, rtol=2e-5), a, b)


def _full_bptt_grad(cell, params, xs, targets):
  def loss(p):
    _, ys = unroll.scan(cell.step, p, cell.initial_carry(p, (B,)), xs)
    return jax.vmap(step_loss, (None, 1, 1))(p, ys, targets).sum()

  return jax.grad(loss)(params)


def _grads(cell, params, xs, targets, k1, k2):
  h0 = cell.initial_carry(params, (B,))
  state = tbptt.init_state(h0, xs, k1, k2)
  fn = jax.jit(tbptt.truncated_grads, static_argnums=(0, 1, 6, 7))
  return fn(cell.step, step_loss, params, state, xs, targets, k1, k2)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("k1,k2", [(12, 12), (12, 40), (4, 12), (3, 100)])
def test_k2_at_least_the_length_is_full_bptt(name, k1, k2):
  cell, params, xs, targets = _problem(12, name)
  losses, grads, _ = _grads(cell, params, xs, targets, k1, k2)
  _close(jax.tree.map(lambda g: g.sum(0), grads), _full_bptt_grad(cell, params, xs, targets))
  assert losses.shape == (12 // k1,)


def test_k2_equal_1_treats_the_previous_state_as_a_constant():
  cell, params, xs, targets = _problem(8)
  hs = _forward_carries(cell.step, params, cell.initial_carry(params, (B,)), xs)

  def per_step(p, t):  # dL_t/dtheta with h_{t-1} held fixed
    _, y = cell.step(p, jax.lax.stop_gradient(hs[t]), xs[:, t])
    return step_loss(p, y, targets[:, t])

  expected = [jax.grad(per_step)(params, t) for t in range(8)]
  _, grads, _ = _grads(cell, params, xs, targets, 1, 1)
  _close(grads, jax.tree.map(lambda *g: jnp.stack(g), *expected))


@pytest.mark.parametrize("name", ["elman", "lstm"])
@pytest.mark.parametrize("k1,k2", [(2, 5), (3, 4), (4, 4), (4, 2), (6, 1), (3, 7)])
def test_matches_the_explicit_reference(name, k1, k2):
  cell, params, xs, targets = _problem(12, name, seed=3)
  _, grads, _ = _grads(cell, params, xs, targets, k1, k2)
  h0 = cell.initial_carry(params, (B,))
  _close(grads, _reference_grads(cell.step, params, h0, xs, targets, k1, k2))


@pytest.mark.parametrize("k1,k2", [(3, 3), (2, 5), (3, 1)])
def test_stream_continues_across_batches(k1, k2):
  """Two batches through the stateful Stream equal one batch of twice the length."""
  cell, params, xs, targets = _problem(12, "gru", seed=5)
  h0 = cell.initial_carry(params, (B,))
  stream = tbptt.Stream(cell.step, step_loss, k1, k2)
  stream.reset(h0, xs[:, :6])
  l1, g1 = stream.grads(params, xs[:, :6], targets[:, :6])
  l2, g2 = stream.grads(params, xs[:, 6:], targets[:, 6:])
  losses, grads, _ = _grads(cell, params, xs, targets, k1, k2)
  np.testing.assert_allclose(jnp.concatenate([l1, l2]), losses, rtol=1e-5)
  _close(jax.tree.map(lambda a, b: jnp.concatenate([a, b]), g1, g2), grads)
  _close(grads, _reference_grads(cell.step, params, h0, xs, targets, k1, k2))


def test_train_updates_after_every_chunk():
  """truncated_train with SGD equals a Python loop: grad of a chunk, update, next chunk."""
  k1 = k2 = 3
  cell, params, xs, targets = _problem(12, "lstm", seed=7)
  h0 = cell.initial_carry(params, (B,))
  opt = optax.sgd(0.1)

  def update(p, opt_state, g):
    updates, opt_state = opt.update(g, opt_state, p)
    return optax.apply_updates(p, updates), opt_state

  stream = tbptt.Stream(cell.step, step_loss, k1, k2, update=update)
  stream.reset(h0, xs)
  trained, _, losses = stream.train(params, opt.init(params), xs, targets)

  p, h = params, h0
  for j in range(4):
    chunk = slice(3 * j, 3 * j + 3)

    def chunk_loss(p, h=h, chunk=chunk):
      h_end, ys = unroll.scan(cell.step, p, h, xs[:, chunk])
      return jax.vmap(step_loss, (None, 1, 1))(p, ys, targets[:, chunk]).sum(), h_end

    (loss, h_next), g = jax.value_and_grad(chunk_loss, has_aux=True)(p)
    np.testing.assert_allclose(losses[j], loss, rtol=1e-5)
    p = jax.tree.map(lambda a, b: a - 0.1 * b, p, g)
    h = h_next
  _close(trained, p)


def test_batch_length_must_be_a_multiple_of_k1():
  cell, params, xs, targets = _problem(10)
  with pytest.raises(ValueError, match="multiple of k1"):
    _grads(cell, params, xs, targets, 4, 4)


def test_k_must_be_positive():
  with pytest.raises(ValueError, match="k1 >= 1 and k2 >= 1"):
    tbptt.Stream(lambda p, h, x: (h, h), step_loss, 0, 3)


@pytest.mark.parametrize("k2", [4, 6, 2])
def test_a_whole_window_sequence_equals_step_by_step(k2):
  """`sequence` (here unroll.scan, oneDNN on CPU) gives the step-by-step chunk loss, its
  gradient and the carried state, over two chunks; k2 != k1 keeps the step-by-step path."""
  cell, params, xs, targets = _problem(8, "lstm", seed=3)
  state = tbptt.init_state(cell.initial_carry(params, (B,)), xs[:, :4], 4, k2)
  sequence = lambda p, carry, x: unroll.scan(cell.step, p, carry, x)
  grad = jax.value_and_grad(tbptt.chunk_loss, argnums=2, has_aux=True)
  states = {}
  for name, seq in (("steps", None), ("window", sequence)):
    s, out = state, []
    for chunk in (slice(0, 4), slice(4, 8)):
      (loss, s), g = grad(cell.step, step_loss, params, s, xs[:, chunk], targets[:, chunk], 4,
                          k2, seq)
      out.append((loss, g))
    states[name] = (out, s.carry)
  _close(states["window"], states["steps"])
