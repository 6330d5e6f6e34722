"""Study 9: unrolling an RNN in parallel (DEER) takes few Newton iterations iff lambda_1 < 0.

    python experiments/study9_parallel_unroll.py --output_dir=docs/figures
    python experiments/study9_parallel_unroll.py --quick --output_dir=/tmp/s9   # CI, ~40 s

After Gonzalez et al. 2025, "Predictability enables parallelization of nonlinear state space
models" (arXiv 2508.16817): the number of Newton iterations that `seqlab.unroll.parallel`
(DEER: h_1..h_T solved at once, each iteration one parallel prefix scan) needs is governed
by the largest Lyapunov exponent lambda_1 of the recurrence: for lambda_1 < 0 (a predictable,
contracting system) few iterations, flat in T; past lambda_1 ~ 0 they grow towards T.

1. The map h_t = W tanh(h_{t-1}) + u_t, W = g Z / sqrt(D) with Z ~ N(0, 1)^{D x D} (one Z
   per (D, seed), scaled by every g, so each seed's curve in g is one family of matrices),
   u_t ~ N(0, sigma^2) (sigma = 0.1), h_0 = 0, float64. For each (g, D, seed): lambda_1 by
   `analysis.lyapunov.exponents` (Benettin QR) along the sequential trajectory of the
   longest input (at least 2000 steps, the first tenth not counted), and at each T (the
   first T inputs of the same sequence) the iterations of `parallel.unroll(solver="newton")`
   (dense Jacobians) and, for T <= 1000, of "quasi" (diagonal Jacobians), from the zero
   guess, tolerance eps^0.75 = 1.8e-12, with max_iters = min(T, cap), cap = 200 (newton
   and quasi are exact after T iterations, so at T <= cap a run can only fail by overflow).
   A run either converged, hit the cap ("> cap"), or overflowed ("overflow": the iterate
   went non-finite and the solver stopped; the first Newton step from h = 0 solves
   h_t = W h_{t-1} + u_t, which grows like rho(W)^t ~ g^t and passes float64's 1.8e308
   once T log g > 709, e.g. g = 2 at T = 1000 or g >= 1.1 at T = 10^4, whatever lambda_1).
   Converged trajectories are compared with the sequential scan (max |h - h_seq|).
2. Trained cells: a tanh Elman net, an LSTM and a GRU (H = 32; LSTM and GRU with the chrono
   initialisation, T_max = 28) trained briefly (400 Adam steps, batch 32) on the copy task
   (configs/copy.py:cell=...,delay=20,recipe=long_lag without its curriculum: 4 symbols of
   4, delay 20) with seqlab's own population trainer, once at initialisation and once
   trained. Their cell steps (float64 copies of the parameters) are run on copy-task inputs
   (the trained embedding of fresh copy sequences whose delay makes the length T, 3 per T):
   lambda_1 per sequence (the first tenth not counted) and the Newton (and quasi, T <= 1000)
   iterations at T = 100, 1000, 10^4, the same cap.

Writes study9_parallel_unroll.md (the tables), .png (iterations against lambda_1, one colour
per T) and .json: every finished program (one (g, D, seed) of the map, or one cell) is kept
there with the settings it ran under; a rerun skips those whose settings did not change, and
the table and figure are rewritten after each program (--report_only: from the JSON alone).

Measured on 2 CPU cores shared with other jobs (load average 4-6), 2026-12-05:

    python experiments/study9_parallel_unroll.py --output_dir=docs/figures --data_dir=/tmp/data

ran the full default grid, nothing reduced: g in 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0;
D = 16, 32, 64; T = 100, 1000, 10^4; seeds 0, 1, 2 (72 map programs: dense newton at every T,
D = 64 at T = 10^4 included, ~1 s and ~1.6 GB per iteration there; quasi at T <= 1000) and
the three trained cells, in 708 s of wall time (the map 402 s of it, the cells 235 s). The
cells were then rerun alone (the same command: the map came from the JSON cache) to add the
ln rho(J at h=0) column, 238 s; their other numbers came out identical. --quick: 31 s in the
script, 41 s with the interpreter's start.

What it shows (docs/figures/study9_parallel_unroll.md):
  - The map, T = 100 and 1000: the threshold is there. Pooled by lambda_1 (< -0.1, -0.1..-0.03,
    -0.03..0, >= 0) the median Newton iterations are 4 / 9 / 12 / 42 at T = 100 and 4 / 10 /
    45 / (1 of 12 converged: 6 hit the cap of 200, 5 overflowed) at T = 1000: flat in T for
    lambda_1 below about -0.05, growing with T as lambda_1 -> 0-, failing past 0 (at T = 100
    every run converges, in at most T by construction, but lambda_1 >= 0 takes 40-53 ~ T/2).
  - The map, T = 10^4: dominated by overflow from the zero guess. The first Newton iterate
    grows like rho(W)^t, so the runs with T ln rho(W) > 709 overflow on iteration 1,
    lambda_1 < 0 or not: 38 of 72 (3 of 9 at g = 1, 8 of 9 at g = 1.1, all 27 above). Every
    run that did not overflow converged, in at most 17 iterations, as at T = 100.
  - lambda_1 along the true trajectory is not the whole story: two map runs with lambda_1 < 0
    fail at T = 1000 (D = 16, g = 1.5, seed 2, lambda_1 = -0.26: > 200; D = 16, g = 2,
    seed 2, lambda_1 = -0.07: overflow). The iterates linearise the map where it expands (near
    h = 0, ln rho(W) ~ ln g > 0); the paper's bound assumes the contraction holds uniformly
    over the states the iterates visit, not only along the solution.
  - quasi (diagonal Jacobians) is a poor fit for a dense random W: it converges before T only
    for g <= 0.75 (37-149 iterations; not all g = 0.75 runs); otherwise it takes T
    iterations (exact after T) or hits the cap.
  - Cells: at initialisation (orthogonal Elman W, chrono LSTM / GRU) lambda_1 is -0.24 to
    -0.02 and Newton takes 5-7 iterations at every T up to 10^4. After 400 Adam steps (still
    at the memoryless baseline, loss / baseline 1.01-1.05) lambda_1 stays negative (-0.04 to
    -0.006) but ln rho(J at h=0) rose from -0.08..-0.016 to 0.36-0.41: 17-43 iterations at
    T = 100, none converged at T = 1000 (> 200, or overflow for the LSTM) and overflow at
    10^4: the same zero-guess failure as the map.
  - Converged parallel trajectories agree with the sequential scan to <= 1.8e-12 for
    g <= 1.25, up to 2e-11 at g = 1.5 and 1.8e-10 at g = 2 (chaos amplifies rounding).
"""

