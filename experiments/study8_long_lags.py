"""Study 8: long lags (copy T up to 200, adding T up to 400) with the training tricks of the papers.

Copy T in {50, 100, 200} and adding T in {100, 200, 400}: tanh Elman, IRNN, LSTM and GRU,
several seeds per vmapped program.

    python experiments/study8_long_lags.py --task=copy --output_dir=docs/figures
    python experiments/study8_long_lags.py --task=adding --output_dir=docs/figures
    python experiments/study8_long_lags.py --task=copy --quick --output_dir=/tmp/s8   # CI

Study 4 trained at the lags where every cell still learns something; here the lags are the
papers' (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015; Arjovsky et al. 2016) and
so are the tricks, each documented in RECIPES:
  - LSTM and GRU: chrono initialisation (Tallec & Ollivier 2018) with T_max = the sequence
    length: b_f = log U[1, T_max - 1], b_i = -b_f (LSTM), b_z = log U[...] (GRU), so that
    the gates start out keeping their state over lags up to the task's;
  - IRNN: relu with W = I (Le et al.) and a smaller learning rate (relu units explode);
  - everyone: Adam, global-norm clipping at 1 (Pascanu et al. 2013), a cosine learning-rate
    decay to a tenth, batch 32;
  - copy: a curriculum on the delay (Zaremba & Sutskever 2014, "Learning to Execute"): the
    same parameters and optimizer state train at T/10, T/4, T/2 and then T, for the
    fractions of the steps in RECIPES (from a zero delay an LSTM sits at the memoryless
    baseline for thousands of steps: 0.9-1.0 of it after 2000 steps at T = 100).
Score: the final validation loss over the memoryless baseline (copy: n log A / (T + 2n)
nats per step; adding: MSE 1/6); solved: below 0.1. Each (T, cell) is one program; finished
programs are kept in <output_dir>/study8_long_lags_<task>.json with what they depend on
(steps, seeds, the task's recipe and the cell's); the table and figure are rewritten after
each, so a run stopped early leaves a partial table, and a rerun skips every program whose
settings did not change (so changing one cell's learning rate reruns that cell only);
--report_only rewrites the table and figure from what is done). Writes
study8_long_lags_<task>.png and .md.
"""

import json
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from absl import app, flags

from seqlab import config as base
from seqlab.analysis import report
from seqlab.sweep import population, studies

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

_TASK = flags.DEFINE_enum("task", "copy", ["copy", "adding"], "Which task.")
_QUICK = flags.DEFINE_bool("quick", False, "A seconds-long smoke run (short T, two cells).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/study8", "Where the PNG and table go.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Prepared datasets are cached here.")
_CELLS = flags.DEFINE_list("cells", ["elman", "irnn", "lstm", "gru"], "Cell presets.")
_LENGTHS = flags.DEFINE_list("lengths", [], "T values (default: the task's, see RECIPES).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds, swept in one program.")
_STEPS = flags.DEFINE_integer("steps", 0, "Adam steps per program (0: the task's).")
_CURRICULUM = flags.DEFINE_bool("curriculum", True, "Train copy through the delay curriculum.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Train nothing: rewrite the table and "
                                 "figure from the finished programs in the output_dir's JSON.")
SOLVED = 0.1  # loss / baseline below this counts as solved

# task -> config file, its length variant, lengths T, steps, hidden size, quality metric,
# extra fields; per cell: learning rate and cell options (chrono's T_max = -1 means the
# sequence length, filled in per T).
RECIPES = {
    "copy": {"file": "copy.py", "key": "delay", "lengths": (50, 100, 200), "steps": 6000,
             "hidden": 64, "metric": "accuracy",
             "fields": {"task.options.alphabet_size": 4, "task.options.num_symbols": 4,
                        "model.embed_size": 8},
             # (fraction of T, fraction of the steps) per stage; the last stage is T itself.
             "curriculum": ((0.1, 0.15), (0.25, 0.15), (0.5, 0.2), (1.0, 0.5)),
             "cells": {"elman": (3e-3, {}), "irnn": (1e-3, {}),
                       "lstm": (3e-3, {"chrono": -1}), "gru": (3e-3, {"chrono": -1})}},
    "adding": {"file": "adding.py", "key": "T", "lengths": (100, 200, 400), "steps": 3000,
               "hidden": 64, "metric": "close_fraction", "fields": {}, "curriculum": ((1.0, 1.0),),
               "cells": {"elman": (1e-3, {}), "irnn": (3e-4, {}),
                         "lstm": (3e-3, {"chrono": -1}), "gru": (3e-3, {"chrono": -1})}},
}


def sequence_length(task: str, T: int) -> int:
  """Steps per sequence: T + 2n for copy (n symbols, delimiter, replay), T for adding."""
  return T + 2 * RECIPES["copy"]["fields"]["task.options.num_symbols"] if task == "copy" else T


