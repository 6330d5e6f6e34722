"""backend="parallel": models and configs unroll their recurrent layer by Newton's method on
the trajectory, and train as the sequential scan does."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from config_testing import make_config

from seqlab import cells, config_check, unroll
from seqlab.train import modes


def test_a_char_lm_trained_in_parallel_over_time_follows_the_scans_loss_curve(tmp_path):
  """The char LM (truncated BPTT, whole windows through the layer) trained 12 steps with
  backend=parallel and backend=scan: the same losses and validation metrics."""
  results = {}
  for backend in ("parallel", "scan"):
    overrides = {"model.backend": backend, "model.hidden_size": 16, "train.num_steps": 12,
                 "train.eval_every": 12, "train.checkpoint_every": 12,
                 "task.options.max_chars": 20000, "train.seq_len": 16, "train.tbptt_k2": 16}
    workdir = tmp_path / backend
    modes.train(make_config("char_lstm", None, overrides, tmp_path / "data"), str(workdir))
    results[backend] = [json.loads(line) for line in
                        (workdir / "metrics.jsonl").read_text().splitlines()]
  got, want = results["parallel"], results["scan"]
  assert len([r for r in got if r["split"] == "train"]) == 12
  assert [r["split"] for r in got] == [r["split"] for r in want]
  for g, w in zip(got, want, strict=True):
    np.testing.assert_allclose(g["loss"], w["loss"], rtol=1e-4, err_msg=f"{g} vs {w}")


def _chaotic_elman(T: int = 120, B: int = 2, H: int = 16, g: float = 3.0):
  cell = cells.make("elman")
  params = cell.init(jax.random.PRNGKey(0), 3, H)
  params = {**params, "W": g * jax.random.normal(jax.random.PRNGKey(1), (H, H)) / H ** 0.5}
  xs = jax.random.normal(jax.random.PRNGKey(2), (B, T, 3))
  return cell, params, cell.initial_carry(params, (B,)), xs


def test_a_layer_that_does_not_converge_gives_nan_and_says_why(capsys):
  """Never a silently wrong trajectory: a chaotic tanh layer with few iterations returns NaN
  outputs and final state, and one line names the solver, the residual and the tolerance."""
  cell, params, carry, xs = _chaotic_elman()
  final, ys = unroll.scan(cell.step, params, carry, xs, backend="parallel",
                          parallel_options={"solver": "newton", "max_iters": 5})
  jax.block_until_ready(ys)
  assert bool(jnp.all(jnp.isnan(ys))) and bool(jnp.all(jnp.isnan(final)))
  out = capsys.readouterr().out
  assert "did not converge for 2 of 2 sequences" in out and "solver='newton'" in out, out
  stable = {**params, "W": params["W"] / 10}  # contracting: converges, equals the scan
  _, ys = unroll.scan(cell.step, stable, carry, xs, backend="parallel",
                      parallel_options={"max_iters": 0, "tol": 0.0})  # 0: the defaults
  _, want = unroll.scan(cell.step, stable, carry, xs, backend="scan")
  np.testing.assert_allclose(ys, want, atol=2e-5)


def test_padded_or_reversed_layers_are_refused_by_name():
  cell, params, carry, xs = _chaotic_elman(T=4)
  with pytest.raises(ValueError, match="backend='parallel' runs whole sequences forwards"):
    unroll.scan(cell.step, params, carry, xs, lengths=jnp.array([2, 4]), backend="parallel")
  with pytest.raises(ValueError, match="no reverse"):
    unroll.scan(cell.step, params, carry, xs, reverse=True, backend="parallel")


def test_an_unknown_solver_is_one_config_error(tmp_path):
  config = make_config("char_lstm", None, {"model.backend": "parallel"}, tmp_path)
  config.model.parallel.solver = "newtn"
  with pytest.raises(ValueError, match="model.parallel.solver"):
    config_check.check(config)
