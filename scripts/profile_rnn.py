r"""Where a training step's time goes: seqlab on XLA CPU against PyTorch's oneDNN LSTM/GRU.

    python scripts/profile_rnn.py                       # LSTM and GRU, B=32 T=128 I=128 H=256
    python scripts/profile_rnn.py --cells=lstm --H=512   # another size

Each implementation runs in its own process: the median training step (value_and_grad of
mean(y^2) + SGD, params donated; compile excluded), then 5 steps under the profiler.
JAX rows come from `jax.profiler`'s trace: XLA CPU runs a compiled program as a sequence
of thunks (one per fused kernel or library call) and the trace holds one event per thunk
call. They are split into GEMMs (dot and YNNPACK-fused dot thunks) and the rest, each
either inside the time loop (called T or more times per step) or once per step; "kernels
per time step" counts thunk calls / T; the GEMM rate is the recurrent layer's matmul FLOPs
(forward 2(I+H)G per token, training 3x) over the GEMM thunks' time; "idle" is the
profiled steps' wall time during which no thunk runs on any thread (launching the program,
allocating its buffers, Python). PyTorch rows come from `torch.profiler`: aten ops by self
time. The GRU is the torch variant (b_hn inside r * (...)), as in bench_rnn.py.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

GATES = {"lstm": 4, "gru": 3, "elman": 1}
PROFILED_STEPS = 5


def _median_step_s(step, repeats: int = 20) -> float:
  for _ in range(5):
    step()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return sorted(times)[len(times) // 2]


def jax_profile(cell_name: str, fused: bool, B: int, T: int, I: int, H: int) -> dict:
  """Median step and the thunk breakdown of one seqlab training step."""
  import jax
  import jax.numpy as jnp

  from seqlab import cells, unroll
  cell = cells.make(cell_name, **({"variant": "torch"} if cell_name == "gru" else {}))
  params = cell.init(jax.random.key(0), I, H)
  h0 = cell.initial_carry(params, (B,))
  xs = jax.random.normal(jax.random.key(1), (B, T, I))

  def train(p):
    loss = lambda p: jnp.mean(jnp.square(unroll.scan(cell.step, p, h0, xs, fused=fused)[1]))
    value, grads = jax.value_and_grad(loss)(p)
    return jax.tree.map(lambda w, g: w - 1e-3 * g, p, grads), value

  step_fn = jax.jit(train, donate_argnums=0)
  state = {"p": params}

  def step():
    state["p"], value = step_fn(state["p"])
    value.block_until_ready()

  median = _median_step_s(step)
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    start = time.perf_counter()
    for _ in range(PROFILED_STEPS):
      step()
    wall = 1e3 * (time.perf_counter() - start)
    jax.profiler.stop_trace()
    path = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]
    trace = json.load(gzip.open(path))
  events = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
  calls = collections.Counter(e["name"] for e in events)
  # Runtime bookkeeping (ThunkExecutor::, ThreadpoolListener::, PjRt...::, Python "$..."
  # frames) has qualified names; thunks are named after their HLO ops ("ynn_fusion.2").
  thunks = [e for e in events if "::" not in e["name"] and not e["name"].startswith("$")]
  kinds = collections.Counter()
  for e in thunks:
    gemm = e["name"].startswith(("ynn_fusion", "dot"))
    in_loop = calls[e["name"]] >= T * PROFILED_STEPS
    kinds[("gemm" if gemm else "other") + ("_loop" if in_loop else "_once")] += e["dur"] / 1e3
  per_step = {k: v / PROFILED_STEPS for k, v in kinds.items()}
  gemm_ms = per_step.get("gemm_loop", 0) + per_step.get("gemm_once", 0)
  return {"median_ms": 1e3 * median, "profiled_ms": wall / PROFILED_STEPS,
          "kernels_per_t": len(thunks) / PROFILED_STEPS / T, **per_step,
          "gemm_gflops": _train_flops(cell_name, B, T, I, H) / gemm_ms / 1e6,
          "idle_ms": (wall - _covered_ms(thunks)) / PROFILED_STEPS}


def _covered_ms(events: list[dict]) -> float:
  """The time during which at least one of `events` runs (on any thread), in ms."""
  covered, end = 0.0, float("-inf")
  for e in sorted(events, key=lambda e: e["ts"]):
    start, stop = e["ts"], e["ts"] + e["dur"]
    covered += max(0.0, stop - max(start, end))
    end = max(end, stop)
  return covered / 1e3


def torch_profile(cell_name: str, B: int, T: int, I: int, H: int) -> dict:
  """Median step and aten ops by self time of one PyTorch training step."""
  import torch
  from torch.profiler import ProfilerActivity, profile

  torch.manual_seed(0)
  module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "elman": torch.nn.RNN}[cell_name](
      I, H, batch_first=True)
  xs = torch.randn(B, T, I)
  optimizer = torch.optim.SGD(module.parameters(), lr=1e-3)

  def step():
    optimizer.zero_grad(set_to_none=True)
    ys, _ = module(xs)
    ys.square().mean().backward()
    optimizer.step()

  median = _median_step_s(step)
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(PROFILED_STEPS):
      step()
  ops = sorted(prof.key_averages(), key=lambda a: -a.self_cpu_time_total)
  total = sum(a.self_cpu_time_total for a in ops) / 1e3 / PROFILED_STEPS
  top = [(a.key, a.self_cpu_time_total / 1e3 / PROFILED_STEPS, a.count / PROFILED_STEPS)
         for a in ops[:3]]
  return {"median_ms": 1e3 * median, "profiled_ms": total, "top": top,
          "ops_per_step": sum(a.count for a in ops) / PROFILED_STEPS}


def _train_flops(cell_name: str, B: int, T: int, I: int, H: int) -> float:
  """Matmul FLOPs of one training step: 3 x forward's 2 (I + H) G per token."""
  return 3 * 2 * (I + H) * GATES[cell_name] * H * B * T


