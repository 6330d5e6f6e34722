"""oneDNN's fused RNN backend against the plain scan: values, final carries, gradients
(params, initial carry, inputs), vmapped populations, bfloat16, and every path that falls
back to the scan, saying why."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from config_testing import make_config

from seqlab import cells, unroll
from seqlab.train import modes
from seqlab.unroll import onednn

ROOT = Path(__file__).resolve().parent.parent
B, T, I, H = 3, 7, 5, 6
CELLS = {  # id -> (family, options): every cell oneDNN runs
    "lstm": ("lstm", {}),
    "gru-cho": ("gru", {}),
    "gru-torch": ("gru", {"variant": "torch"}),
    "elman-tanh": ("elman", {}),
    "elman-relu": ("elman", {"activation": "relu"}),
}

# CI builds the handler and must run these tests; elsewhere they skip, saying why.
if onednn.unavailable() and not os.environ.get("CI"):
  pytest.skip(f"oneDNN backend unavailable: {onednn.unavailable()}", allow_module_level=True)


def _setup(family, options, key=0, dtype=jnp.float32):
  """A cell with every parameter away from its initial value and a nonzero initial carry."""
  cell = cells.make(family, **options)
  k_p, k_n, k_x, k_h = jax.random.split(jax.random.key(key), 4)
  params = cell.init(k_p, I, H)
  params = {k: v + 0.3 * jax.random.normal(jax.random.fold_in(k_n, i), v.shape)
            for i, (k, v) in enumerate(sorted(params.items()))}
  carry = jax.tree.map(lambda a: 0.5 * jax.random.normal(k_h, a.shape),
                       cell.initial_carry(params, (B,)))
  xs = jax.random.normal(k_x, (B, T, I))
  cast = lambda tree: jax.tree.map(lambda a: a.astype(dtype), tree)
  return cell, cast(params), cast(carry), cast(xs)


def _loss(step, backend, reverse=False):
  """A loss that weighs every output and the whole final carry differently."""
  def loss(params, carry, xs):
    final, ys = unroll.scan(step, params, carry, xs, reverse=reverse, backend=backend)
    ys = ys.astype(jnp.float32)
    weights = jnp.cos(jnp.arange(ys.size, dtype=jnp.float32)).reshape(ys.shape)
    return jnp.sum(ys * weights) + sum(jnp.sum(jnp.sin(leaf.astype(jnp.float32)))
                                       for leaf in jax.tree.leaves(final))
  return loss


def _values_and_grads(step, backend, params, carry, xs, reverse=False):
  loss = _loss(step, backend, reverse)
  outputs = unroll.scan(step, params, carry, xs, reverse=reverse, backend=backend)
  return outputs, jax.grad(loss, argnums=(0, 1, 2))(params, carry, xs)


def _max_error(a, b) -> float:
  errors = jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(jnp.asarray(x, jnp.float32)
                                                           - jnp.asarray(y, jnp.float32)))), a, b)
  return max(jax.tree.leaves(errors))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name", CELLS)
def test_values_carries_and_gradients_equal_the_scan(name, reverse):
  cell, params, carry, xs = _setup(*CELLS[name])
  assert unroll.choose(cell.step, params, carry, xs) == ("onednn", None)
  got = _values_and_grads(cell.step, "onednn", params, carry, xs, reverse)
  want = _values_and_grads(cell.step, "scan", params, carry, xs, reverse)
  jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6), got, want)


@pytest.mark.parametrize("name", ["lstm", "gru-torch"])
def test_a_vmapped_population_equals_each_member_on_the_scan(name):
  """Members with their own params and inputs, looped inside one call, under jit."""
  family, options = CELLS[name]
  members = [_setup(family, options, key=k) for k in range(3)]
  cell = members[0][0]
  stack = lambda i: jax.tree.map(lambda *a: jnp.stack(a), *[m[i] for m in members])
  params, carry, xs = stack(1), stack(2), stack(3)
  population = jax.jit(jax.vmap(lambda p, c, x: _values_and_grads(cell.step, "onednn", p, c, x)))
  got = population(params, carry, xs)
  for k, (_, p, c, x) in enumerate(members):
    want = _values_and_grads(cell.step, "scan", p, c, x)
    jax.tree.map(lambda g, w, k=k: np.testing.assert_allclose(g[k], w, rtol=2e-5, atol=2e-6),
                 got, want)


def test_shared_params_with_vmapped_inputs():
  cell, params, carry, xs = _setup("lstm", {})
  run = lambda backend: jax.vmap(lambda x: unroll.scan(cell.step, params, carry, x,
                                                       backend=backend))(jnp.stack([xs, -xs]))
  jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6),
               run("onednn"), run("scan"))


@pytest.mark.parametrize("name", ["lstm", "gru-torch"])
def test_bfloat16_is_as_close_to_float32_as_the_bfloat16_scan(name):
  """oneDNN's bfloat16 (f32 cell state, bias and gradients) against the float32 scan: its
  error is within 2x the bfloat16 scan's own (measured: 0.5-1.2x)."""
  family, options = CELLS[name]
  cell, params, carry, xs = _setup(family, options)
  cell16, params16, carry16, xs16 = _setup(family, options, dtype=jnp.bfloat16)
  if unroll.choose(cell.step, params16, carry16, xs16)[0] != "onednn":
    pytest.skip(unroll.choose(cell.step, params16, carry16, xs16)[1])
  exact = _values_and_grads(cell.step, "scan", params, carry, xs)
  onednn_error = _max_error(_values_and_grads(cell.step, "onednn", params16, carry16, xs16), exact)
  scan_error = _max_error(_values_and_grads(cell.step, "scan", params16, carry16, xs16), exact)
  assert onednn_error <= 2 * scan_error + 1e-3, (onednn_error, scan_error)


