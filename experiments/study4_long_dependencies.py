"""Study 4: copy and adding tasks across delays T for Elman (tanh), IRNN, LSTM and GRU.

    python experiments/study4_long_dependencies.py --output_dir=docs/figures     # ~7 minutes
    python experiments/study4_long_dependencies.py --quick --output_dir=/tmp/s4  # CI smoke run

Copy (configs/copy.py): replay n = 4 symbols of an alphabet of 4 after T blanks; adding
(configs/adding.py): the sum of the two marked numbers among T. Each is scored by its
final validation loss relative to the memoryless baseline (copy: n log A / (T + 2n) nats
per step; adding: MSE 1/6 of always predicting 1), so 1 means nothing was remembered
and 0 a solved task. Cells: `elman` (tanh), `irnn` (relu, W = I; Le, Jaitly & Hinton 2015),
`lstm` (forget bias 1), `gru`, all trained by Adam with global-norm clipping at 1. For
every (task, T, cell) the seeds train together in one vmapped program (`seqlab.sweep`);
T and the cell change shapes, so they are separate programs. Writes
study4_long_dependencies.png and .md.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from absl import app, flags

from seqlab import config as base
from seqlab.analysis import report
from seqlab.sweep import studies

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
_QUICK = flags.DEFINE_bool("quick", False, "A seconds-long smoke run (one T, two cells).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/study4", "Where the PNG and table go.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Prepared datasets are cached here.")
_CELLS = flags.DEFINE_list("cells", ["elman", "irnn", "lstm", "gru"], "Cell presets.")
_COPY_T = flags.DEFINE_list("copy_delays", ["10", "20", "40"], "Copy-task delays T.")
_ADDING_T = flags.DEFINE_list("adding_lengths", ["25", "50", "100"], "Adding-problem T.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds, swept in one program.")
_STEPS = flags.DEFINE_integer("steps", 2000, "Adam steps per program.")
SOLVED = 0.1  # loss / baseline below this counts as solved

# task -> (config file, variant key, hidden size, learning rate, quality metric, extra fields)
TASKS = {
    "copy": ("copy.py", "delay", 64, 1e-2, "accuracy",
             {"task.options.alphabet_size": 4, "task.options.num_symbols": 4,
              "model.embed_size": 8}),
    "adding": ("adding.py", "T", 32, 3e-3, "close_fraction", {}),
}


def run_one(task: str, T: int, cell: str, seeds, steps: int, quick: bool):
  """One program: the seeds of (task, T, cell)."""
  file, key, hidden, lr, _, extra = TASKS[task]
  fields = {"task.data_dir": _DATA_DIR.value, "task.options.num_train": 512 if quick else 4096,
            "task.options.num_validation": 64 if quick else 256, "task.options.num_test": 64,
            "model.hidden_size": 16 if quick else hidden, "optimizer.learning_rate": lr,
            "train.num_steps": steps, "train.eval_batches": 8, **extra}
  return studies.run(base.load_file(CONFIGS / file, f"cell={cell},{key}={T}"), fields,
                     (("seed", tuple(seeds)),))


def main(argv):
  del argv
  studies.quiet()
  quick = _QUICK.value
  cells = ("elman", "gru") if quick else tuple(_CELLS.value)
  delays = {"copy": (5,) if quick else tuple(int(t) for t in _COPY_T.value),
            "adding": (10,) if quick else tuple(int(t) for t in _ADDING_T.value)}
  seeds = (0, 1) if quick else tuple(int(s) for s in _SEEDS.value)
  steps = 40 if quick else _STEPS.value
  rows, results = [], {}
  for task in TASKS:
    metric = TASKS[task][4]
    for T in delays[task]:
      for cell in cells:
        run = run_one(task, T, cell, seeds, steps, quick)
        ratio = np.array([f["loss_vs_baseline"] for f in run.finals])
        quality = np.array([f[metric] for f in run.finals])
        baseline = run.finals[0]["loss"] / run.finals[0]["loss_vs_baseline"]
        results[task, T, cell] = (ratio, run.result.history["loss"], baseline)
        rows.append([task, T, cell, float(np.median(ratio)),
                     " ".join(f"{r:.3g}" for r in ratio), int(np.sum(ratio < SOLVED)),
                     float(np.median(quality)), run.result.compile_s, run.result.train_s])
        print(f"{task} T={T} {cell}: loss/baseline {np.round(ratio, 3)}  "
              f"({run.wall_s:.0f} s)", flush=True)
  headers = ["task", "T", "cell", "final val loss / baseline (median)", "per seed",
             f"seeds solved (< {SOLVED:g})", "accuracy (copy) / fraction within 0.04 (adding)",
             "compile s", "train s"]
  table = report.markdown_table(headers, rows, digits=3)
  plot(results, delays, cells, steps)
  text = (f"# Study 4: copy and adding tasks across T, {len(seeds)} seeds per program, "
          f"{steps} Adam steps\n\n{table}\nLoss / baseline: the final validation loss over "
          "the memoryless baseline (1: nothing remembered). Copy: alphabet 4, 4 symbols, "
          f"H = {TASKS['copy'][2]}, lr {TASKS['copy'][3]:g}; adding: H = {TASKS['adding'][2]}, "
          f"lr {TASKS['adding'][3]:g}; Adam, clip_norm 1, batch 32. Each row is one vmapped "
          "program training all seeds (compile and train seconds on a shared 2-core CPU).\n")
  report.write_text(_OUTPUT_DIR.value, "study4_long_dependencies.md", text)
  print(table)


def plot(results, delays, cells, steps):
  """Loss / baseline against T per cell (top) and learning curves at the largest T (bottom)."""
  fig, axes = plt.subplots(2, len(delays), figsize=(6.5 * len(delays), 8.5), squeeze=False)
  for col, task in enumerate(delays):
    Ts = delays[task]
    for j, cell in enumerate(cells):
      ratios = [results[task, T, cell][0] for T in Ts]
      axes[0, col].plot(Ts, [np.median(r) for r in ratios], "o-", color=f"C{j}", label=cell)
      for T, r in zip(Ts, ratios, strict=True):
        axes[0, col].plot([T] * len(r), r, ".", color=f"C{j}", alpha=0.5)
      _, losses, baseline = results[task, Ts[-1], cell]
      axes[1, col].semilogy(np.arange(1, steps + 1), np.median(losses, axis=1) / baseline,
                            color=f"C{j}", lw=0.8, label=cell)
    axes[0, col].axhline(1.0, color="k", ls=":", lw=0.8, label="memoryless baseline")
    axes[0, col].axhline(SOLVED, color="k", ls="--", lw=0.6, label=f"solved (< {SOLVED:g})")
    axes[0, col].set_yscale("log")
    axes[0, col].set_xscale("log")
    axes[0, col].set_xticks(Ts, [str(t) for t in Ts])
    axes[0, col].set_xticks([], minor=True)
    axes[0, col].set_xlabel("delay T" if task == "copy" else "sequence length T")
    axes[0, col].set_ylabel("final validation loss / baseline")
    axes[0, col].set_title(f"{task}: median over seeds (dots: seeds)", fontsize=9)
    axes[1, col].set_xlabel("step")
    axes[1, col].axhline(1.0, color="k", ls=":", lw=0.8)
    axes[1, col].set_ylabel("training loss / baseline (median over seeds)")
    axes[1, col].set_title(f"{task}, T = {Ts[-1]}: learning curves", fontsize=9)
    for ax in axes[:, col]:
      ax.grid(alpha=0.3, which="both")
      ax.legend(fontsize=7)
  fig.tight_layout()
  report.save_figure(fig, _OUTPUT_DIR.value, "study4_long_dependencies.png")


if __name__ == "__main__":
  app.run(main)
