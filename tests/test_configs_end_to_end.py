"""One tiny `python -m seqlab.main` run per config family: it trains, evaluates, writes its
workdir and prints the metrics it logs."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqlab import config as base
from seqlab.train.checkpoint import config_differences

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


# ---------------------------------------------------------------------------
# End to end: one tiny run per config family.
# ---------------------------------------------------------------------------

# 64 steps of batches of 8: with 64 training examples, steps 1-8 and 57-64 are the first and
# the eighth epoch over the same examples, so their mean train losses differ only because the
# params changed (a run that learns nothing gives exactly 1, a flipped update > 1).
STEPS, EPOCH = 64, 8
TINY = (f"--config.train.num_steps={STEPS}", "--config.train.log_every=1",
        f"--config.train.eval_every={STEPS}", f"--config.train.checkpoint_every={STEPS}",
        "--config.train.batch_size=8", "--config.train.eval_batches=2")
SMALL_SPLITS = ("--config.task.options.num_train=64", "--config.task.options.num_validation=16",
                "--config.task.options.num_test=16")
# family: (config, metrics, overrides, largest last/first epoch train-loss ratio). Measured
# ratios: adding 0.74, classify 0.88, tree 0.91, caption 0.79 (a different sample of its
# ~1400 images each step); each bound sits between that and 1.
RUNS = {
    "adding": ("configs/adding.py:cell=irnn,T=10", ["loss", "close_fraction",
                                                     "loss_vs_baseline"],
               (*SMALL_SPLITS, "--config.model.hidden_size=8"), 0.85),
    "classify": ("configs/classify.py:task=bracket_depth,model=deep", ["loss", "accuracy"],
                 (*SMALL_SPLITS, "--config.model.hidden_sizes=(8,8)"), 0.95),
    "esn": ("configs/esn.py:rho=0.8", ["loss", "nrmse", "loss_vs_persistence"],
            ("--config.task.options.num_samples=2000", "--config.model.hidden_size=50"), None),
    "tree": ("configs/tree.py:operators=+", ["loss", "accuracy", "node_accuracy"],
             (*SMALL_SPLITS, "--config.model.hidden_size=8"), 0.96),
    "caption": ("configs/caption.py:cell=gru", ["loss", "token_accuracy", "exact_match"],
                ("--config.model.hidden_size=8",), 0.9),
}


@pytest.mark.parametrize("family", sorted(RUNS))
def test_each_config_family_trains_end_to_end(family, tmp_path, data_dir):
  config, metrics, overrides, largest_ratio = RUNS[family]
  workdir = tmp_path / family
  cmd = [sys.executable, "-m", "seqlab.main", f"--config={config}", f"--workdir={workdir}",
         f"--config.task.data_dir={data_dir}", *TINY, *overrides]
  if family == "esn":  # the closed-form fit happens at init; one step evaluates it
    cmd += ["--config.train.num_steps=1", "--config.train.eval_every=1",
            "--config.train.checkpoint_every=1", "--config.train.log_every=1"]
  result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  last = [r for r in records if r["split"] == "validation"][-1]
  assert set(metrics) <= set(last) and all(math.isfinite(last[m]) for m in metrics)
  printed = result.stdout.split("validation: ")[-1].split()
  assert printed[0::2][:len(metrics)] == metrics  # the printed line shows the same metrics
  assert float(printed[1]) == pytest.approx(last["loss"], abs=1e-4)
  config_json = json.loads((workdir / "config.json").read_text())
  assert config_json["task"]["data_dir"] == str(data_dir)
  assert (workdir / "learning_curves.png").stat().st_size > 1000
  assert (workdir / "checkpoints").is_dir()
  if largest_ratio is not None:  # it learns: the loss falls by a stated factor
    train = np.array([r["loss"] for r in records if r["split"] == "train"])
    assert len(train) == STEPS
    ratio = train[-EPOCH:].mean() / train[:EPOCH].mean()
    assert ratio < largest_ratio, f"{family}: last/first epoch train loss {ratio:.3f}"
  if family == "esn":
    assert last["nrmse"] < 0.05
  if family == "caption":
    assert "captions (test images):" in result.stdout


def test_a_tuple_config_field_equals_its_list_read_back_from_config_json():
  """configs/classify.py:model=deep sets hidden_sizes = (64, 64); config.json reads [64, 64]."""
  saved = json.loads(json.dumps({"model": {"hidden_sizes": (64, 64)}, "sweep": {"axes": ()}}))
  same = {"model": {"hidden_sizes": (64, 64)}, "sweep": {"axes": ()}}
  assert config_differences(saved, same) == []
  assert config_differences(saved, {"model": {"hidden_sizes": (64, 32)},
                                    "sweep": {"axes": ()}}) == ["model.hidden_sizes"]


@pytest.mark.parametrize("file,key,threshold", [("copy.py", "delay", 50), ("adding.py", "T", 100)])
def test_the_long_lag_recipe_comes_with_the_length_and_the_recipe_variant(file, key, threshold):
  """recipe=auto takes study 8's recipe from the task's LONG_LAG on; long_lag and none force it."""
  load = lambda arg: base.load_file(ROOT / "configs" / file, arg)
  has_recipe = lambda c: c.optimizer.schedule == "cosine" and c.task.options.num_train == 4096
  assert not has_recipe(load(f"cell=gru,{key}={threshold - 1}"))
  at = load(f"cell=gru,{key}={threshold}")
  assert has_recipe(at) and at.optimizer.end_learning_rate == at.optimizer.learning_rate / 10
  length = threshold + (2 * at.task.options.num_symbols if key == "delay" else 0)
  assert at.model.cell_options.chrono == length  # T_max: the sequence's length
  assert has_recipe(load(f"cell=gru,{key}=10,recipe=long_lag"))
  assert not has_recipe(load(f"cell=gru,{key}={2 * threshold},recipe=none"))
  assert load(f"cell=irnn,{key}={threshold}").optimizer.learning_rate < at.optimizer.learning_rate
  with pytest.raises(ValueError, match="recipe='longlag'"):
    load(f"cell=gru,{key}=10,recipe=longlag")