def fields_of(task: str, T: int, cell: str, steps: int, quick: bool) -> dict:
  """The config fields of the program (task, T, cell)."""
  recipe = RECIPES[task]
  lr, options = recipe["cells"][cell]
  fields = {"task.data_dir": _DATA_DIR.value, "task.options.num_train": 512 if quick else 4096,
            "task.options.num_validation": 64 if quick else 256, "task.options.num_test": 64,
            "model.hidden_size": 16 if quick else recipe["hidden"],
            "optimizer.learning_rate": lr, "optimizer.schedule": "cosine",
            "optimizer.decay_steps": steps, "optimizer.end_learning_rate": lr / 10,
            "optimizer.clip_norm": 1.0, "train.batch_size": 32, "train.num_steps": steps,
            "train.eval_batches": 8, **recipe["fields"]}
  for name, value in options.items():
    fields[f"model.cell_options.{name}"] = sequence_length(task, T) if value == -1 else value
  return fields


def stages(task: str, T: int, steps: int, curriculum: bool) -> list[tuple[int, int]]:
  """(T_k, steps_k) per curriculum stage, ending at T; steps_k sum to `steps`."""
  plan = RECIPES[task]["curriculum"] if curriculum else ((1.0, 1.0),)
  out = [(max(1, round(f * T)), round(share * steps)) for f, share in plan]
  out[-1] = (T, steps - sum(n for _, n in out[:-1]))
  return out