import functools
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
from absl import app, flags
from jax.flatten_util import ravel_pytree

from seqlab import cells
from seqlab import config as base
from seqlab.analysis import lyapunov, report
from seqlab.data.builders import copy_task
from seqlab.sweep import population, studies
from seqlab.unroll import parallel, plain

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
NAME = "study9_parallel_unroll"

_QUICK = flags.DEFINE_bool("quick", False, "A seconds-long smoke run (D = 32, T <= 200, "
                           "g in 0.5, 2.0, one seed, one tiny trained Elman net at T = 50).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/study9", "Where the PNG and tables go.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Prepared datasets are cached here.")
_GAINS = flags.DEFINE_list("gains", ["0.5", "0.75", "0.9", "1.0", "1.1", "1.25", "1.5", "2.0"],
                           "Gains g of the map's W ~ N(0, g^2 / D).")
_DIMS = flags.DEFINE_list("dims", ["16", "32", "64"], "State sizes D of the map.")
_LENGTHS = flags.DEFINE_list("lengths", ["100", "1000", "10000"], "Sequence lengths T.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (one Z and one input sequence).")
_CAP = flags.DEFINE_integer("cap", 200, "Newton iterations allowed: min(T, cap).")
_QUASI_MAX_T = flags.DEFINE_integer("quasi_max_t", 1000, "Run quasi-DEER up to this T.")
_SIGMA = flags.DEFINE_float("sigma", 0.1, "Standard deviation of the map's inputs u_t.")
_CELLS = flags.DEFINE_list("cells", ["elman", "lstm", "gru"], "Trained cell presets.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 400, "Adam steps per trained cell.")
_HIDDEN = flags.DEFINE_integer("hidden", 32, "Hidden size H of the trained cells.")
_DELAY = flags.DEFINE_integer("delay", 20, "Copy-task delay the cells train at.")
_SEQUENCES = flags.DEFINE_integer("sequences", 3, "Copy sequences per T for the cells.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Run nothing: rewrite the tables and "
                                 "figure from the finished programs in the output_dir's JSON.")
LYAPUNOV_MIN_STEPS = 2000  # the map's lambda_1 is measured over at least this many steps
SYMBOLS, ALPHABET = 4, 4  # the copy task of studies 4, 7 and 8's recipe
VERSION = 1  # bump when the measurement changes, so cached programs rerun
CELL_VERSION = 2  # the same for the cells alone


def map_step(params: dict, h: jax.Array, u: jax.Array) -> tuple[jax.Array, jax.Array]:
  """h_t = W tanh(h_{t-1}) + u_t (row-vector code, so a batch of carries works too)."""
  h = jnp.tanh(h) @ params["W"].T + u
  return h, h


def map_problem(g: float, D: int, seed: int, length: int, sigma: float):
  """(params {"W"}, inputs u [1, length, D]) in float64: W = g Z / sqrt(D), Z and u drawn
  from one generator per (D, seed), so that g only scales W."""
  rng = np.random.default_rng([seed, D])
  Z = rng.standard_normal((D, D))  # drawn first: ln_rho_w redraws it alone
  u = sigma * rng.standard_normal((1, length, D))
  return {"W": jnp.asarray(g * Z / np.sqrt(D), jnp.float64)}, jnp.asarray(u, jnp.float64)


def ln_rho_w(g: float, D: int, seed: int) -> float:
  """ln of the spectral radius of the map's W: its Jacobian at h = 0, where the zero guess
  linearises it (the first Newton iterate grows like rho(W)^t)."""
  Z = np.random.default_rng([seed, D]).standard_normal((D, D))
  return float(np.log(np.max(np.abs(np.linalg.eigvals(g * Z / np.sqrt(D))))))


def status_of(diagnostics: parallel.Diagnostics) -> list[str]:
  """Per sequence: 'converged', 'cap' (stopped at max_iters, residual finite) or 'overflow'
  (the iterate went non-finite)."""
  ok = np.asarray(diagnostics.converged)
  finite = np.isfinite(np.asarray(diagnostics.residual))
  return ["converged" if o else ("cap" if f else "overflow") for o, f in zip(ok, finite,
                                                                           strict=True)]


def solve(step, params, carry, xs, solver: str, cap: int) -> dict:
  """Unroll by `solver` from the zero guess with max_iters = min(T, cap): per sequence the
  iterations, residual, status and max |h - h_seq| (NaN unless converged); seconds
  (compilation included where the shape is new)."""
  T = jax.tree.leaves(xs)[0].shape[1]
  t0 = time.perf_counter()
  _, _, carries, d = parallel.unroll(step, params, carry, xs, solver=solver,
                                     max_iters=min(T, cap), return_carries=True)
  jax.block_until_ready(carries)
  seconds = time.perf_counter() - t0
  sequential = _sequential(step, params, carry, xs)
  diff = np.max(np.stack([
      np.max(np.abs(np.asarray(a) - np.asarray(b)).reshape(a.shape[0], -1), axis=1)
      for a, b in zip(jax.tree.leaves(carries), jax.tree.leaves(sequential), strict=True)]),
      axis=0)
  status = status_of(d)
  return {"iterations": [int(k) for k in np.asarray(d.iterations)],
          "residual": [float(r) for r in np.asarray(d.residual)],
          "status": status, "max_iters": min(T, cap),
          "error_vs_scan": [e if s == "converged" else float("nan")
                            for e, s in zip(diff, status, strict=True)],
          "seconds": seconds}


@functools.partial(jax.jit, static_argnums=0)
def _sequential(step, params, carry, xs):
  """Every carry of the sequential scan, leaves [B, T, ...]."""
  return plain.scan(step, params, carry, xs, return_carries=True)[2]


def run_map(g: float, D: int, seed: int, lengths, cap: int, quasi_max_t: int,
            sigma: float) -> dict:
  """One (g, D, seed) of the map: lambda_1 and the solves at every T."""
  length = max(max(lengths), LYAPUNOV_MIN_STEPS)
  params, u = map_problem(g, D, seed, length, sigma)
  h0 = jnp.zeros((1, D), jnp.float64)
  ly = lyapunov.exponents(map_step, params, h0, u, num=1, warmup=length // 10)
  out = {"lambda_1": float(ly.exponents[0, 0]), "runs": {}}
  for T in lengths:
    for solver in ("newton", "quasi"):
      if solver == "quasi" and T > quasi_max_t:
        continue
      out["runs"][f"{solver} {T}"] = solve(map_step, params, h0, u[:, :T], solver, cap)
  return out


# ------------------------------------------------------------------------ trained cells


def cell_config(cell: str, hidden: int, steps: int, delay: int, quick: bool,
                data_dir: str) -> ml_collections.ConfigDict:
  """configs/copy.py at (cell, delay) with study 8's long-lag recipe (chrono T_max = delay +
  2n for LSTM and GRU, Adam 3e-3 cosine to 3e-4, clip 1, batch 32), no curriculum, `steps`
  steps, H = hidden, one seed."""
  config = base.load_file(CONFIGS / "copy.py", f"cell={cell},delay={delay},recipe=long_lag")
  fields = {"task.data_dir": data_dir, "task.curriculum": (), "model.hidden_size": hidden,
            "train.num_steps": steps, "optimizer.decay_steps": steps}
  if quick:
    fields |= {"task.options.num_train": 256, "task.options.num_validation": 64}
  return studies.with_fields(config, fields, (("seed", (0,)),))


def signature(obj) -> dict:
  """JSON-able form of what a program's result depends on."""
  return json.loads(json.dumps(obj, default=str))


def cell_signature(config: ml_collections.ConfigDict, settings: dict) -> dict:
  fields = config.to_dict()
  del fields["task"]["data_dir"]
  return signature({"config": fields, **settings})


def first_member(tree):
  """Member 0 of a stacked population pytree, as numpy (survives the donated state)."""
  return jax.tree.map(lambda a: np.asarray(a[0]), tree)


def copy_inputs(T: int, count: int, seed: int) -> np.ndarray:
  """Token ids [count, T] of copy-task sequences (4 symbols of 4) of total length T."""
  rng = np.random.default_rng(seed)
  return np.stack([copy_task.copy_example(rng, ALPHABET, SYMBOLS, T - 2 * SYMBOLS)["inputs"]
                   for _ in range(count)])


def measure_cell(cell: cells.Cell, params: dict, lengths, sequences: int, cap: int,
                 quasi_max_t: int) -> dict:
  """lambda_1 per sequence and the solves of the model's cell on copy inputs at each T."""
  p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params["params"])
  out = {"state_size": None, "ln_rho_j0": ln_rho_j0(cell, p), "by_T": {}}
  for T in lengths:
    xs = p["embed"]["embedding"][copy_inputs(T, sequences, seed=T)]
    carry = cell.initial_carry(p["recurrent"]["cell"], (sequences,))
    out["state_size"] = int(ravel_pytree(jax.tree.map(lambda a: a[0], carry))[0].size)
    ly = lyapunov.exponents(cell.step, p["recurrent"]["cell"], carry, xs, num=1,
                            warmup=T // 10)
    runs = {}
    for solver in ("newton", "quasi"):
      if solver == "quasi" and T > quasi_max_t:
        continue
      runs[solver] = solve(cell.step, p["recurrent"]["cell"], carry, xs, solver, cap)
    out["by_T"][str(T)] = {"lambda_1": [float(x) for x in np.asarray(ly.exponents[:, 0])],
                           "runs": runs}
  return out


def ln_rho_j0(cell: cells.Cell, p: dict) -> float:
  """ln of the spectral radius of the cell's Jacobian at h = 0 under the blank input (the
  copy's inputs are blanks but for 2n steps): what the zero guess linearises."""
  zero = cell.initial_carry(p["recurrent"]["cell"], ())
  flat, unravel = ravel_pytree(zero)
  blank = p["embed"]["embedding"][0]
  J = jax.jacfwd(lambda s: ravel_pytree(cell.step(p["recurrent"]["cell"], unravel(s),
                                                  blank)[0])[0])(flat)
  return float(np.log(np.max(np.abs(np.linalg.eigvals(np.asarray(J))))))


def run_cell(config, lengths, sequences: int, cap: int, quasi_max_t: int) -> dict:
  """Train one cell (one seed) and measure it at initialisation and trained."""
  pop = population.build(config)
  state = population.initial_state(pop)
  init = first_member(state["params"])
  result = population.train(pop, state=state)
  finals = population.evaluate(pop, result.state["params"], "validation",
                               config.train.eval_batches)[0]
  trained = first_member(result.state["params"])
  cell = cells.make(config.model.cell, **config.model.cell_options)  # one step: one compile
  with jax.enable_x64(True):
    stages = {stage: measure_cell(cell, params, lengths, sequences, cap, quasi_max_t)
              for stage, params in (("init", init), ("trained", trained))}
  return {"stages": stages, "loss_vs_baseline": finals["loss_vs_baseline"],
          "accuracy": finals.get("accuracy", float("nan")),
          "train_s": result.compile_s + result.train_s}


# ----------------------------------------------------------------------------- report


def summary(runs: list[tuple[int, str, int]]) -> tuple[str, str, str]:
  """(median, max, converged 'k/n') of runs (iterations, status, max_iters): a run that did
  not converge counts as infinitely many iterations, shown as '> max_iters' or 'overflow';
  the median is the upper middle run (the middle one for an odd count)."""
  def key(run):
    k, s, _ = run
    return (0, k) if s == "converged" else (1, 0 if s == "cap" else 1)

  def text(run):
    k, s, m = run
    return str(k) if s == "converged" else (f"> {m}" if s == "cap" else "overflow")

  ordered = sorted(runs, key=key)
  done = sum(s == "converged" for _, s, _ in runs)
  return text(ordered[len(ordered) // 2]), text(ordered[-1]), f"{done}/{len(runs)}"


def map_rows(results: dict, lengths, quasi_lengths) -> tuple[list[str], list[list]]:
  """The map's table: one row per (D, g), over its seeds."""
  groups: dict[tuple[int, float], list[dict]] = {}
  for key, r in results.items():
    if key.startswith("map "):
      groups.setdefault((r["D"], r["g"]), []).append(r)
  headers = ["g", "D", "seeds", "lambda_1 (median)", "lambda_1 (min, max)",
             "ln rho(W) (median)"]
  for T in lengths:
    headers += [f"newton T={T} median", f"newton T={T} max", f"newton T={T} converged"]
  for T in quasi_lengths:
    headers += [f"quasi T={T} median", f"quasi T={T} converged"]
  headers += ["max abs(h - h_seq)"]
  rows = []
  for (D, g), rs in sorted(groups.items()):
    lam = [r["lambda_1"] for r in rs]
    row = [g, D, len(rs), float(np.median(lam)), f"{min(lam):.3g}, {max(lam):.3g}",
           float(np.median([ln_rho_w(g, D, r["seed"]) for r in rs]))]
    errors = []
    for T in lengths:
      runs = [r["runs"].get(f"newton {T}") for r in rs]
      if any(x is None for x in runs):
        row += ["", "", ""]
        continue
      row += list(summary([(x["iterations"][0], x["status"][0], x["max_iters"]) for x in runs]))
      errors += [e for x in runs for e in x["error_vs_scan"]]
    for T in quasi_lengths:
      runs = [r["runs"].get(f"quasi {T}") for r in rs]
      if any(x is None for x in runs):
        row += ["", ""]
        continue
      median, _, conv = summary([(x["iterations"][0], x["status"][0], x["max_iters"])
                                 for x in runs])
      row += [median, conv]
    finite = [e for e in errors if np.isfinite(e)]
    row.append(float(max(finite)) if finite else "")
    rows.append(row)
  return headers, rows


def cell_rows(results: dict, quasi_max_t: int) -> tuple[list[str], list[list]]:
  """The trained cells' table: one row per (cell, stage, T), over its sequences."""
  headers = ["cell", "stage", "state size", "val loss / baseline", "ln rho(J at h=0)", "T",
             "lambda_1 (median)", "lambda_1 (min, max)", "newton median", "newton max",
             "newton converged", "quasi median", "quasi converged", "max abs(h - h_seq)"]
  rows = []
  for key, r in results.items():
    if not key.startswith("cell "):
      continue
    for stage, m in r["stages"].items():
      for T, t in m["by_T"].items():
        lam, runs = t["lambda_1"], t["runs"]
        newton = runs["newton"]
        n = summary(list(zip(newton["iterations"], newton["status"],
                             [newton["max_iters"]] * len(newton["status"]), strict=True)))
        q = ("", "", "")
        if "quasi" in runs:
          quasi = runs["quasi"]
          q = summary(list(zip(quasi["iterations"], quasi["status"],
                               [quasi["max_iters"]] * len(quasi["status"]), strict=True)))
        errors = [e for e in newton["error_vs_scan"] if np.isfinite(e)]
        rows.append([r["cell"], stage, m["state_size"],
                     r["loss_vs_baseline"] if stage == "trained" else "",
                     m.get("ln_rho_j0", ""), int(T),
                     float(np.median(lam)), f"{min(lam):.3g}, {max(lam):.3g}", *n,
                     q[0], q[2], float(max(errors)) if errors else ""])
  return headers, rows


BINS = ((-np.inf, -0.1), (-0.1, -0.03), (-0.03, 0.0), (0.0, np.inf))


def bin_rows(results: dict, lengths) -> tuple[list[str], list[list]]:
  """The map's newton runs pooled by lambda_1 bin (all D, g, seeds): per T the converged
  fraction, the median and max iterations of the converged runs, and the failures."""
  maps = [r for k, r in results.items() if k.startswith("map ")]
  headers = ["lambda_1 in", "runs"] + [f"newton T={T}: converged, iterations median (max)"
                                       for T in lengths]
  rows = []
  for lo, hi in BINS:
    rs = [r for r in maps if lo <= r["lambda_1"] < hi]
    if not rs:
      continue
    row = [f"[{lo:g}, {hi:g})", len(rs)]
    for T in lengths:
      runs = [r["runs"][f"newton {T}"] for r in rs if f"newton {T}" in r["runs"]]
      its = [x["iterations"][0] for x in runs if x["status"][0] == "converged"]
      fails = [f"{sum(x['status'][0] == s for x in runs)} {label}"
               for s, label in (("cap", "> cap"), ("overflow", "overflow"))
               if any(x["status"][0] == s for x in runs)]
      row.append(f"{len(its)}/{len(runs)}, " + (f"{int(np.median(its))} ({max(its)})"
                                                 if its else "-")
                 + (f"; {', '.join(fails)}" if fails else ""))
    rows.append(row)
  return headers, rows


def write_report(results: dict, settings: dict, wall_s: float | None) -> str:
  """The markdown (map table, then the cells' table) and the figure of what is done."""
  lengths, cap, quasi_max_t = settings["lengths"], settings["cap"], settings["quasi_max_t"]
  quasi_lengths = [T for T in lengths if T <= quasi_max_t]
  headers, rows = map_rows(results, lengths, quasi_lengths)
  table = report.markdown_table(headers, rows, digits=3)
  bin_table = report.markdown_table(*bin_rows(results, lengths), digits=3)
  cell_headers, crows = cell_rows(results, quasi_max_t)
  cell_table = report.markdown_table(cell_headers, crows, digits=3) if crows else "(none)\n"
  wall = (f"Wall time of this run: {wall_s:.0f} s on a shared 2-core CPU (programs taken "
          "from the JSON cache not counted). " if wall_s is not None else "")
  spent = {kind: sum(r["seconds"] for k, r in results.items() if k.startswith(kind))
           for kind in ("map ", "cell ")}
  wall += (f"Seconds the programs shown took when they ran (compilation included): the map "
           f"{spent['map ']:.0f} s, the cells {spent['cell ']:.0f} s (training included). "
           f"Grid: g in {', '.join(f'{g:g}' for g in settings['gains'])}; D in "
           f"{', '.join(map(str, settings['dims']))}; T in "
           f"{', '.join(map(str, settings['lengths']))}; seeds "
           f"{', '.join(map(str, settings['seeds']))}; cells "
           f"{', '.join(settings['cells'])}. ")
  text = (
      f"# Study 9: parallel unrolling (DEER) against the largest Lyapunov exponent\n\n"
      f"## The map h_t = W tanh(h_(t-1)) + u_t, W ~ N(0, g^2 / D), u_t ~ N(0, "
      f"{settings['sigma']:g}^2), float64\n\n{table}\n"
      f"Per (g, D): {len(settings['seeds'])} seed(s), each its own Z (W = g Z / sqrt(D)) and "
      "input sequence. lambda_1: Benettin's QR estimate along the sequential trajectory of "
      f"max(T, {LYAPUNOV_MIN_STEPS}) steps, the first tenth not counted. Iterations: "
      "`seqlab.unroll.parallel.unroll` from the zero guess until max_t ||h_t - f(h_(t-1), "
      f"u_t)||_inf <= 1.8e-12, at most min(T, {cap}); newton = DEER (dense Jacobians), "
      f"quasi = quasi-DEER (diagonal Jacobians, run for T <= {quasi_max_t}). Median over seeds "
      "(the upper middle one for an even count) and max; a run that did not converge counts "
      f"as infinitely many: '> {cap}' hit the cap, 'overflow' the iterate went non-finite "
      "(float64 overflow of the linearised recurrence, whose first solve from h = 0 grows "
      "like g^t: T ln g > 709 overflows whatever lambda_1 is). Newton and quasi are exact "
      "after T iterations, so at T <= cap only an overflow can fail. ln rho(W): the log "
      "spectral radius of W, the map's Jacobian at h = 0 where the zero guess linearises it "
      "(the first iterate grows like rho(W)^t: T ln rho(W) > 709 overflows). max abs(h - "
      "h_seq): over the converged newton runs of the row, against `jax.lax.scan`.\n\n"
      f"The same newton runs pooled by lambda_1 (every D, g and seed; the iterations of the "
      f"converged runs):\n\n{bin_table}\n"
      f"## Cells on the copy task ({SYMBOLS} symbols of {ALPHABET}), at initialisation and "
      f"after {settings['train_steps']} Adam steps at delay {settings['delay']}\n\n"
      f"{cell_table}\n"
      f"H = {settings['hidden']} (state size: the flat carry, h and c for the LSTM); each "
      "cell trained by `seqlab.sweep.population` on configs/copy.py:cell=...,delay="
      f"{settings['delay']},recipe=long_lag without its curriculum (LSTM and GRU: chrono "
      f"initialisation T_max = {settings['delay'] + 2 * SYMBOLS}; Adam 3e-3 cosine to 3e-4, "
      "clip 1, batch 32; val loss / baseline: 1 = the memoryless baseline). Then its cell "
      f"step in float64 on {settings['sequences']} fresh copy sequences per T (the model's "
      "embedding of their tokens; the delay makes the length T): lambda_1 per sequence (the "
      "first tenth not counted) and the iterations, the same cap and tolerance. ln rho(J "
      "at h=0): the log spectral radius of the cell's Jacobian at h = 0 under the blank "
      "input, what the zero guess linearises.\n\n"
      f"{wall}Figure: {NAME}.png.\n")
  report.write_text(settings["output_dir"], f"{NAME}.md", text)
  plot(results, settings)
  return table + "\n" + cell_table


def plot(results: dict, settings: dict) -> None:
  """Newton (left) and quasi (middle) iterations against lambda_1, one colour per T (dots:
  the map, stars/diamonds: trained/initial cells; open triangles at the top: not converged),
  and the map's median Newton iterations against T per g (right)."""
  lengths, cap = settings["lengths"], settings["cap"]
  colour = {T: f"C{i}" for i, T in enumerate(lengths)}
  fig, axes = plt.subplots(1, 3, figsize=(17, 5))
  top = 1.5 * cap  # where runs that did not converge are drawn
  for ax, solver in zip(axes[:2], ("newton", "quasi"), strict=True):
    for T in lengths:
      lam, its, lam_nc, mark_nc = [], [], [], []
      for key, r in results.items():
        if key.startswith("map ") and f"{solver} {T}" in r["runs"]:
          run = r["runs"][f"{solver} {T}"]
          (lam if run["status"][0] == "converged" else lam_nc).append(r["lambda_1"])
          (its if run["status"][0] == "converged" else mark_nc).append(
              run["iterations"][0] if run["status"][0] == "converged" else run["status"][0])
      ax.semilogy(lam, its, "o", color=colour[T], ms=4, alpha=0.7, label=f"map, T = {T}")
      for status, marker in (("cap", "^"), ("overflow", "x")):
        xs = [x for x, s in zip(lam_nc, mark_nc, strict=True) if s == status]
        if xs:
          ax.semilogy(xs, [top] * len(xs), marker, color=colour[T], ms=6,
                      mfc="none" if marker == "^" else None,
                      label=f"T = {T}: {'> cap' if status == 'cap' else 'overflow'}")
      for key, r in results.items():
        if not key.startswith("cell "):
          continue
        for stage, m in r["stages"].items():
          t = m["by_T"].get(str(T))
          if t is None or solver not in t["runs"]:
            continue
          run = t["runs"][solver]
          for lam1, k, s in zip(t["lambda_1"], run["iterations"], run["status"], strict=True):
            ax.semilogy(lam1, k if s == "converged" else top,
                        "*" if stage == "trained" else "D", color=colour[T],
                        ms=11 if stage == "trained" else 6, mec="k", mew=0.6)
    if any(k.startswith("cell ") for k in results):
      for marker, size, label in (("*", 11, "cells, trained"), ("D", 6, "cells, at init")):
        ax.plot([], [], marker, color="w", mec="k", ms=size, label=label)
    ax.axvline(0.0, color="k", lw=0.8, ls="--")
    ax.axhline(cap, color="k", lw=0.6, ls=":")
    ax.set_xlabel("largest Lyapunov exponent lambda_1")
    ax.set_ylabel(f"{solver} iterations to converge")
    ax.set_title(f"{solver}: map dots; cells: * trained, diamond init (black edge); "
                 "top row: not converged", fontsize=8)
    ax.grid(alpha=0.3, which="both")
  axes[0].legend(fontsize=7, loc="center left")
  gains = sorted({r["g"] for k, r in results.items() if k.startswith("map ")})
  dims = sorted({r["D"] for k, r in results.items() if k.startswith("map ")})
  cmap = plt.get_cmap("viridis")
  if dims:
    D = dims[-1]
    for i, g in enumerate(gains):
      rs = [r for k, r in results.items() if k.startswith("map ") and r["g"] == g
            and r["D"] == D]
      if not rs:
        continue
      Ts, meds = [], []
      for T in lengths:
        runs = [r["runs"].get(f"newton {T}") for r in rs]
        if not runs or any(x is None for x in runs):
          continue
        vals = sorted(x["iterations"][0] if x["status"][0] == "converged" else np.inf
                      for x in runs)
        Ts.append(T)
        meds.append(min(vals[len(vals) // 2], top))
      lam = np.median([r["lambda_1"] for r in rs])
      axes[2].loglog(Ts, meds, "o-", color=cmap(i / max(1, len(gains) - 1)),
                     label=f"g = {g:g} (lambda_1 {lam:+.3f})")
    axes[2].loglog(lengths, [min(T, cap) for T in lengths], "k:", lw=0.8,
                   label="max_iters = min(T, cap)")
    axes[2].set_xlabel("T")
    axes[2].set_ylabel("newton iterations (median over seeds; top: not converged)")
    axes[2].set_title(f"the map at D = {D}", fontsize=9)
    axes[2].grid(alpha=0.3, which="both")
    axes[2].legend(fontsize=7)
  fig.tight_layout()
  report.save_figure(fig, settings["output_dir"], f"{NAME}.png")


# ------------------------------------------------------------------------------- main


def main(argv):
  del argv
  studies.quiet()
  quick = _QUICK.value
  settings = {
      "gains": [0.5, 2.0] if quick else [float(g) for g in _GAINS.value],
      "dims": [32] if quick else [int(d) for d in _DIMS.value],
      "lengths": [50, 200] if quick else [int(t) for t in _LENGTHS.value],
      "seeds": [0] if quick else [int(s) for s in _SEEDS.value],
      "cap": _CAP.value, "quasi_max_t": _QUASI_MAX_T.value, "sigma": _SIGMA.value,
      "cells": ["elman"] if quick else list(_CELLS.value),
      "train_steps": 20 if quick else _TRAIN_STEPS.value,
      "hidden": 8 if quick else _HIDDEN.value, "delay": 6 if quick else _DELAY.value,
      "sequences": 2 if quick else _SEQUENCES.value, "output_dir": _OUTPUT_DIR.value,
  }
  cell_lengths = settings["lengths"][:1] if quick else settings["lengths"]
  measured = {"version": VERSION, "lengths": settings["lengths"], "cap": settings["cap"],
              "quasi_max_t": settings["quasi_max_t"]}

  def map_signature(g, D, seed):
    return signature({**measured, "g": g, "D": D, "seed": seed, "sigma": settings["sigma"],
                      "lyapunov_min_steps": LYAPUNOV_MIN_STEPS})

  def config_of(cell):
    return cell_config(cell, settings["hidden"], settings["train_steps"], settings["delay"],
                       quick, _DATA_DIR.value)

  def cell_sig(cell):
    return cell_signature(config_of(cell), {**measured, "cell_version": CELL_VERSION,
                                            "cell_lengths": cell_lengths,
                                            "sequences": settings["sequences"]})

  cache = os.path.join(settings["output_dir"], f"{NAME}.json")
  results = {}
  if os.path.exists(cache):
    results = json.load(open(cache))["results"]
  wanted = {}
  for D in settings["dims"]:
    for g in settings["gains"]:
      for seed in settings["seeds"]:
        wanted[f"map g={g:g} D={D} seed={seed}"] = ("map", g, D, seed)
  for cell in settings["cells"]:
    wanted[f"cell {cell}"] = ("cell", cell)

  def signature_of(spec):
    return map_signature(*spec[1:]) if spec[0] == "map" else cell_sig(spec[1])

  # keep what this run would compute with the same settings; show only this run's programs
  results = {k: r for k, r in results.items()
             if k in wanted and r.get("signature") == signature_of(wanted[k])}
  t_start = time.perf_counter()
  for key, spec in wanted.items():
    if key in results or _REPORT_ONLY.value:
      continue
    t0 = time.perf_counter()
    if spec[0] == "map":
      _, g, D, seed = spec
      with jax.enable_x64(True):
        r = run_map(g, D, seed, settings["lengths"], settings["cap"], settings["quasi_max_t"],
                    settings["sigma"])
      r |= {"g": g, "D": D, "seed": seed}
      line = f"lambda_1 {r['lambda_1']:+.4f}; " + ", ".join(
          f"{name} {x['iterations'][0]} {x['status'][0]}" for name, x in r["runs"].items())
    else:
      r = run_cell(config_of(spec[1]), cell_lengths, settings["sequences"], settings["cap"],
                   settings["quasi_max_t"])
      r["cell"] = spec[1]
      line = f"loss/baseline {r['loss_vs_baseline']:.3f}; " + "; ".join(
          f"{stage} T={T}: lambda_1 {np.median(t['lambda_1']):+.4f} newton "
          f"{t['runs']['newton']['iterations']}"
          for stage, m in r["stages"].items() for T, t in m["by_T"].items())
    r |= {"seconds": time.perf_counter() - t0, "signature": signature_of(spec)}
    results[key] = r
    report.write_text(settings["output_dir"], f"{NAME}.json",
                      json.dumps({"results": results}, allow_nan=True))
    write_report(results, settings, None)
    print(f"{key}: {line} ({r['seconds']:.1f} s)", flush=True)
  wall = time.perf_counter() - t_start
  print(write_report(results, settings, None if _REPORT_ONLY.value else wall))
  print(f"wall time {wall:.0f} s; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
  app.run(main)