def test_a_wrong_gate_order_is_caught(monkeypatch):
  """The parity comparison above can fail: the GRU with seqlab's own gate order (r, z, n)
  handed to oneDNN (which wants u = z, r, o) disagrees with the scan."""
  cell, params, carry, xs = _setup("gru", {})
  monkeypatch.setattr(onednn, "_gru_weights", lambda p: (p["U"], p["W"], p["b"]))
  got = _values_and_grads(cell.step, "onednn", params, carry, xs)
  want = _values_and_grads(cell.step, "scan", params, carry, xs)
  assert _max_error(got, want) > 1e-2


FALLBACKS = {  # id -> (family, options, scan kwargs, what the reason says)
    "lengths": ("lstm", {}, {"lengths": jnp.array([7, 3, 1])}, "lengths"),
    "return_carries": ("gru", {}, {"return_carries": True}, "return_carries"),
    "peephole": ("lstm", {"peephole": True}, {}, "p_f"),
    "coupled": ("lstm", {"coupled": True}, {}, "coupled"),
    "layer_norm": ("lstm", {"layer_norm": True}, {}, "ln_"),
    "gru_layer_norm": ("gru", {"layer_norm": True}, {}, "layer norm"),
    "elman_sigmoid": ("elman", {"activation": "sigmoid"}, {}, "sigmoid"),
    "leaky": ("leaky", {}, {}, "leaky"),
}


@pytest.mark.parametrize("name", FALLBACKS)
def test_what_onednn_lacks_runs_on_the_scan_and_says_why(name):
  family, options, kwargs, reason = FALLBACKS[name]
  cell, params, carry, xs = _setup(family, options)
  path, why = unroll.choose(cell.step, params, carry, xs, **kwargs)
  assert path == "scan" and reason in why
  got = unroll.scan(cell.step, params, carry, xs, **kwargs)
  want = unroll.plain.scan(cell.step, params, carry, xs, **kwargs)
  jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6), got, want)
  with pytest.raises(ValueError, match=f"backend='onednn' cannot run this layer: .*{reason}"):
    unroll.scan(cell.step, params, carry, xs, backend="onednn", **kwargs)


def test_a_single_step_runs_on_the_scan():
  cell, params, carry, xs = _setup("lstm", {})
  path, why = unroll.choose(cell.step, params, carry, xs[:, :1])
  assert path == "scan" and "single time step" in why


def test_mixed_dtypes_fall_back():
  cell, params, carry, xs = _setup("lstm", {})
  path, why = unroll.choose(cell.step, params, carry, xs.astype(jnp.bfloat16))
  assert path == "scan" and "dtype" in why


def test_twenty_steps_train_to_the_same_metrics_on_onednn_and_scan(tmp_path):
  """The char LM (truncated BPTT, k1 = k2: whole windows through the layer) trained 20 steps
  with backend=onednn and backend=scan: the same losses and validation metrics."""
  results = {}
  for backend in ("onednn", "scan"):
    overrides = {"model.backend": backend, "model.hidden_size": 32, "train.num_steps": 20,
                 "train.eval_every": 20, "train.checkpoint_every": 20,
                 "task.options.max_chars": 20000, "train.seq_len": 16, "train.tbptt_k2": 16}
    workdir = tmp_path / backend
    modes.train(make_config("char_lstm", None, overrides, tmp_path / "data"), str(workdir))
    results[backend] = [json.loads(line) for line in
                        (workdir / "metrics.jsonl").read_text().splitlines()]
  got, want = results["onednn"], results["scan"]
  assert [r["split"] for r in got] == [r["split"] for r in want]
  assert len([r for r in got if r["split"] == "train"]) == 20
  for g, w in zip(got, want, strict=True):
    for key in ("loss", "bits_per_char"):
      if key in w:
        np.testing.assert_allclose(g[key], w[key], rtol=1e-4, err_msg=f"{g} vs {w}")


def test_without_a_compiler_the_demo_runs_on_the_scan_and_says_why(tmp_path):
  """PATH without a C++ compiler and an empty handler cache: one line names the cause, the
  layer runs on the scan, training finishes."""
  empty_bin = tmp_path / "bin"
  empty_bin.mkdir()
  env = {k: v for k, v in os.environ.items() if k != "CXX"}
  env |= {"PATH": str(empty_bin), "SEQLAB_CACHE": str(tmp_path / "cache")}
  command = [sys.executable, "-m", "seqlab.main", "--config=configs/char_lstm.py",
             f"--workdir={tmp_path / 'run'}", "--config.train.num_steps=3",
             "--config.train.eval_every=3", "--config.train.log_every=1",
             "--config.train.eval_batches=1", "--config.model.hidden_size=16",
             "--config.train.batch_size=4", "--config.train.seq_len=16",
             "--config.train.tbptt_k2=16",
             "--config.task.options.max_chars=20000", f"--config.task.data_dir={tmp_path}",
             "--config.decode.max_len=2"]
  proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.splitlines()
  unavailable = [line for line in lines if "oneDNN's RNN backend is unavailable" in line]
  assert len(unavailable) == 1 and "no C++ compiler" in unavailable[0], proc.stdout[:2000]
  assert any("layer recurrent (gru, H=16): scan" in line for line in lines), proc.stdout[:2000]
  assert "step      3/3" in proc.stdout or "3/3" in proc.stdout
