"""Study 8: long lags (copy T up to 200, adding T up to 400) with the training tricks of the papers.

Copy T in {50, 100, 200} and adding T in {100, 200, 400}: tanh Elman, IRNN, LSTM and GRU,
several seeds per vmapped program.

    python experiments/study8_long_lags.py --task=copy --output_dir=docs/figures
    python experiments/study8_long_lags.py --task=adding --output_dir=docs/figures
    python experiments/study8_long_lags.py --task=copy --quick --output_dir=/tmp/s8   # CI

Study 4 trained at the lags where every cell still learns something; here the lags are the
papers' (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015; Arjovsky et al. 2016) and
so are the tricks. Each program trains the task's config file at (cell, T) with its long-lag
recipe, `configs/copy.py:cell=...,delay=T` or `configs/adding.py:cell=...,T=...` (the one
source of truth: a user's CLI run and the study's row train the same config, here with
several seeds in one vmapped program):
  - LSTM and GRU: chrono initialisation (Tallec & Ollivier 2018) with T_max = the sequence
    length: b_f = log U[1, T_max - 1], b_i = -b_f (LSTM), b_z = log U[...] (GRU), so that
    the gates start out keeping their state over lags up to the task's;
  - IRNN: relu with W = I (Le et al.) and a smaller learning rate (relu units explode);
  - everyone: Adam, global-norm clipping at 1 (Pascanu et al. 2013), a cosine learning-rate
    decay to a tenth, batch 32;
  - copy: the config's delay curriculum (Zaremba & Sutskever 2014, "Learning to Execute",
    config.task.curriculum): the same parameters and optimizer state train at T/10, T/4,
    T/2 and then T (from a zero delay an LSTM sits at the memoryless baseline for thousands
    of steps: 0.9-1.0 of it after 2000 steps at T = 100).
Score: the final validation loss over the memoryless baseline (copy: n log A / (T + 2n)
nats per step; adding: MSE 1/6); solved: below 0.1. Each (T, cell) is one program; finished
programs are kept in <output_dir>/study8_long_lags_<task>.json with the config they trained
(seeds and steps included); the table and figure are rewritten after each, so a run stopped
early leaves a partial table, and a rerun skips every program whose config did not change
(so changing one cell's learning rate in its config file reruns that cell only);
--report_only rewrites the table and figure from what is done). Writes
study8_long_lags_<task>.png and .md.
"""

import json
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import ml_collections
import numpy as np
from absl import app, flags

from seqlab import config as base
from seqlab.analysis import report
from seqlab.sweep import population, studies
from seqlab.train import modes

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

_TASK = flags.DEFINE_enum("task", "copy", ["copy", "adding"], "Which task.")
_QUICK = flags.DEFINE_bool("quick", False, "A seconds-long smoke run (short T, two cells).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/study8", "Where the PNG and table go.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Prepared datasets are cached here.")
_CELLS = flags.DEFINE_list("cells", ["elman", "irnn", "lstm", "gru"], "Cell presets.")
_LENGTHS = flags.DEFINE_list("lengths", [], "T values (default: the task's, see TASKS).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds, swept in one program.")
_STEPS = flags.DEFINE_integer("steps", 0, "Adam steps per program (0: the config's).")
_CURRICULUM = flags.DEFINE_bool("curriculum", True, "Train copy through the config's delay "
                                "curriculum (--nocurriculum: the task at T alone).")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Train nothing: rewrite the table and "
                                 "figure from the finished programs in the output_dir's JSON.")
SOLVED = 0.1  # loss / baseline below this counts as solved

# task -> its config file, the variant naming its length, the lengths T, the quality metric
TASKS = {
    "copy": {"file": "copy.py", "key": "delay", "lengths": (50, 100, 200),
             "metric": "accuracy"},
    "adding": {"file": "adding.py", "key": "T", "lengths": (100, 200, 400),
               "metric": "close_fraction"},
}


