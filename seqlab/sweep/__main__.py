"""Train a config's sweep in one program and print its table, benchmark it, or search on Optuna.

    python -m seqlab.sweep --config=configs/copy.py:cell=gru,delay=10 \
        --config.sweep.axes="(('optimizer.learning_rate', (1e-3, 3e-3)), ('seed', (0, 1, 2)))" \
        --output_dir=runs/sweep                 # sweep.md (final metrics) and sweep.png

    python -m seqlab.sweep --config=configs/copy.py:cell=gru,delay=10 --benchmark \
        --config.sweep.axes="(('seed', (0, 1, 2, 3, 4, 5, 6, 7)),)" --config.train.num_steps=100

--benchmark trains the members in one vmapped program and then each alone (the runner's
un-vmapped jitted step), on the same prefetched batches, alternating `--repeats` times, and
prints the median wall time per member-step of each, their ratio, and the compile times.

    python -m seqlab.sweep --config=configs/copy.py:cell=gru,delay=10 --search=optuna \
        --config.search.space="(('optimizer.learning_rate', 'log_uniform', 1e-4, 1e-2),)" \
        --study=copy-lr --trials=32 --output_dir=runs/search   # search.md and search.png

--search=optuna asks config.search.batch trials at a time and trains them as populations;
the study lives in --storage (default: sqlite file output_dir/optuna.db); start the same
command on more machines with a PostgreSQL --storage to add workers. The members spread over
the devices of config.mesh (printed); --coordinator_address etc. join processes (grid sweeps).

    python -m seqlab.sweep --config=configs/pbt.py:task=copy --search=pbt --output_dir=runs/pbt
    python -m seqlab.sweep --config=configs/pbt.py:task=copy --search=pbt --output_dir=runs/pbt \
        --replay=3

--search=pbt trains config.pbt's population with population-based training in one program
(seqlab.sweep.pbt_run: lineage.jsonl, pbt.md, winner.json and figures in output_dir; a rerun
resumes); --replay=N trains member N's schedule again from scratch and compares it with
its curve in the population.
"""

import itertools
import pathlib
import statistics
import sys

import jax
import matplotlib.pyplot as plt
import numpy as np
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from seqlab import config_check, errors, sweep
from seqlab.analysis import report
from seqlab.sweep import pbt_run, search
from seqlab.train import distributed
from seqlab.train import mesh as mesh_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where sweep.md and sweep.png go.")
_BENCHMARK = flags.DEFINE_bool("benchmark", False, "Time one program against separate runs.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Benchmark: alternating repeats (medians).")
_SEARCH = flags.DEFINE_enum("search", "grid", ["grid", "optuna", "pbt"],
                            "grid: config.sweep's members; optuna: config.search's space; "
                            "pbt: population-based training of config.pbt.")
_REPLAY = flags.DEFINE_integer("replay", None, "--search=pbt: train member N's schedule from "
                               "output_dir's record as a single run and compare its curve.")
_STUDY = flags.DEFINE_string("study", "seqlab", "Optuna study name (workers share it).")
_STORAGE = flags.DEFINE_string("storage", None, "Optuna storage URL (sqlite:///..., "
                               "postgresql://user@host/db); default: output_dir/optuna.db.")
_TRIALS = flags.DEFINE_integer("trials", 16, "Optuna: trials to finish in the study.")
flags.mark_flags_as_required(["config"])


def benchmark(pop: sweep.Population, num_steps: int, repeats: int) -> dict[str, float]:
  """Median seconds per member-step of one vmapped program and of separate runs, compile apart."""
  data = list(itertools.islice(sweep.batches(pop, 0), num_steps))
  swept, alone, compile_swept, compile_alone = [], [], [], []
  for _ in range(repeats):
    result = sweep.train(pop, num_steps, data=data)
    swept.append(result.train_s / (num_steps * pop.size))
    compile_swept.append(result.compile_s)
    runs = [sweep.train_alone(pop, i, num_steps,
                              data=[sweep.member_batch(pop, b, i) for b in data])
            for i in range(pop.size)]
    alone.append(sum(r.train_s for r in runs) / (num_steps * pop.size))
    compile_alone.append(sum(r.compile_s for r in runs))
  out = {"members": pop.size, "steps": num_steps,
         "swept_ms_per_member_step": 1e3 * statistics.median(swept),
         "alone_ms_per_member_step": 1e3 * statistics.median(alone),
         "compile_s_swept_program": statistics.median(compile_swept),
         "compile_s_all_separate_programs": statistics.median(compile_alone)}
  out["speedup_alone_over_swept"] = (out["alone_ms_per_member_step"]
                                     / out["swept_ms_per_member_step"])
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)
  with errors.user_errors_end_in_one_line(verbose=flags.FLAGS.verbosity >= 1, argv=sys.argv):
    run(_CONFIG.value)


