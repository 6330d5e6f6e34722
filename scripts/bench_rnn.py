r"""seqlab's LSTM, GRU and Elman layers against PyTorch and flax: one markdown table.

    python scripts/bench_rnn.py            # the full table (about 8 minutes on 2 cores)
    python scripts/bench_rnn.py --quick    # tiny sizes, one round: a smoke run
    python scripts/bench_rnn.py --gpu      # on a GPU: adds B=64 T=256 H=1024, cuDNN rows

Protocol: every (case, framework, round) runs in its own process (`bench_rnn_worker.py`);
JAX and PyTorch processes alternate, the order flipping each round, so that machine noise
hits both alike; implementations are shuffled within a process. A row gives the median
of all timed calls and the spread (slowest-fastest call) in thousands of tokens per second
(B*T per call), GFLOP/s of the recurrent layer's matmuls (forward 2*(I+H)*G per token for
G gate columns, training 3x that), the ratio to PyTorch, and compile time apart.
Forward = the layer alone; training step = value_and_grad of mean(y^2) + an SGD update,
params donated. The batch-1 case times one step per call with the carry fed back (the
autocompletion loop): its rows are thousands of steps per second and microseconds.
PyTorch (`pip install -e .[bench]`) is optional: without it the table has JAX rows only.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

CASES = {  # name -> B, T, I, H, dtype, kind
    "T128 H256": dict(B=32, T=128, I=128, H=256, dtype="float32", kind="seq"),
    "T128 H512": dict(B=32, T=128, I=128, H=512, dtype="float32", kind="seq"),
    "T512 H256": dict(B=32, T=512, I=128, H=256, dtype="float32", kind="seq"),
    "bf16 T128 H256": dict(B=32, T=128, I=128, H=256, dtype="bfloat16", kind="seq"),
    "B1 step H256": dict(B=1, T=1, I=128, H=256, dtype="float32", kind="step"),
}
GPU_CASES = {"B64 T256 H1024": dict(B=64, T=256, I=1024, H=1024, dtype="float32", kind="seq")}
QUICK_CASES = {
    "quick T8 H16": dict(B=4, T=8, I=8, H=16, dtype="float32", kind="seq"),
    "quick B1 step H16": dict(B=1, T=1, I=8, H=16, dtype="float32", kind="step"),
}
GATES = {"lstm": 4, "gru": 3, "elman": 1}
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_rnn_worker.py")


def run_worker(framework: str, case: dict, cells: list[str], args, seed: int) -> list[dict]:
  """One worker process; its records (raises with the worker's stderr if it fails)."""
  spec = dict(framework=framework, case=case, cells=cells, repeats=args.repeats,
              warmup=args.warmup, seed=seed)
  proc = subprocess.run([sys.executable, WORKER, json.dumps(spec)], capture_output=True,
                        text=True, check=False)
  if proc.returncode != 0:
    raise RuntimeError(f"{framework} worker failed on {case}:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def collect(cases: dict, cells: list[str], frameworks: list[str], args) -> dict:
  """(case, cell, impl, pass) -> {"times": [...], "compile_s": [...]} over all rounds."""
  results: dict = {}
  for r in range(args.rounds):
    for case_name, case in cases.items():
      order = frameworks if r % 2 == 0 else frameworks[::-1]
      for framework in order:
        for rec in run_worker(framework, dict(case, gpu=args.gpu), cells, args, seed=r):
          entry = results.setdefault((case_name, rec["cell"], rec["impl"], rec["pass_"]),
                                     {"times": [], "compile_s": []})
          entry["times"] += rec["times"]
          entry["compile_s"].append(rec["compile_s"])
      print(f"round {r + 1}/{args.rounds} {case_name} done", file=sys.stderr, flush=True)
  return results


def _rate(case: dict, seconds: float) -> float:
  """Thousands of tokens (or steps) per second."""
  return case["B"] * case["T"] / seconds / 1e3


def _gflops(case: dict, cell: str, pass_: str, seconds: float) -> float:
  per_token = 2 * (case["I"] + case["H"]) * GATES[cell] * case["H"] * (3 if pass_ == "train" else 1)
  return per_token * case["B"] * case["T"] / seconds / 1e9


def table(cases: dict, cells: list[str], results: dict) -> str:
  """The markdown table: one row per (case, cell, implementation)."""
  lines = ["| case | cell | implementation | fwd k tok/s (spread) | train k tok/s (spread) "
           "| GFLOP/s fwd / train | vs PyTorch fwd / train | compile s fwd / train |",
           "|---|---|---|---|---|---|---|---|"]
  for case_name, case in cases.items():
    for cell in cells:
      impls = sorted({k[2] for k in results if k[:2] == (case_name, cell)},
                     key=lambda n: (n.startswith("PyTorch"), n))
      torch_name = next((n for n in impls if n.startswith("PyTorch")), None)
      for impl in impls:
        cols = {"rate": [], "gflops": [], "ratio": [], "compile": []}
        for pass_ in ("fwd", "train"):
          entry = results.get((case_name, cell, impl, pass_))
          if entry is None:
            for c in cols.values():
              c.append("-")
            continue
          t = entry["times"]
          med = statistics.median(t)
          if case["kind"] == "step":
            cols["rate"].append(f"{_rate(case, med):.1f} ({med * 1e6:.0f} us; "
                                f"{min(t) * 1e6:.0f}-{max(t) * 1e6:.0f})")
          else:
            cols["rate"].append(f"{_rate(case, med):.1f} ({_rate(case, max(t)):.1f}-"
                                f"{_rate(case, min(t)):.1f})")
          cols["gflops"].append(f"{_gflops(case, cell, pass_, med):.0f}")
          ref = results.get((case_name, cell, torch_name, pass_)) if torch_name else None
          cols["ratio"].append(f"{statistics.median(ref['times']) / med:.2f}x" if ref else "-")
          cols["compile"].append(f"{statistics.median(entry['compile_s']):.2f}"
                                 if not impl.startswith("PyTorch") else "-")
        lines.append(f"| {case_name} | {cell} | {impl} | {cols['rate'][0]} | {cols['rate'][1]} "
                     f"| {' / '.join(cols['gflops'])} | {' / '.join(cols['ratio'])} "
                     f"| {' / '.join(cols['compile'])} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes, one round (smoke run)")
  parser.add_argument("--gpu", action="store_true", help="add the GPU case and cuDNN rows")
  parser.add_argument("--cases", default=None, help="comma-separated case names")
  parser.add_argument("--cells", default="lstm,gru,elman")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--repeats", type=int, default=3, help="timed calls per process")
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--no_torch", action="store_true", help="JAX rows only")
  args = parser.parse_args()
  known = {**CASES, **GPU_CASES, **QUICK_CASES}
  if args.quick:
    cases, args.rounds, args.repeats = QUICK_CASES, 1, 2
  elif args.cases:
    unknown = sorted(set(args.cases.split(",")) - set(known))
    if unknown:
      parser.error(f"unknown case(s) {unknown}; known: {sorted(known)}")
    cases = {n: known[n] for n in args.cases.split(",")}
  else:
    cases = {**CASES, **(GPU_CASES if args.gpu else {})}
  cells = args.cells.split(",")
  if unknown := sorted(set(cells) - set(GATES)):
    parser.error(f"unknown cell(s) {unknown}; known: {sorted(GATES)}")
  frameworks = ["jax"]
  if args.no_torch:
    note = "PyTorch rows left out (--no_torch)."
  elif importlib.util.find_spec("torch") is None:
    note = "PyTorch is not installed (`pip install -e .[bench]`): JAX rows only."
  else:
    frameworks.append("torch")
    note = ""
  start = time.perf_counter()
  results = collect(cases, cells, frameworks, args)
  print(table(cases, cells, results))
  load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
  print(f"\n{args.rounds} rounds x {args.repeats} timed calls per implementation; "
        f"{time.perf_counter() - start:.0f} s; load average {load:.1f} on {os.cpu_count()} CPUs. "
        + note)


if __name__ == "__main__":
  main()
