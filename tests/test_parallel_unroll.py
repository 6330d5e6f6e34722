"""unroll.parallel: Newton unrolls over time equal the sequential scan, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells, unroll
from seqlab.unroll import parallel

B, T, I, H = 2, 30, 3, 4

CELL_SPECS = [
    ("elman", {}),
    ("lstm", {}),
    ("gru", {}),
    ("leaky", {"rate": (1.0, 0.3)}),
]
ATOL = {jnp.float64: 1e-10, jnp.float32: 1e-5}


@pytest.fixture
def x64():
  """float64 for one test, then the previous setting back."""
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", previous)


def _setup(name, options, dtype=jnp.float32, steps=T, scale=0.5, batch=B, seed=0):
  """A cell in a stable regime (recurrent weights orthogonal x `scale`), a random h_0."""
  cell = cells.make(name, **options)
  k_p, k_x, k_h = jax.random.split(jax.random.key(seed), 3)
  params = cell.init(k_p, I, H, recurrent_scale=scale, dtype=dtype)
  xs = jax.random.normal(k_x, (batch, steps, I), dtype)
  leaves, treedef = jax.tree.flatten(cell.initial_carry(params, (batch,)))
  keys = jax.random.split(k_h, len(leaves))
  h0 = [0.3 * jax.random.normal(k, a.shape, dtype) for k, a in zip(keys, leaves, strict=True)]
  h0 = jax.tree.unflatten(treedef, h0)
  return cell, params, h0, xs


def _assert_close(a, b, atol, rtol=0.0):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=atol, rtol=rtol), a, b)


def _sequential(cell, params, h0, xs):
  return unroll.scan(cell.step, params, h0, xs, backend="scan", return_carries=True)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name,options", CELL_SPECS, ids=[s[0] for s in CELL_SPECS])
def test_trajectory_equals_the_sequential_scan(name, options, dtype, request):
  if dtype == jnp.float64:
    request.getfixturevalue("x64")
  cell, params, h0, xs = _setup(name, options, dtype)
  final, ys, carries, diag = parallel.unroll(cell.step, params, h0, xs, return_carries=True)
  parallel.check_converged(diag, name)  # no raise
  assert diag.converged.shape == (B,) and bool(jnp.all(diag.iterations <= T))
  _assert_close((final, ys, carries), _sequential(cell, params, h0, xs), ATOL[dtype])
  assert ys.dtype == dtype


def test_long_sequence_float64(x64):
  """T = 10_000: the quasi-Newton prefix scans stay exact to 1e-10 along the whole sequence."""
  cell, params, h0, xs = _setup("elman", {}, jnp.float64, steps=10_000, batch=1)
  final, ys, diag = parallel.unroll(cell.step, params, h0, xs, solver="quasi")
  parallel.check_converged(diag, "long elman")
  ref_final, ref_ys, _ = _sequential(cell, params, h0, xs)
  _assert_close((final, ys), (ref_final, ref_ys), 1e-10)


@pytest.mark.parametrize("solver", ["quasi", "elk", "quasi_elk"])
def test_quasi_and_damped_solvers_reach_newtons_trajectory(solver, x64):
  cell, params, h0, xs = _setup("lstm", {}, jnp.float64)
  newton = parallel.unroll(cell.step, params, h0, xs, solver="newton", return_carries=True)
  other = parallel.unroll(cell.step, params, h0, xs, solver=solver, damping=0.3,
                          return_carries=True)
  parallel.check_converged(other[3], solver)
  assert other[3].solver == solver
  assert bool(jnp.all(other[3].iterations > newton[3].iterations))  # slower, same answer
  _assert_close(other[:3], newton[:3], 1e-10)


@pytest.mark.parametrize("name,options,solver", [
    ("elman", {}, "newton"),
    ("lstm", {}, "newton"),
    ("gru", {}, "quasi"),
    ("leaky", {"rate": (1.0, 0.3)}, "elk"),
], ids=["elman-newton", "lstm-newton", "gru-quasi", "leaky-elk"])
def test_gradients_equal_bptt_through_the_scan(name, options, solver, x64):
  """Implicit gradients (adjoint scan) w.r.t. params, h_0 and xs = jax.grad through the scan."""
  cell, params, h0, xs = _setup(name, options, jnp.float64)
  w = jax.random.normal(jax.random.key(7), (H,), jnp.float64)

  def loss(run):
    def f(params, h0, xs):
      final, ys = run(params, h0, xs)[:2]
      return jnp.sum(jnp.sin(ys @ w)) + sum(jnp.sum(a ** 2) for a in jax.tree.leaves(final))
    return jax.grad(f, argnums=(0, 1, 2))

  seq = loss(lambda p, h, x: unroll.scan(cell.step, p, h, x, backend="scan"))(params, h0, xs)
  par = loss(lambda p, h, x: parallel.unroll(cell.step, p, h, x, solver=solver, damping=0.3))(
      params, h0, xs)
  _assert_close(par, seq, atol=1e-9, rtol=1e-8)


def _chaotic(gain=3.0, steps=200):
  """Elman tanh with W ~ N(0, g^2 / H), g = 3: chaotic, long sequences do not linearise."""
  cell, params, h0, xs = _setup("elman", {}, jnp.float32, steps=steps)
  W = gain * jax.random.normal(jax.random.key(3), (H, H)) / np.sqrt(H)
  return cell, dict(params, W=W), h0, xs


@pytest.mark.parametrize("solver", ["newton", "quasi"])
def test_chaotic_cell_is_reported_not_converged(solver):
  cell, params, h0, xs = _chaotic()
  _, _, diag = parallel.unroll(cell.step, params, h0, xs, solver=solver, max_iters=10)
  assert not bool(jnp.any(diag.converged))
  with pytest.raises(ValueError, match=rf"chaotic elman: .*solver='{solver}'.*2 of 2 .*tol"):
    parallel.check_converged(diag, "chaotic elman")
  grads = jax.grad(lambda p: jnp.sum(
      parallel.unroll(cell.step, p, h0, xs, solver=solver, max_iters=10)[1]))(params)
  assert bool(jnp.all(jnp.isnan(grads["W"])))  # never a silently wrong gradient


def test_nan_stops_that_sequence_only():
  cell, params, h0, xs = _setup("gru", {})
  xs = xs.at[1, 5, 0].set(jnp.nan)
  _, _, diag = parallel.unroll(cell.step, params, h0, xs)
  assert diag.converged.tolist() == [True, False]
  assert bool(jnp.isnan(diag.residual[1])) and int(diag.iterations[1]) == 0
  with pytest.raises(ValueError, match=r"1 of 2 sequences.*residual .* is nan \(diverged\)"):
    parallel.check_converged(diag, "gru")


def test_jit_and_vmap_over_a_population_of_params():
  cell, _, h0, xs = _setup("lstm", {})
  population = [_setup("lstm", {}, seed=s)[1] for s in range(3)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *population)
  run = jax.jit(jax.vmap(lambda p: parallel.unroll(cell.step, p, h0, xs, solver="quasi")))
  final, ys, diag = run(stacked)
  assert diag.converged.shape == (3, B) and bool(jnp.all(diag.converged))
  for k, params in enumerate(population):
    ref_final, ref_ys, _ = _sequential(cell, params, h0, xs)
    member = jax.tree.map(lambda a, k=k: a[k], final)
    _assert_close((member, ys[k]), (ref_final, ref_ys), 1e-5)


def test_initial_guesses(x64):
  cell, params, h0, xs = _setup("elman", {}, jnp.float64)
  ref_final, ref_ys, ref_carries = _sequential(cell, params, h0, xs)
  _, ys, diag = parallel.unroll(cell.step, params, h0, xs, init="carry")
  _assert_close(ys, ref_ys, 1e-10)
  _, ys, diag = parallel.unroll(cell.step, params, h0, xs, init=ref_carries)
  assert diag.iterations.tolist() == [0, 0]  # the solution already: no iteration
  _assert_close(ys, ref_ys, 1e-10)


def test_bad_arguments_raise():
  cell, params, h0, xs = _setup("elman", {})
  with pytest.raises(ValueError, match="unknown parallel solver 'adam'"):
    parallel.unroll(cell.step, params, h0, xs, solver="adam")
  with pytest.raises(ValueError, match="unknown init 'ones'"):
    parallel.unroll(cell.step, params, h0, xs, init="ones")
