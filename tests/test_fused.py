"""The whole-sequence fast path (seqlab.unroll.fused) equals the plain step-by-step scan.

Outputs, final carries and gradients (params, initial carry, inputs) with lengths and
padding, reverse, every cell variant with a fast path, and inside jax.vmap.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells, unroll
from seqlab.unroll import fused

B, T, I, H = 3, 6, 4, 5
LENGTHS = jnp.array([6, 3, 1])

VARIANTS = [
    ("elman", {}),
    ("elman", {"activation": "relu"}),
    ("lstm", {}),
    ("lstm", {"peephole": True}),
    ("lstm", {"coupled": True, "peephole": True}),
    ("lstm", {"layer_norm": True}),
    ("gru", {}),
    ("gru", {"variant": "torch"}),
    ("gru", {"layer_norm": True}),
    ("gru", {"variant": "torch", "layer_norm": True}),
]


def _setup(name, options, seed=0):
  """A cell with all params perturbed (so peephole / LN / b_hn terms matter) and h0 != 0."""
  cell = cells.make(name, **options)
  k_p, k_x, k_n = jax.random.split(jax.random.key(seed), 3)
  params = cell.init(k_p, I, H)
  params = {k: v + 0.2 * jax.random.normal(jax.random.fold_in(k_n, i), v.shape)
            for i, (k, v) in enumerate(sorted(params.items()))}
  h0 = jax.tree.map(lambda a: a + 0.3, cell.initial_carry(params, (B,)))
  xs = jax.random.normal(k_x, (B, T, I))
  return cell, params, h0, xs


def _loss(step, params, h0, xs, lengths, reverse, fused_path):
  """A loss that weighs every output and the final carry unevenly; returns (loss, outputs)."""
  carry, ys = unroll.scan(step, params, h0, xs, lengths, reverse, fused=fused_path)
  total = jnp.sum(jnp.sin(3.0 * ys)) + sum(jnp.sum(jnp.cos(c)) for c in jax.tree.leaves(carry))
  return total, (carry, ys)


def _assert_close(got, want, rtol=1e-5):
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    scale = float(jnp.max(jnp.abs(w))) + 1e-12
    np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale)


# Every variant with one (lengths, reverse) combination each; lstm and cho gru with all four.
MODES = [(None, False), (LENGTHS, True), (None, True), (LENGTHS, False)]
PLAN = [(v, i % 4) for i, v in enumerate(VARIANTS)]
PLAN += [((name, {}), m) for name in ("lstm", "gru") for m in range(4)
         if ((name, {}), m) not in PLAN]
CASES = [(name, options, *MODES[m]) for (name, options), m in PLAN]


@pytest.mark.parametrize("name,options,lengths,reverse", CASES)
def test_fast_path_equals_plain_scan(name, options, lengths, reverse):
  cell, params, h0, xs = _setup(name, options)
  assert fused.runner(cell.step) is not None
  grad = jax.jit(jax.value_and_grad(_loss, argnums=(1, 2, 3), has_aux=True),
                 static_argnums=(0, 5, 6))
  fast = grad(cell.step, params, h0, xs, lengths, reverse, True)
  plain = grad(cell.step, params, h0, xs, lengths, reverse, False)
  _assert_close(fast, plain)


def test_padding_keeps_the_carry_and_zeroes_outputs():
  """Each padded row equals its sequence alone (the scan contract, through the fast path)."""
  cell, params, h0, xs = _setup("lstm", {})
  carry, ys = unroll.scan(cell.step, params, h0, xs, LENGTHS)
  for b, n in enumerate(LENGTHS.tolist()):
    one = jax.tree.map(lambda a, b=b: a[b : b + 1], h0)
    c1, y1 = unroll.scan(cell.step, params, one, xs[b : b + 1, :n])
    _assert_close(jax.tree.map(lambda a, b=b: a[b], carry), jax.tree.map(lambda a: a[0], c1))
    _assert_close(ys[b, :n], y1[0])
    assert not np.any(np.asarray(ys[b, n:]))


@pytest.mark.parametrize("name,options", [("lstm", {}), ("gru", {})])
def test_fast_path_under_vmap_equals_per_member_plain_scan(name, options):
  """A vmapped population (as in sweeps): per-member gradients equal separate plain runs."""
  cell, params, h0, xs = _setup(name, options)
  members = jax.vmap(lambda k: cell.init(k, I, H))(jax.random.split(jax.random.key(7), 3))
  grad = functools.partial(jax.grad(_loss, argnums=1, has_aux=True), cell.step)
  fast, (carry, ys) = jax.jit(jax.vmap(lambda p: grad(p, h0, xs, LENGTHS, True, True)))(members)
  for m in range(3):
    p = jax.tree.map(lambda a, m=m: a[m], members)
    want, (want_carry, want_ys) = grad(p, h0, xs, LENGTHS, True, False)
    _assert_close(jax.tree.map(lambda a, m=m: a[m], (fast, carry, ys)),
                  (want, want_carry, want_ys))


@pytest.mark.parametrize("name,options", VARIANTS)
def test_saved_residuals_hold_activations_not_weights(name, options):
  """What the forward pass keeps for the backward is O(T B H) (gate activations, the
  products' inputs); no [H, G] block of W is saved per step (cho GRU's slices of W once
  were: [T, H, 2H] + [T, H, H] written every step)."""
  Hb, Tb = 16, 7  # H > B, so a per-step weight block is the largest possible leaf
  cell = cells.make(name, **options)
  params = cell.init(jax.random.key(0), I, Hb)
  h0 = cell.initial_carry(params, (B,))
  xs = jnp.ones((Tb, B, I))
  run = fused.runner(cell.step)
  saved = jax.eval_shape(lambda p, h: fused._sequence_fwd(run.args[0], p, h, xs, None)[1][2],
                         params, h0)
  largest = max(leaf.size for leaf in jax.tree.leaves(saved))
  assert largest <= Tb * B * 4 * Hb, (largest, [leaf.shape for leaf in jax.tree.leaves(saved)])


def test_runner_finds_only_the_families_with_a_fast_path():
  assert fused.runner(cells.make("gru", variant="torch").step) is not None
  assert fused.runner(cells.get_family("lstm").step) is not None
  assert fused.runner(cells.make("leaky", rate=0.5).step) is None
  assert fused.runner(lambda p, h, x: (h, h)) is None


def test_only_elman_takes_the_fast_path_by_default(monkeypatch):
  """On the scan backend by default (fused=None) gru and lstm keep the plain scan (their
  training steps measured slower or equal fused); elman takes the fast path; fused=True
  forces it for every one."""
  calls = []
  real = fused._sequence
  monkeypatch.setattr(fused, "_sequence", lambda *a: calls.append(1) or real(*a))
  for name, default in (("gru", False), ("lstm", False), ("elman", True)):
    cell, params, h0, xs = _setup(name, {})
    calls.clear()
    unroll.scan(cell.step, params, h0, xs, backend="scan")
    assert bool(calls) == default, name
    calls.clear()
    unroll.scan(cell.step, params, h0, xs, fused=True)
    assert calls, name


def test_bfloat16_inputs_take_the_plain_scan_by_default(monkeypatch):
  calls = []
  real = fused._sequence
  monkeypatch.setattr(fused, "_sequence", lambda *a: calls.append(1) or real(*a))
  cell, params, h0, xs = _setup("elman", {})
  cast = lambda t: jax.tree.map(lambda a: a.astype(jnp.bfloat16), t)
  unroll.scan(cell.step, cast(params), cast(h0), cast(xs), backend="scan")
  assert not calls
  unroll.scan(cell.step, cast(params), cast(h0), cast(xs), fused=True)
  assert calls


def test_return_carries_and_fused_false_take_the_plain_scan(monkeypatch):
  cell, params, h0, xs = _setup("elman", {})
  monkeypatch.setattr(fused, "_sequence", None)  # any use of the fast path would fail
  unroll.scan(cell.step, params, h0, xs, fused=False)
  unroll.scan(cell.step, params, h0, xs, return_carries=True)
