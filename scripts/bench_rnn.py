r"""seqlab's LSTM, GRU and Elman layers against PyTorch and flax: one markdown table.

    python scripts/bench_rnn.py            # the full table (over 8 minutes on 2 cores)
    python scripts/bench_rnn.py --quick    # tiny sizes, one round: a smoke run
    python scripts/bench_rnn.py --gpu      # on a GPU: adds B=64 T=256 H=1024, cuDNN rows

Cases (CASES, in table order): "B32 T64 I16 H128", the size of the copy/adding runs and of
one sweep member; "pop32 B32 T64 I16 H128", a population of 32 such independent LSTMs (and
GRUs), each with its own params and inputs, trained together (lstm and gru only); B=32
I=128 layers at H 256 and 512, T 128 and 512, and in bfloat16; the batch-1 step.

Protocol: every (case, framework, round) runs in its own process (`bench_rnn_worker.py`);
JAX and PyTorch processes alternate, the order flipping each round, so that machine noise
hits both alike; implementations are shuffled within a process. A row gives the median
of all timed calls and the spread (slowest-fastest call) in thousands of tokens per second
(B*T per call), GFLOP/s of the recurrent layer's matmuls (forward 2*(I+H)*G per token for
G gate columns, training 3x that), the ratio to PyTorch (PyTorch's median time / this
row's, so >1 means faster than PyTorch), and compile time apart.
Forward = the layer alone; training step = value_and_grad of mean(y^2) + an SGD update,
params donated. The batch-1 case times one step per call with the carry fed back (the
autocompletion loop): its rows are thousands of steps per second and microseconds.
The population case times the training step only: JAX runs every member's step in one
jitted program (`jax.vmap` over a leading member axis of params, carry and inputs),
PyTorch trains `members` separate nn.LSTM/nn.GRU modules one after another in a Python
loop. Its rows give milliseconds per member-step (time per call / members; tokens per
second count every member's B*T) and the ratio PyTorch ms per member-step / seqlab ms per
member-step: >1 means seqlab trains the population faster.
JAX rows are labelled by the backend that ran them ("seqlab (oneDNN)": unroll.scan's
default on CPU; "seqlab scan": backend="scan", what seqlab ran before oneDNN).
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

# name -> B, T, I, H, dtype, kind (+ members for a population; cells: the cells it runs)
CASES = {
    "B32 T64 I16 H128": dict(B=32, T=64, I=16, H=128, dtype="float32", kind="seq"),
    "pop32 B32 T64 I16 H128": dict(B=32, T=64, I=16, H=128, dtype="float32",
                                   kind="population", members=32, cells=["lstm", "gru"]),
    "T128 H256": dict(B=32, T=128, I=128, H=256, dtype="float32", kind="seq"),
    "T128 H512": dict(B=32, T=128, I=128, H=512, dtype="float32", kind="seq"),
    "T512 H256": dict(B=32, T=512, I=128, H=256, dtype="float32", kind="seq"),
    "bf16 T128 H256": dict(B=32, T=128, I=128, H=256, dtype="bfloat16", kind="seq"),
    "B1 step H256": dict(B=1, T=1, I=128, H=256, dtype="float32", kind="step"),
}
GPU_CASES = {"B64 T256 H1024": dict(B=64, T=256, I=1024, H=1024, dtype="float32", kind="seq")}
QUICK_CASES = {  # every kind at tiny sizes
    "quick B4 T8 I4 H16": dict(B=4, T=8, I=4, H=16, dtype="float32", kind="seq"),
    "quick pop2 B4 T8 I4 H16": dict(B=4, T=8, I=4, H=16, dtype="float32", kind="population",
                                    members=2, cells=["lstm", "gru"]),
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
      case_cells = [c for c in cells if c in case.get("cells", cells)]
      if not case_cells:
        continue
      for framework in order:
        for rec in run_worker(framework, dict(case, gpu=args.gpu), case_cells, args, seed=r):
          entry = results.setdefault((case_name, rec["cell"], rec["impl"], rec["pass_"]),
                                     {"times": [], "compile_s": []})
          entry["times"] += rec["times"]
          entry["compile_s"].append(rec["compile_s"])
      print(f"round {r + 1}/{args.rounds} {case_name} done", file=sys.stderr, flush=True)
  return results


def _tokens(case: dict) -> int:
  """Tokens (or steps) per call: every member's for a population."""
  return case.get("members", 1) * case["B"] * case["T"]


def _rate(case: dict, seconds: float) -> float:
  """Thousands of tokens (or steps) per second."""
  return _tokens(case) / seconds / 1e3


def _gflops(case: dict, cell: str, pass_: str, seconds: float) -> float:
  per_token = 2 * (case["I"] + case["H"]) * GATES[cell] * case["H"] * (3 if pass_ == "train" else 1)
  return per_token * _tokens(case) / seconds / 1e9


def _speed(case: dict, times: list[float]) -> str:
  """One rate cell: the median rate and, per kind, its spread or the time per step."""
  med = statistics.median(times)
  if case["kind"] == "step":
    return (f"{_rate(case, med):.1f} ({med * 1e6:.0f} us; "
            f"{min(times) * 1e6:.0f}-{max(times) * 1e6:.0f})")
  if case["kind"] == "population":  # time per call / members: one member's training step
    ms = 1e3 / case["members"]
    return (f"{_rate(case, med):.1f} ({med * ms:.3f} ms/member-step; "
            f"{min(times) * ms:.3f}-{max(times) * ms:.3f})")
  return f"{_rate(case, med):.1f} ({_rate(case, max(times)):.1f}-{_rate(case, min(times)):.1f})"


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
          med = statistics.median(entry["times"])
          cols["rate"].append(_speed(case, entry["times"]))
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