def config_of(task: str, T: int, cell: str, seeds, steps: int, quick: bool,
              curriculum: bool, data_dir: str = "data") -> ml_collections.ConfigDict:
  """The program (task, T, cell): the task's config with its long-lag recipe at (cell, T),
  the seeds as its population, and only what the flags change (steps, no curriculum, the
  quick sizes)."""
  spec = TASKS[task]
  config = base.load_file(CONFIGS / spec["file"], f"cell={cell},{spec['key']}={T},"
                          "recipe=long_lag")
  fields = {"task.data_dir": data_dir}
  if steps:
    fields |= {"train.num_steps": steps, "optimizer.decay_steps": steps}
  if quick:
    fields |= {"task.options.num_train": 512, "task.options.num_validation": 64,
               "model.hidden_size": 16}
  if not curriculum:
    fields["task.curriculum"] = ()
  return studies.with_fields(config, fields, (("seed", tuple(seeds)),))


def recipe_text(config: ml_collections.ConfigDict) -> str:
  """The table's recipe column: 'chrono init, curriculum, lr 0.003'."""
  tricks = (["chrono init"] if config.model.cell_options.get("chrono") else []) + (
      ["curriculum"] if len(config.task.curriculum) > 1 else [])
  return ", ".join([*tricks, f"lr {config.optimizer.learning_rate:g}"])


def signature(config: ml_collections.ConfigDict) -> dict:
  """What a program's result depends on, its whole config but where the data is cached: a
  cached result is reused only where it matches."""
  fields = config.to_dict()
  del fields["task"]["data_dir"]
  return json.loads(json.dumps(fields, default=str))


