"""unroll.scan: the scanned graph equals the step-by-step loop; padding is exact."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab import cells, unroll
from seqlab.cells import jordan

B, T, I, H = 4, 7, 3, 5

CELL_SPECS = [
    ("elman", {}),
    ("lstm", {"peephole": True}),
    ("gru", {"variant": "torch"}),
    ("leaky", {"rate": (1.0, 0.2)}),
    ("jordan", {"output_size": 2}),
]


def _setup(name, options, seed=0):
  cell = cells.make(name, **options)
  k_p, k_x = jax.random.split(jax.random.key(seed))
  params = cell.init(k_p, I, H)
  xs = jax.random.normal(k_x, (B, T, I))
  return cell, params, xs


def _loop(step, params, carry, xs):
  """The reference: call step in a Python loop, passing the carry along."""
  ys, carries = [], []
  for t in range(xs.shape[1]):
    carry, y = step(params, carry, xs[:, t])
    ys.append(y)
    carries.append(carry)
  stack = lambda seq: jax.tree.map(lambda *a: jnp.stack(a, axis=1), *seq)
  return carry, stack(ys), stack(carries)


def _assert_tree_close(a, b, atol=1e-6):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=atol, rtol=1e-5), a, b)


@pytest.mark.parametrize("name,options", CELL_SPECS)
def test_scan_equals_step_by_step_loop(name, options):
  cell, params, xs = _setup(name, options)
  h0 = cell.initial_carry(params, (B,))
  carry, ys, carries = unroll.scan(cell.step, params, h0, xs, return_carries=True)
  ref_carry, ref_ys, ref_carries = _loop(cell.step, params, h0, xs)
  _assert_tree_close(carry, ref_carry)
  _assert_tree_close(ys, ref_ys)
  _assert_tree_close(carries, ref_carries)


@pytest.mark.parametrize("name,options", CELL_SPECS[:3])
def test_reverse_is_the_loop_over_flipped_time(name, options):
  cell, params, xs = _setup(name, options)
  h0 = cell.initial_carry(params, (B,))
  carry, ys = unroll.scan(cell.step, params, h0, xs, reverse=True)
  ref_carry, ref_ys, _ = _loop(cell.step, params, h0, xs[:, ::-1])
  _assert_tree_close(carry, ref_carry)
  _assert_tree_close(ys, ref_ys[:, ::-1])


def test_unroll_factor_does_not_change_the_result():
  cell, params, xs = _setup("lstm", {})
  h0 = cell.initial_carry(params, (B,))
  _assert_tree_close(
      unroll.scan(cell.step, params, h0, xs, unroll=3),
      unroll.scan(cell.step, params, h0, xs),
  )


def test_teacher_forced_inputs_scan_as_a_pytree():
  """Jordan under teacher forcing: xs is a TeacherForced pytree, every leaf [B, T, ...]."""
  cell, params, xs = _setup("jordan", {"output_size": 2})
  targets = jax.random.normal(jax.random.key(3), (B, T, 2))
  y_prev = jnp.concatenate([jnp.zeros((B, 1, 2)), targets[:, :-1]], axis=1)
  h0 = cell.initial_carry(params, (B,))
  _, ys = unroll.scan(cell.step, params, h0, jordan.TeacherForced(xs, y_prev))
  # With every step forced, step t depends only on x_t and y*_{t-1}: all steps at once.
  _, ys_parallel = cell.step(params, h0, jordan.TeacherForced(xs, y_prev))
  np.testing.assert_allclose(ys, ys_parallel, atol=1e-6)


# --- Padding: a padded batch gives, per row, exactly what the sequence gives alone.

_PAD_CELLS = {name: _setup(name, opts, seed=1) for name, opts in CELL_SPECS[:3]}


@functools.cache
def _jitted_scan(name, reverse):
  cell = _PAD_CELLS[name][0]
  return jax.jit(
      lambda p, h, xs, lengths: unroll.scan(cell.step, p, h, xs, lengths, reverse=reverse)
  )


@functools.cache
def _jitted_alone(name, reverse, length):
  """One sequence of `length` steps run alone (no padding, no lengths)."""
  cell = _PAD_CELLS[name][0]
  return jax.jit(lambda p, h, xs: unroll.scan(cell.step, p, h, xs[:, :length], reverse=reverse))


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(_PAD_CELLS)),
    lengths=st.lists(st.integers(0, T), min_size=B, max_size=B),
    reverse=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_padded_batch_equals_each_sequence_alone(name, lengths, reverse, seed):
  cell, params, _ = _PAD_CELLS[name]
  xs = jax.random.normal(jax.random.key(seed), (B, T, I))
  h0 = jax.tree.map(
      lambda a: jax.random.normal(jax.random.key(seed + 1), a.shape),
      cell.initial_carry(params, (B,)),
  )
  carry, ys = _jitted_scan(name, reverse)(params, h0, xs, jnp.array(lengths))
  for b, length in enumerate(lengths):
    row = lambda tree, b=b: jax.tree.map(lambda a: a[b : b + 1], tree)
    if length == 0:  # nothing to read: the carry is untouched
      ref_carry, ref_ys = row(h0), jnp.zeros_like(row(ys))[:, :0]
    else:
      ref_carry, ref_ys = _jitted_alone(name, reverse, length)(params, row(h0), row(xs))
    _assert_tree_close(row(carry), ref_carry, atol=1e-5)
    np.testing.assert_allclose(row(ys)[:, :length], ref_ys, atol=1e-5)
    np.testing.assert_array_equal(row(ys)[:, length:], 0.0)


@settings(max_examples=20, deadline=None)
@given(lengths=st.lists(st.integers(0, T), min_size=B, max_size=B))
def test_reverse_within_lengths_is_an_involution_that_keeps_padding(lengths):
  xs = jnp.arange(B * T).reshape(B, T)[..., None]
  rev = unroll.reverse_within_lengths(xs, jnp.array(lengths))
  for b, length in enumerate(lengths):
    np.testing.assert_array_equal(rev[b, :length, 0], xs[b, :length, 0][::-1])
    np.testing.assert_array_equal(rev[b, length:, 0], xs[b, length:, 0])
  np.testing.assert_array_equal(unroll.reverse_within_lengths(rev, jnp.array(lengths)), xs)


def test_padded_steps_get_no_gradient():
  """Inputs at padded positions cannot influence anything: their gradient is exactly 0."""
  cell, params, xs = _setup("gru", {})
  lengths = jnp.array([7, 3, 0, 5])
  h0 = cell.initial_carry(params, (B,))

  def loss(xs):
    carry, ys = unroll.scan(cell.step, params, h0, xs, lengths)
    return jnp.sum(ys**2) + jnp.sum(carry**2)

  g = jax.grad(loss)(xs)
  mask = np.asarray(unroll.length_mask(lengths, T))
  assert np.all(g[~mask] == 0.0)
  assert np.all(np.abs(g[mask]).sum(-1) > 0)
