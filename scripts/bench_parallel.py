r"""The parallel unroll (Newton on the trajectory) against the sequential scan: time per call.

For each (B, T, D) a tanh Elman layer in its contracting regime (recurrent weights of
spectral norm ~0.5, so Newton converges in a few iterations) runs forward and as a training
step (loss and gradients) three ways, checked equal first:

  scan     `unroll.scan(..., backend="scan")`: T steps one after another;
  newton   `backend="parallel"`, dense Jacobians (DEER): each iteration is a prefix scan
           of T [D, D] matrix products, O(log T) deep;
  quasi    diagonal Jacobians (quasi-DEER): elementwise prefix scans.

Each method is compiled on its own (the seconds are reported apart), then timed round-robin
(scan, newton, quasi, scan, ...) so machine noise hits all alike; the table gives the median
milliseconds per call, Newton's iterations, and each method's time over the scan's (< 1:
faster than the scan).

    .venv/bin/python scripts/bench_parallel.py            # the CPU grid (~5 min on 2 cores)
    .venv/bin/python scripts/bench_parallel.py --quick    # seconds
    python scripts/bench_parallel.py --gpu                # the GPU grid, on a machine with one
"""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from seqlab import cells, unroll
from seqlab.analysis import report

METHODS = {"scan": None, "newton": "newton", "quasi": "quasi"}
CPU_GRID = [(8, 100, 8), (8, 1000, 8), (8, 10000, 8), (8, 1000, 32), (8, 1000, 128)]
GPU_GRID = [(8, 1000, 8), (8, 10000, 8), (8, 100000, 8), (8, 10000, 32), (8, 10000, 64)]

_QUICK = flags.DEFINE_bool("quick", False, "Two tiny cases, few repeats: a smoke run.")
_GPU = flags.DEFINE_bool("gpu", False, "The GPU grid (longer T); needs JAX's GPU backend.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed calls per method and pass.")
_DENSE_MAX = flags.DEFINE_integer("dense_max_elements", 2 ** 27, "Skip Newton where B T D^2 "
                                  "(its Jacobians' entries) exceeds this.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Also write bench_parallel.md here.")


def layer(B: int, T: int, D: int, seed: int = 0):
  """A contracting tanh Elman layer of width D on inputs [B, T, D], and its initial state."""
  cell = cells.make("elman")
  params = cell.init(jax.random.PRNGKey(seed), D, D)
  W = jax.random.normal(jax.random.PRNGKey(seed + 1), (D, D))
  params = {**params, "W": 0.5 * W / jnp.linalg.norm(W, 2)}
  xs = jax.random.normal(jax.random.PRNGKey(seed + 2), (B, T, D))
  return cell.step, params, cell.initial_carry(params, (B,)), xs


def programs(step, solver: str | None):
  """(forward, training step) of one method, each jitted: xs -> ys, and -> (loss, grads)."""
  backend = "scan" if solver is None else "parallel"
  options = None if solver is None else {"solver": solver}

  def forward(params, carry, xs):
    return unroll.scan(step, params, carry, xs, backend=backend, parallel_options=options)[1]

  def loss(params, carry, xs):
    return jnp.mean(forward(params, carry, xs) ** 2)

  return jax.jit(forward), jax.jit(jax.value_and_grad(loss))


def iterations(step, params, carry, xs, solver: str) -> int:
  from seqlab.unroll import parallel
  *_, d = parallel.unroll(step, params, carry, xs, solver=solver)
  parallel.check_converged(d, f"bench {solver}")
  return int(np.max(d.iterations))


def bench_case(B: int, T: int, D: int, repeats: int) -> list[list]:
  """Rows (B, T, D, pass, method, compile s, median ms, ratio to scan, iterations)."""
  step, params, carry, xs = layer(B, T, D)
  methods = {m: s for m, s in METHODS.items() if not (m == "newton" and B * T * D * D >
                                                      _DENSE_MAX.value)}
  compiled, compile_s = {}, {}
  for name, solver in methods.items():
    for i, fn in enumerate(programs(step, solver)):
      t0 = time.perf_counter()
      compiled[name, i] = fn.lower(params, carry, xs).compile()
      compile_s[name, i] = time.perf_counter() - t0
  ref = [compiled["scan", i](params, carry, xs) for i in range(2)]
  for (name, i), fn in compiled.items():  # equal before timed
    for got, want in zip(jax.tree.leaves(fn(params, carry, xs)), jax.tree.leaves(ref[i]),
                         strict=True):
      np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4, err_msg=name)
  times = {key: [] for key in compiled}
  for _ in range(repeats):
    for key, fn in compiled.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fn(params, carry, xs))
      times[key].append(time.perf_counter() - t0)
  iters = {m: iterations(step, params, carry, xs, s) for m, s in methods.items() if s}
  rows = []
  for i, pass_ in enumerate(("forward", "training")):
    scan_ms = 1e3 * statistics.median(times["scan", i])
    for name in methods:
      ms = 1e3 * statistics.median(times[name, i])
      rows.append([B, T, D, pass_, name, compile_s[name, i], ms, ms / scan_ms,
                   iters.get(name, T)])
  return rows


def main(argv):
  del argv
  if _GPU.value and jax.default_backend() != "gpu":
    raise SystemExit(f"--gpu: JAX's backend is {jax.default_backend()!r}, not gpu")
  grid = [(2, 50, 4), (2, 200, 8)] if _QUICK.value else GPU_GRID if _GPU.value else CPU_GRID
  repeats = 2 if _QUICK.value else _REPEATS.value
  rows = []
  for case in grid:
    rows += bench_case(*case, repeats)
    print(f"done B, T, D = {case}", flush=True)
  headers = ["B", "T", "D", "pass", "method", "compile s", "median ms", "time / scan's",
             "iterations"]
  table = report.markdown_table(headers, rows, digits=3)
  device = jax.devices()[0].device_kind
  text = (f"# Parallel unroll against the scan ({device}, {jax.default_backend()})\n\n{table}\n"
          "tanh Elman, contracting (||W|| = 0.5), float32; median of "
          f"{repeats} round-robin calls; iterations: Newton's (the scan's: T steps).\n")
  print(text)
  if _OUTPUT_DIR.value:
    report.write_text(_OUTPUT_DIR.value, "bench_parallel.md", text)


if __name__ == "__main__":
  app.run(main)
