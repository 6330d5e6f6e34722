"""One tiny `python -m seqlab.main` run per config family: it trains, evaluates, writes its
workdir and prints the metrics it logs."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from seqlab.train.checkpoint import config_differences

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


# ---------------------------------------------------------------------------
# End to end: one tiny run per config family.
# ---------------------------------------------------------------------------

TINY = ("--config.train.num_steps=6", "--config.train.log_every=3",
        "--config.train.eval_every=6", "--config.train.checkpoint_every=6",
        "--config.train.batch_size=8", "--config.train.eval_batches=2")
RUNS = {
    "adding": ("configs/adding.py:cell=irnn,T=10", ["loss", "close_fraction",
                                                     "loss_vs_baseline"],
               ("--config.task.options.num_train=64", "--config.task.options.num_validation=16",
                "--config.task.options.num_test=16", "--config.model.hidden_size=8")),
    "classify": ("configs/classify.py:task=bracket_depth,model=deep", ["loss", "accuracy"],
                 ("--config.task.options.num_train=64", "--config.task.options.num_validation=16",
                  "--config.task.options.num_test=16", "--config.model.hidden_sizes=(8,8)")),
    "esn": ("configs/esn.py:rho=0.8", ["loss", "nrmse", "loss_vs_persistence"],
            ("--config.task.options.num_samples=2000", "--config.model.hidden_size=50")),
    "tree": ("configs/tree.py:operators=+", ["loss", "accuracy", "node_accuracy"],
             ("--config.task.options.num_train=64", "--config.task.options.num_validation=16",
              "--config.task.options.num_test=16", "--config.model.hidden_size=8")),
    "caption": ("configs/caption.py:cell=gru", ["loss", "token_accuracy", "exact_match"],
                ("--config.model.hidden_size=8",)),
}


@pytest.mark.parametrize("family", sorted(RUNS))
def test_each_config_family_trains_end_to_end(family, tmp_path, data_dir):
  config, metrics, overrides = RUNS[family]
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
