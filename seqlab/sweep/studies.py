"""What the training studies share: one sweep program per config (loaded by its path).

    config = seqlab.config.load_file("configs/adding.py", "cell=elman,T=50")
    run = studies.run(config, overrides={"train.num_steps": 500},
                      axes=(("seed", (0, 1, 2)),))
    run.result.history["loss"]   # [steps, members];   run.finals: validation metrics per member
"""

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
from absl import flags
from absl import logging as absl_logging

from seqlab import config as base
from seqlab.sweep import population, space


def quiet() -> None:
  """Log at WARNING (TFDS and JAX log every dataset read at INFO) unless --verbosity is given."""
  if not flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)


def with_fields(config: ml_collections.ConfigDict, fields: Mapping[str, Any],
                axes: Sequence[tuple[str, tuple]] = (), mode: str = "grid"
                ) -> ml_collections.ConfigDict:
  """`config` with dotted `fields` set (new ones added), the sweep axes set, and locked."""
  c = config.copy_and_resolve_references()
  c.unlock()
  for path, value in fields.items():
    base.set_field(c, path, value, add=True)
  c.sweep.axes = tuple(axes)
  c.sweep.mode = mode
  c.lock()
  return c


@dataclasses.dataclass
class Run:
  """One sweep program: its population, the training result and the final metrics."""

  pop: population.Population
  result: population.Result
  finals: list[dict[str, float]]
  wall_s: float


def run(config: ml_collections.ConfigDict, fields: Mapping[str, Any] | None = None,
        axes: Sequence[tuple[str, tuple]] = (), mode: str = "grid",
        split: str = "validation") -> Run:
  """Build, train (one program) and evaluate the sweep of `config` with `fields` and `axes`."""
  t0 = time.perf_counter()
  config = with_fields(config, fields or {}, axes, mode)
  pop = population.build(config)
  result = population.train(pop)
  finals = population.evaluate(pop, result.state["params"], split, config.train.eval_batches)
  return Run(pop, result, finals, time.perf_counter() - t0)


def axis_values(pop: population.Population, path: str) -> list[Any]:
  """Each member's value on axis `path`."""
  space.axis_kind(path)
  return [m[path] for m in pop.members]