def _in_process(spec: dict) -> dict:
  proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                        capture_output=True, text=True, check=False)
  if proc.returncode != 0:
    raise RuntimeError(f"worker {spec} failed:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--cells", default="lstm,gru")
  for name, default in (("B", 32), ("T", 128), ("I", 128), ("H", 256)):
    parser.add_argument(f"--{name}", type=int, default=default)
  parser.add_argument("--no_torch", action="store_true")
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    spec = json.loads(args.worker)
    fn = torch_profile if spec.pop("framework") == "torch" else jax_profile
    print(json.dumps(fn(**spec)))
    return
  size = dict(B=args.B, T=args.T, I=args.I, H=args.H)
  with_torch = not args.no_torch and _has_torch()
  print(f"B={args.B} T={args.T} I={args.I} H={args.H}, training step, ms per step "
        f"(median of 20; profiled: the mean of {PROFILED_STEPS} steps under the profiler); "
        f"load average {os.getloadavg()[0]:.1f}\n")
  print("| cell | implementation | step ms | profiled ms | GEMM ms (in loop / once) | "
        "other kernels ms (in loop / once) | idle ms | kernels per time step | "
        "GEMM GFLOP/s | PyTorch's top ops (self ms per step x calls) |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for cell in args.cells.split(","):
    for label, fused in (("seqlab plain scan", False), ("seqlab fast path", True)):
      r = _in_process(dict(framework="jax", cell_name=cell, fused=fused, **size))
      print(f"| {cell} | {label} | {r['median_ms']:.1f} | {r['profiled_ms']:.1f} | "
            f"{r.get('gemm_loop', 0):.1f} / {r.get('gemm_once', 0):.1f} | "
            f"{r.get('other_loop', 0):.1f} / {r.get('other_once', 0):.1f} | "
            f"{r['idle_ms']:.1f} | {r['kernels_per_t']:.0f} | {r['gemm_gflops']:.0f} | - |")
    if with_torch:
      r = _in_process(dict(framework="torch", cell_name=cell, **size))
      top = "; ".join(f"{k} {ms:.1f} x {n:g}" for k, ms, n in r["top"])
      print(f"| {cell} | PyTorch (oneDNN) | {r['median_ms']:.1f} | {r['profiled_ms']:.1f} | "
            f"- | - | - | {r['ops_per_step']:.0f} aten ops per step | - | {top} |")


def _has_torch() -> bool:
  import importlib.util
  return importlib.util.find_spec("torch") is not None


if __name__ == "__main__":
  main()