def run_one(task: str, T: int, cell: str, seeds, steps: int, quick: bool,
            curriculum: bool) -> dict:
  """Train the seeds of (task, T, cell) as one program per curriculum stage, the state passed
  on; the numbers the table and plot need."""
  recipe = RECIPES[task]
  fields = fields_of(task, T, cell, steps, quick)
  state, losses, compile_s, train_s = None, [], 0.0, 0.0
  for T_k, steps_k in stages(task, T, steps, curriculum):
    config = studies.with_fields(
        base.load_file(CONFIGS / recipe["file"], f"cell={cell},{recipe['key']}={T_k}"), fields,
        (("seed", tuple(seeds)),))
    pop = population.build(config)
    result = population.train(pop, steps_k, state=state)
    state, compile_s, train_s = result.state, compile_s + result.compile_s, train_s + result.train_s
    baseline = pop.problem.task.metadata["baseline"]
    losses.append(result.history["loss"] / baseline)  # [steps_k, seeds]
  finals = population.evaluate(pop, state["params"], "validation", config.train.eval_batches)
  losses = np.concatenate(losses)
  every = max(1, steps // 200)  # keep ~200 points of each learning curve
  return {"ratio": [f["loss_vs_baseline"] for f in finals],
          "quality": [f[recipe["metric"]] for f in finals],
          "curve_steps": list(range(1, steps + 1, every)),
          "curves": losses[::every].T.tolist(), "compile_s": compile_s, "train_s": train_s}


def main(argv):
  del argv
  studies.quiet()
  task, quick = _TASK.value, _QUICK.value
  recipe = RECIPES[task]
  cells = ("elman", "gru") if quick else tuple(_CELLS.value)
  lengths = ((12,) if quick else tuple(int(t) for t in _LENGTHS.value) or recipe["lengths"])
  seeds = (0, 1) if quick else tuple(int(s) for s in _SEEDS.value)
  steps = 40 if quick else (_STEPS.value or recipe["steps"])
  cache = os.path.join(_OUTPUT_DIR.value, f"study8_long_lags_{task}.json")
  curriculum = _CURRICULUM.value
  sign = lambda cell: signature(task, cell, steps, seeds, quick, curriculum)
  results = {}
  if os.path.exists(cache):  # keep the programs trained with what this run would use
    saved = json.load(open(cache))["results"]
    results = {k: r for k, r in saved.items() if r.get("signature") == sign(k.split()[1])}
  t_start = time.perf_counter()
  for T in lengths:
    for cell in cells:
      key = f"{T} {cell}"
      if key not in results and _REPORT_ONLY.value:
        continue
      if key not in results:
        results[key] = run_one(task, T, cell, seeds, steps, quick, curriculum)
        results[key]["signature"] = sign(cell)
        report.write_text(_OUTPUT_DIR.value, os.path.basename(cache),
                          json.dumps({"results": results}))
        write_report(task, results, seeds, steps, quick, curriculum)
      r = results[key]
      print(f"{task} T={T} {cell}: loss/baseline {np.round(r['ratio'], 4)} "
            f"({r['compile_s'] + r['train_s']:.0f} s)", flush=True)
  print(write_report(task, results, seeds, steps, quick, curriculum))
  print(f"wall time {time.perf_counter() - t_start:.0f} s; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def signature(task: str, cell: str, steps: int, seeds, quick: bool, curriculum: bool) -> dict:
  """What a program's result depends on: a cached result is reused only where it matches."""
  recipe = {k: v for k, v in RECIPES[task].items() if k != "cells"}
  return json.loads(json.dumps({"steps": steps, "seeds": list(seeds), "quick": quick,
                                "curriculum": curriculum, "recipe": recipe,
                                "cell": RECIPES[task]["cells"][cell]}, default=str))


def write_report(task: str, results: dict, seeds, steps: int, quick: bool,
                 curriculum: bool) -> str:
  """The markdown table (rows sorted by T, then cell) and the figure of what is done."""
  recipe = RECIPES[task]
  keys = sorted(results, key=lambda k: (int(k.split()[0]), list(recipe["cells"]).index(
      k.split()[1])))
  rows = []
  for key in keys:
    T, cell = key.split()
    r = results[key]
    ratio = np.array(r["ratio"])
    lr, options = recipe["cells"][cell]
    tricks = (["chrono init"] if "chrono" in options else []) + (
        ["curriculum"] if curriculum and len(recipe["curriculum"]) > 1 else []) + [f"lr {lr:g}"]
    trick = ", ".join(tricks)
    rows.append([int(T), cell, trick, float(np.median(ratio)),
                 " ".join(f"{x:.3g}" for x in ratio), f"{int(np.sum(ratio < SOLVED))}/{len(ratio)}",
                 float(np.median(r["quality"])), r["compile_s"], r["train_s"]])
  quality = "accuracy" if task == "copy" else "fraction within 0.04"
  headers = ["T", "cell", "recipe", "val loss / baseline (median)", "per seed",
             f"seeds solved (< {SOLVED:g})", f"{quality} (median)", "compile s", "train s"]
  table = report.markdown_table(headers, rows, digits=3)
  what = ("copy: replay 4 symbols of an alphabet of 4 after T blanks" if task == "copy"
          else "adding: the sum of the two marked numbers among T")
  text = (f"# Study 8: long lags, {what}; {len(seeds)} seeds per program, {steps} Adam steps\n\n"
          f"{table}\nLoss / baseline: the final validation loss over the memoryless baseline "
          "(1: nothing remembered, solved: < 0.1). All: Adam, clip_norm 1, cosine learning-rate "
          f"decay to lr / 10, batch 32, H = {16 if quick else recipe['hidden']}; chrono init: "
          f"T_max = the sequence length{curriculum_text(task, curriculum)}. Each row is one "
          "vmapped program training all seeds (compile and train seconds on a shared 2-core "
          "CPU).\n")
  report.write_text(_OUTPUT_DIR.value, f"study8_long_lags_{task}.md", text)
  plot(task, results, keys)
  return table


def curriculum_text(task: str, curriculum: bool) -> str:
  """'; curriculum: ...' for the table's note, or '' when the run has one stage."""
  plan = RECIPES[task]["curriculum"]
  if not curriculum or len(plan) == 1:
    return ""
  return ("; curriculum: every cell's run trains at delays "
          f"{' -> '.join(f'{f:g} T' for f, _ in plan)} for "
          f"{' / '.join(f'{s:.0%}' for _, s in plan)} of the steps")


def plot(task: str, results: dict, keys: list[str]) -> None:
  """Loss / baseline against T per cell (left); learning curves per T (right panels)."""
  lengths = sorted({int(k.split()[0]) for k in keys})
  cells = [c for c in RECIPES[task]["cells"] if any(k.split()[1] == c for k in keys)]
  colour = {c: f"C{i}" for i, c in enumerate(RECIPES[task]["cells"])}
  fig, axes = plt.subplots(1, 1 + len(lengths), figsize=(4.6 * (1 + len(lengths)), 4.2),
                           squeeze=False)
  axes = axes[0]
  for cell in cells:
    Ts = [T for T in lengths if f"{T} {cell}" in results]
    ratios = [np.array(results[f"{T} {cell}"]["ratio"]) for T in Ts]
    axes[0].plot(Ts, [np.median(r) for r in ratios], "o-", color=colour[cell], label=cell)
    for T, r in zip(Ts, ratios, strict=True):
      axes[0].plot([T] * len(r), r, ".", color=colour[cell], alpha=0.5)
    for ax, T in zip(axes[1:], lengths, strict=True):
      r = results.get(f"{T} {cell}")
      if r is None:
        continue
      for j, curve in enumerate(r["curves"]):
        ax.semilogy(r["curve_steps"], curve, color=colour[cell], lw=0.7, alpha=0.8,
                    label=cell if j == 0 else None)
      ax.set_title(f"T = {T}: training loss / baseline (each seed)", fontsize=9)
  axes[0].set_xscale("log")
  axes[0].set_yscale("log")
  axes[0].set_xticks(lengths, [str(t) for t in lengths])
  axes[0].set_xticks([], minor=True)
  axes[0].set_xlabel("delay T" if task == "copy" else "sequence length T")
  axes[0].set_ylabel("final validation loss / baseline")
  axes[0].set_title(f"{task}: median over seeds (dots: seeds)", fontsize=9)
  for ax in axes:
    ax.axhline(1.0, color="k", ls=":", lw=0.8)
    ax.axhline(SOLVED, color="k", ls="--", lw=0.6)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
  for ax in axes[1:]:
    ax.set_xlabel("step")
  fig.tight_layout()
  report.save_figure(fig, _OUTPUT_DIR.value, f"study8_long_lags_{task}.png")


if __name__ == "__main__":
  app.run(main)
