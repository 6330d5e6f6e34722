"""Configs as the command line makes them, and tiny in-process runs (tests only)."""

import importlib.util
import json
from pathlib import Path

from absl import flags

from seqlab import config as base
from seqlab.train import modes

ROOT = Path(__file__).resolve().parent.parent
STEPS = 12
TINY = {"train.num_steps": STEPS, "train.log_every": 1, "train.eval_every": STEPS,
        "train.checkpoint_every": STEPS, "train.eval_batches": 1, "train.batch_size": 8}


def load_config(name: str, arg: str | None = None):
  """get_config(arg) of configs/<name>.py."""
  return base.load_file(ROOT / "configs" / f"{name}.py", arg)


def make_config(name: str, variant: str, overrides: dict, data_dir):
  """--config=configs/<name>.py:<variant>, locked as main locks it, then TINY and
  --config.<key>=<value> for every override."""
  config = load_config(name, variant)
  config.lock()
  config.update_from_flattened_dict({**TINY, **overrides, "task.data_dir": str(data_dir)})
  return config


def train_and_check(run: tuple, workdir: Path, data_dir) -> list[float]:
  """Train `run` = (name, variant, overrides) in-process as `python -m seqlab.main` does;
  the training loss falls and the workdir holds its files. Returns the losses."""
  modes.train(make_config(*run, data_dir), str(workdir))
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  losses = [r["loss"] for r in records if r["split"] == "train"]
  assert len(losses) == STEPS
  assert sum(losses[-3:]) / 3 < losses[0], losses
  assert [r for r in records if r["split"] == "validation"]
  for name in ("config.json", "learning_curves.png", "checkpoints"):
    assert (workdir / name).exists(), name
  return losses


_EXPERIMENT_FLAGS: set[str] = set()  # absl flags defined by experiments loaded so far


def load_experiment(name: str):
  """experiments/<name>.py as a module. Experiments define absl flags when imported, several
  the same ones (data_dir), so the flags an earlier load defined are dropped first: two
  studies can load in one test process (xdist puts any two tests in one)."""
  for flag in _EXPERIMENT_FLAGS & set(flags.FLAGS):
    delattr(flags.FLAGS, flag)
  before = set(flags.FLAGS)
  spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  _EXPERIMENT_FLAGS.update(set(flags.FLAGS) - before)
  return module
