"""Compile time of an experiment's jitted train step (trace + lower apart from XLA compile).

    python scripts/bench_compile.py --config=configs/char_lstm.py

Builds the config's problem, its first batch and initial state as `seqlab.main` does, then
times jax.jit(train_step).trace / .lower / .compile, `--repeats` times in fresh caches.
"""

import os
import statistics
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from seqlab import problems
from seqlab.train import loop, optim

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Compilations to time (caches cleared).")


def main(argv) -> None:
  del argv
  config = _CONFIG.value
  problem = problems.build_problem(config)
  optimizer = optim.make_optimizer(config.optimizer)
  batch = next(problem.train_batches(config.seed, 0))
  state = loop.initial_state(problem, optimizer, config.seed, batch)
  step = loop.make_train_step(problem, optimizer, config.seed, config.train.nonfinite == "skip")
  times = {"trace + lower": [], "compile": [], "total CPU time": []}
  for _ in range(_REPEATS.value):
    jax.clear_caches()
    start, cpu_start = time.perf_counter(), time.process_time()
    lowered = jax.jit(step, donate_argnums=0).trace(state, batch).lower()
    middle = time.perf_counter()
    lowered.compile()
    times["trace + lower"].append(middle - start)
    times["compile"].append(time.perf_counter() - middle)
    times["total CPU time"].append(time.process_time() - cpu_start)
  print(" ; ".join(f"{k} {statistics.median(v):.2f} s" for k, v in times.items())
        + f" (medians of {_REPEATS.value}; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