def run_one(config: ml_collections.ConfigDict, metric: str) -> dict:
  """Train the seeds of one program, stage after stage of its curriculum as one vmapped
  program each, the state passed on; the numbers the table and plot need."""
  state, losses, compile_s, train_s, done = None, [], 0.0, 0.0, 0
  option = config.task.curriculum_option
  for value, end in modes.curriculum_stages(config):
    stage = config if value is None else studies.with_fields(
        config, {f"task.options.{option}": value}, config.sweep.axes)
    pop = population.build(stage)
    result = population.train(pop, end - done, state=state)
    state, compile_s, train_s = result.state, compile_s + result.compile_s, train_s + result.train_s
    baseline = pop.problem.task.metadata["baseline"]
    losses.append(result.history["loss"] / baseline)  # [steps of the stage, seeds]
    done = end
  finals = population.evaluate(pop, state["params"], "validation", config.train.eval_batches)
  losses = np.concatenate(losses)
  steps = config.train.num_steps
  every = max(1, steps // 200)  # keep ~200 points of each learning curve
  return {"ratio": [f["loss_vs_baseline"] for f in finals],
          "quality": [f[metric] for f in finals],
          "curve_steps": list(range(1, steps + 1, every)),
          "curves": losses[::every].T.tolist(), "compile_s": compile_s, "train_s": train_s}


def main(argv):
  del argv
  studies.quiet()
  task, quick = _TASK.value, _QUICK.value
  spec = TASKS[task]
  cells = ("elman", "gru") if quick else tuple(_CELLS.value)
  lengths = (12,) if quick else tuple(int(t) for t in _LENGTHS.value) or spec["lengths"]
  seeds = (0, 1) if quick else tuple(int(s) for s in _SEEDS.value)
  steps = 40 if quick else _STEPS.value

  def program(key: str) -> ml_collections.ConfigDict:  # key: "T cell"
    T, cell = key.split()
    return config_of(task, int(T), cell, seeds, steps, quick, _CURRICULUM.value,
                     _DATA_DIR.value)

  cache = os.path.join(_OUTPUT_DIR.value, f"study8_long_lags_{task}.json")
  results = {}
  if os.path.exists(cache):  # keep the programs trained with the configs this run would use
    saved = json.load(open(cache))["results"]
    results = {k: r for k, r in saved.items() if r.get("signature") == signature(program(k))}
  t_start = time.perf_counter()
  for T in lengths:
    for cell in cells:
      key = f"{T} {cell}"
      if key not in results and _REPORT_ONLY.value:
        continue
      if key not in results:
        config = program(key)
        results[key] = {**run_one(config, spec["metric"]), "signature": signature(config)}
        report.write_text(_OUTPUT_DIR.value, os.path.basename(cache),
                          json.dumps({"results": results}))
        write_report(task, results, program)
      r = results[key]
      print(f"{task} T={T} {cell}: loss/baseline {np.round(r['ratio'], 4)} "
            f"({r['compile_s'] + r['train_s']:.0f} s)", flush=True)
  print(write_report(task, results, program))
  print(f"wall time {time.perf_counter() - t_start:.0f} s; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


CELL_ORDER = ("elman", "irnn", "lstm", "gru")  # the table's and legend's order


def by_length_then_cell(key: str) -> tuple:
  T, cell = key.split()
  return int(T), CELL_ORDER.index(cell) if cell in CELL_ORDER else len(CELL_ORDER), cell


def write_report(task: str, results: dict, program) -> str:
  """The markdown table (rows sorted by T, then cell) and the figure of what is done;
  `program(key)` is the config behind each row."""
  keys = sorted(results, key=by_length_then_cell)
  if not keys:
    return "(no program finished)"
  rows = []
  for key in keys:
    T, cell = key.split()
    r = results[key]
    ratio = np.array(r["ratio"])
    rows.append([int(T), cell, recipe_text(program(key)), float(np.median(ratio)),
                 " ".join(f"{x:.3g}" for x in ratio), f"{int(np.sum(ratio < SOLVED))}/{len(ratio)}",
                 float(np.median(r["quality"])), r["compile_s"], r["train_s"]])
  quality = "accuracy" if task == "copy" else "fraction within 0.04"
  headers = ["T", "cell", "recipe", "val loss / baseline (median)", "per seed",
             f"seeds solved (< {SOLVED:g})", f"{quality} (median)", "compile s", "train s"]
  table = report.markdown_table(headers, rows, digits=3)
  config = program(keys[0])
  o = config.task.options
  what = (f"copy: replay {o.num_symbols} symbols of an alphabet of {o.alphabet_size} after T "
          "blanks" if task == "copy" else "adding: the sum of the two marked numbers among T")
  text = (f"# Study 8: long lags, {what}; {len(results[keys[0]]['ratio'])} seeds per program, "
          f"{config.train.num_steps} Adam steps\n\n"
          f"{table}\nLoss / baseline: the final validation loss over the memoryless baseline "
          "(1: nothing remembered, solved: < 0.1). Each row trains "
          f"`configs/{TASKS[task]['file']}:cell=...,{TASKS[task]['key']}=T` (its long-lag "
          "recipe): Adam, clip_norm 1, cosine learning-rate decay to lr / 10, batch "
          f"{config.train.batch_size}, H = {config.model.hidden_size}; chrono init: "
          f"T_max = the sequence length{curriculum_text(config)}. Each row is one vmapped "
          "program training all seeds (compile and train seconds on a shared 2-core CPU).\n")
  report.write_text(_OUTPUT_DIR.value, f"study8_long_lags_{task}.md", text)
  plot(task, results, keys)
  return table


def curriculum_text(config: ml_collections.ConfigDict) -> str:
  """'; curriculum: ...' for the table's note, or '' when the run has one stage."""
  plan = config.task.curriculum
  if len(plan) < 2:
    return ""
  return ("; curriculum: every cell's run trains at delays "
          f"{' -> '.join(f'{f:g} T' for f, _ in plan)} for "
          f"{' / '.join(f'{s:.0%}' for _, s in plan)} of the steps")


def plot(task: str, results: dict, keys: list[str]) -> None:
  """Loss / baseline against T per cell (left); learning curves per T (right panels)."""
  lengths = sorted({int(k.split()[0]) for k in keys})
  cells = sorted({k.split()[1] for k in keys}, key=lambda c: by_length_then_cell(f"0 {c}"))
  colour = {c: f"C{i}" for i, c in enumerate(CELL_ORDER + tuple(sorted(set(cells) - set(
      CELL_ORDER))))}
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