def run(config) -> None:
  """The sweep, search or benchmark the flags ask for."""
  distributed.initialize()
  config_check.check(config)
  if config.task.get("curriculum"):
    raise ValueError("config.task.curriculum: sweeps and searches train one task per program; "
                     "train a curriculum with python -m seqlab.main (study 8 runs one per "
                     "population stage by stage)")
  if _SEARCH.value == "optuna":
    return run_search(config)
  if _SEARCH.value == "pbt":
    return run_pbt(config)
  if _REPLAY.value is not None:
    raise app.UsageError("--replay replays a member of --search=pbt")
  pop = sweep.build(config)
  if mesh_lib.is_primary():
    print(mesh_lib.describe(pop.mesh) + f"; {pop.size} members in {pop.rows} rows", flush=True)
  if _BENCHMARK.value:
    for name, value in benchmark(pop, config.train.num_steps, _REPEATS.value).items():
      print(f"{name}: {value:.4g}" if isinstance(value, float) else f"{name}: {value}")
    return
  result = sweep.train(pop, log_every=config.train.log_every)
  finals = sweep.evaluate(pop, result.state["params"], "validation", config.train.eval_batches)
  rows = [{**f, "final train loss": float(result.history["loss"][-1, i]),
           "max grad norm": float(np.nanmax(result.history["grad_norm"][:, i]))}
          for i, f in enumerate(finals)]
  text = sweep.table(pop.members, rows)
  if not mesh_lib.is_primary():
    return
  print(f"one program, {pop.size} members: compile {result.compile_s:.1f} s, "
        f"{result.train_s:.1f} s for {config.train.num_steps} steps\n{text}")
  if _OUTPUT_DIR.value:
    report.write_text(_OUTPUT_DIR.value, "sweep.md", text)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, m in enumerate(pop.members):
      ax.plot(np.arange(1, len(result.history["loss"]) + 1), result.history["loss"][:, i],
              lw=0.8, label=sweep.label(m))
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    report.save_figure(fig, _OUTPUT_DIR.value, "sweep.png")


def run_pbt(config) -> None:
  """Population-based training to config.train.num_steps (resumed if output_dir holds it), or
  with --replay=N member N's schedule trained again from scratch."""
  if not _OUTPUT_DIR.value:
    raise app.UsageError("--search=pbt needs --output_dir (checkpoints, lineage, figures)")
  if _REPLAY.value is not None:
    summary = pbt_run.replay(config, _OUTPUT_DIR.value, _REPLAY.value)
    print(f"member {summary['member']}'s schedule replayed from scratch for "
          f"{summary['steps']} steps over {len(summary['schedule'])} chunks: training loss "
          f"{summary['replay_loss'][-1]:.5g} "
          f"(in the population {summary['recorded_loss'][-1]:.5g}), max relative difference "
          f"{summary['max_relative_difference']:.2e}; replay_{summary['member']}.json/.png")
    return
  result = pbt_run.run(config, _OUTPUT_DIR.value)
  if mesh_lib.is_primary():
    print(f"compile {result.compile_s:.1f} s, train {result.train_s:.1f} s, evaluate "
          f"{result.eval_s:.1f} s\n" + (pathlib.Path(_OUTPUT_DIR.value) / "pbt.md").read_text())


def run_search(config) -> None:
  """Work on the study until --trials trials finished; write the best trials' table and plot."""
  if jax.process_count() > 1:
    raise app.UsageError("--search=optuna runs one process per worker (each on its local "
                         "devices): start more workers instead of joining processes")
  if not (_OUTPUT_DIR.value or _STORAGE.value):
    raise app.UsageError("--search=optuna needs --output_dir or --storage")
  if _OUTPUT_DIR.value:
    pathlib.Path(_OUTPUT_DIR.value).mkdir(parents=True, exist_ok=True)
  url = _STORAGE.value or f"sqlite:///{pathlib.Path(_OUTPUT_DIR.value).absolute()}/optuna.db"
  study = search.open_study(config, _STUDY.value, url)
  print(mesh_lib.describe(mesh_lib.make(config.mesh, sweep=True)) +
        f"; study {_STUDY.value!r}, {_TRIALS.value} trials", flush=True)
  search.work(config, study, _TRIALS.value)
  text = search.best_table(study)
  print(text)
  if _OUTPUT_DIR.value:
    report.write_text(_OUTPUT_DIR.value, "search.md", text)
    search.plot(study, _OUTPUT_DIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=errors.parse_flags)
