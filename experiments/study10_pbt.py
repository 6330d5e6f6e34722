"""Study 10: population-based training against random search at equal compute.

    python experiments/study10_pbt.py --output_dir=docs/figures --runs_dir=runs/study10
    python experiments/study10_pbt.py --quick --output_dir=/tmp/s10 --runs_dir=/tmp/s10/runs

For each setup of configs/pbt.py (task=copy: an LSTM on copy at T = 100, PBT moving the
learning rate and the clipping threshold; task=char: a GRU character LM, learning rate and
weight decay) and each seed s, two populations of the same members (seed, initial values
drawn at random from the ranges with config.pbt.seed = s) train for the same steps:
  pbt     exploit (truncation, bottom quarter copies top quarter) and explore every `ready`
          steps, selected on validation;
  random  config.pbt.exploit=False: the same members, never copied or perturbed (random
          search at equal compute).
The figure of merit is the best member's validation metric at the end (config.pbt.metric on
config.pbt.eval_batches batches; for copy divided by the memoryless baseline
n log A / (T + 2n)); the table gives per arm its median over the seeds and the range.
Each population is a `seqlab.sweep --search=pbt` run in runs_dir (resumable); finished
ones are kept in study10_pbt.json under their whole config, so a rerun trains only what
changed (--report_only: table and figure from the JSON alone).
"""

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from absl import app, flags
from absl import logging as absl_logging

from seqlab import config as base
from seqlab.analysis import report
from seqlab.sweep import pbt_run, pbt_space

NAME = "study10_pbt"
ROOT = Path(__file__).resolve().parent.parent
ARMS = ("pbt", "random")

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "docs/figures", "Table, figure and JSON.")
_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs/study10", "The populations' output dirs.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Prepared datasets (default: the config's).")
_TASKS = flags.DEFINE_list("tasks", ["copy", "char"], "configs/pbt.py task variants.")
_SEEDS = flags.DEFINE_integer("seeds", 5, "config.pbt.seed = 0..seeds-1 per arm.")
_STEPS = flags.DEFINE_integer("steps", 0, "Override train.num_steps (0: the config's).")
_QUICK = flags.DEFINE_bool("quick", False, "CI smoke: tiny models, 2 seeds, a few steps.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Redraw from the JSON only.")


def config_of(task: str, arm: str, seed: int):
  """configs/pbt.py:task=<task> for one arm and seed (with --quick's reductions)."""
  c = base.load_file(ROOT / "configs" / "pbt.py", f"task={task}")
  c.pbt.seed, c.seed = seed, 1000 * seed
  c.pbt.exploit = arm == "pbt"
  if _DATA_DIR.value:
    c.task.data_dir = _DATA_DIR.value
  if _STEPS.value:
    c.train.num_steps = _STEPS.value
  if _QUICK.value:
    c.model.hidden_size, c.pbt.size, c.pbt.ready, c.train.num_steps = 8, 4, 4, 12
    c.train.batch_size, c.train.eval_batches = 8, 1
    if task == "copy":
      c.task.options.update(delay=5, num_train=64, num_validation=16, num_test=16)
    else:
      c.task.options.max_chars = 20_000
      c.train.seq_len = 16
  return c


def baseline(config) -> float:
  """What the reported score is divided by: copy's memoryless n log A / (T + 2n), else 1."""
  o = config.task.options
  if config.task.name != "copy":
    return 1.0
  return o.num_symbols * math.log(o.alphabet_size) / (o.delay + 2 * o.num_symbols)


def run_one(config, task: str, arm: str, seed: int) -> dict:
  """One population trained (or resumed) in runs_dir; its best final score and curve."""
  out = Path(_RUNS_DIR.value) / task / arm / str(seed)
  record = pbt_run.run(config, str(out)).record
  opts = pbt_space.options(config)
  signed = pbt_run.signed(record.scores, opts)
  best = np.min(signed, axis=1) * (-1.0 if opts.maximize else 1.0) / baseline(config)
  return {"config": config.to_json(), "steps": record.ends, "best": best.tolist(),
          "final": float(best[-1]),
          "copies": int(sum(p != i for r in record.parents for i, p in enumerate(r)))}


def summarize(results: dict) -> tuple[str, plt.Figure]:
  """The table (median and range over seeds per task and arm) and the figure."""
  tasks = sorted({k.split("/")[0] for k in results}, key=_TASKS.value.index)
  lines = ["| setup | arm | seeds | median best | min | max | copies (median) |",
           "|---|---|---|---|---|---|---|"]
  fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.8), squeeze=False)
  for ax, task in zip(axes[0], tasks, strict=True):
    for colour, arm in zip(("C3", "C0"), ARMS, strict=True):
      runs = [v for k, v in sorted(results.items()) if k.startswith(f"{task}/{arm}/")]
      if not runs:
        continue
      finals = [r["final"] for r in runs]
      lines.append(f"| {task} | {arm} | {len(runs)} | {np.median(finals):.4g} | "
                   f"{min(finals):.4g} | {max(finals):.4g} | "
                   f"{np.median([r['copies'] for r in runs]):g} |")
      for r in runs:
        ax.plot(r["steps"], r["best"], color=colour, lw=0.8, alpha=0.7)
      ax.plot([], [], color=colour, label=arm)
    unit = "of the memoryless baseline" if task == "copy" else "(nats per character)"
    ax.set_title(f"{task}: best member's validation loss {unit}", fontsize=9)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
  fig.tight_layout()
  return "\n".join(lines) + "\n\n" + paired(results, tasks), fig


def paired(results: dict, tasks: list[str]) -> str:
  """Per setup, PBT against random search seed by seed (the same initial members)."""
  out = []
  for task in tasks:
    seeds = sorted({k.split("/")[2] for k in results if k.startswith(f"{task}/")}, key=int)
    both = [(results[f"{task}/pbt/{s}"]["final"], results[f"{task}/random/{s}"]["final"])
            for s in seeds if f"{task}/pbt/{s}" in results and f"{task}/random/{s}" in results]
    if both:
      ahead = sum(p < r for p, r in both)
      ratio = np.median([p / r for p, r in both])
      out.append(f"- {task}: PBT ahead of random search in {ahead} of {len(both)} seeds; "
                 f"median ratio PBT / random {ratio:.3g} (per seed: "
                 + ", ".join(f"{p / r:.3g}" for p, r in both) + ")")
  return "\n".join(out) + "\n"


def main(argv):
  del argv
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax's per-save lines
  out = Path(_OUTPUT_DIR.value)
  path = out / f"{NAME}.json"
  results = json.loads(path.read_text()) if path.exists() else {}
  if not _REPORT_ONLY.value:
    seeds = 2 if _QUICK.value else _SEEDS.value
    for task in _TASKS.value:
      for seed in range(seeds):
        for arm in ARMS:
          key = f"{task}/{arm}/{seed}"
          config = config_of(task, arm, seed)
          if results.get(key, {}).get("config") == config.to_json():
            continue
          print(f"== {key}", flush=True)
          results[key] = run_one(config, task, arm, seed)
          report.write_text(out, path.name, json.dumps(results, indent=1))
  if not results:
    raise app.UsageError(f"no results in {path}: run the study without --report_only first")
  text, fig = summarize(results)
  report.write_text(out, f"{NAME}.md", text)
  report.save_figure(fig, out, f"{NAME}.png")
  print(text)


if __name__ == "__main__":
  app.run(main)
