"""Faults done on purpose: damaged checkpoints, a full disk, a save killed midway, a damaged
data cache, impossible sizes. Each ends in one line naming the cause and the fix; the run goes
on from the last good state where it can (exit status 0), stops with status 2 where it cannot,
and no checkpoint the user had is lost."""

import errno
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from config_testing import TINY, load_config, make_config

from seqlab import config_check, data
from seqlab.data import builder as builder_lib
from seqlab.data.files import DataError
from seqlab.train import checkpoint, modes

ROOT = Path(__file__).resolve().parent.parent
COPY = {"task.options.num_train": 64, "task.options.num_validation": 16,
        "task.options.num_test": 16, "model.hidden_size": 8, "train.log_every": 10,
        "train.eval_every": 10, "train.checkpoint_every": 10}
FLAGS = [f"--config.{k}={v}" for k, v in {**TINY, **COPY}.items() if k != "train.num_steps"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def _train(workdir, data_dir, steps, **overrides):
  modes.train(make_config("copy", None, {**COPY, "train.num_steps": steps, **overrides},
                          data_dir), str(workdir))


def _main(workdir, data_dir, steps, *flags, cwd=ROOT):
  return subprocess.run(
      [sys.executable, "-m", "seqlab.main", "--config=configs/copy.py", f"--workdir={workdir}",
       f"--config.task.data_dir={data_dir}", f"--config.train.num_steps={steps}", *FLAGS,
       *flags], cwd=cwd, capture_output=True, text=True, timeout=600)


def _array_files(step_dir: Path) -> list[Path]:
  return sorted(p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d")


def _flip(path: Path) -> None:
  raw = bytearray(path.read_bytes())
  for i in range(len(raw) // 3, len(raw), max(len(raw) // 7, 1)):
    raw[i] ^= 0xFF
  path.write_bytes(bytes(raw))


def _truncate(path: Path) -> None:
  path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _losses(workdir) -> dict[int, float]:
  lines = [json.loads(x) for x in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
  return {r["step"]: r["loss"] for r in lines if r["split"] == "train"}


# ---------------------------------------------------------------------------
# A damaged checkpoint: named, moved aside, and the run resumes from the newest intact one.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("damage", [_flip, _truncate], ids=["byte flips", "truncation"])
def test_a_damaged_latest_checkpoint_is_moved_aside_and_the_run_goes_on(damage, tmp_path,
                                                                        data_dir):
  workdir = tmp_path / "run"
  _train(workdir, data_dir, 20)
  first = _losses(workdir)
  for path in _array_files(workdir / "checkpoints" / "20"):
    damage(path)
  result = _main(workdir, data_dir, 30)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "Traceback" not in result.stderr, result.stderr[-2000:]
  notice = [line for line in result.stdout.splitlines() if line.startswith("seqlab: checkpoint")]
  assert notice and "checkpoint 20" in notice[0] and "damaged" in notice[0], result.stdout
  assert "resuming from checkpoint 10" in result.stdout
  assert (workdir / "checkpoints" / "damaged" / "20").is_dir()  # moved, never deleted
  assert sorted(checkpoint.Checkpoints(workdir).steps()) == [10, 20, 30]
  assert _losses(workdir)[20] == first[20]  # steps 11-20 trained again from checkpoint 10


def _two_checkpoints(tmp_path):
  """Checkpoints 10 and 20 of a small state, saved in-process."""
  ckpt = checkpoint.Checkpoints(tmp_path)
  state = lambda v: {"params": {"W": jnp.full((3, 4), v)}, "step": jnp.int32(v)}
  ckpt.save(10, state(10.0))
  ckpt.save(20, state(20.0))
  return ckpt, state(0.0)


def test_an_array_that_differs_from_its_digest_is_damaged(tmp_path, capsys):
  """Silent damage (the files read, the values changed) is caught by the digest."""
  ckpt, like = _two_checkpoints(tmp_path)
  digest_file = tmp_path / "checkpoints" / "20" / checkpoint.DIGEST
  digest = json.loads(digest_file.read_text())
  digest["['params']['W']"] = "0" * 64
  digest_file.write_text(json.dumps(digest))
  step, state = ckpt.restore_intact(like)
  assert step == 10 and float(state["params"]["W"][0, 0]) == 10.0
  assert "differ from their digest" in capsys.readouterr().out
  assert (tmp_path / "checkpoints" / "damaged" / "20" / checkpoint.DIGEST).exists()


def test_no_intact_checkpoint_is_one_error_and_nothing_moves(tmp_path):
  ckpt, like = _two_checkpoints(tmp_path)
  for step in (10, 20):
    for path in _array_files(tmp_path / "checkpoints" / str(step)):
      _truncate(path)
  before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
  with pytest.raises(checkpoint.CheckpointError, match="no intact checkpoint.*checkpoint 20"):
    ckpt.restore_intact(like)
  assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_resume_step_picks_a_checkpoint_and_sets_the_newer_ones_aside(tmp_path):
  ckpt, like = _two_checkpoints(tmp_path)
  step, state = ckpt.restore_intact(like, step=10)
  assert step == 10 and float(state["params"]["W"][0, 0]) == 10.0
  assert ckpt.steps() == [10]
  assert (tmp_path / "checkpoints" / "superseded" / "20").is_dir()
  with pytest.raises(checkpoint.CheckpointError, match="no checkpoint 15.*there are: \\[10\\]"):
    ckpt.restore_intact(like, step=15)


def test_a_damaged_checkpoint_chosen_by_hand_is_an_error(tmp_path, data_dir):
  workdir = tmp_path / "run"
  _train(workdir, data_dir, 20)
  for path in _array_files(workdir / "checkpoints" / "10"):
    _truncate(path)
  result = _main(workdir, data_dir, 30, "--config.train.resume_step=10")
  assert result.returncode == 2
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: no intact checkpoint") and "checkpoint 10" in last, last
  assert sorted(checkpoint.Checkpoints(workdir).steps()) == [10, 20]  # nothing moved


# ---------------------------------------------------------------------------
# Saving that fails, and a save killed midway.
# ---------------------------------------------------------------------------


def test_a_save_that_fails_names_the_cause_and_keeps_the_last_good_checkpoint(tmp_path,
                                                                               monkeypatch):
  ckpt, like = _two_checkpoints(tmp_path)
  partial = tmp_path / "checkpoints" / "30.orbax-checkpoint-tmp"

  def no_space(step, args, force):
    partial.mkdir()
    raise OSError(errno.ENOSPC, "No space left on device")
  monkeypatch.setattr(ckpt.manager, "save", no_space)
  with pytest.raises(checkpoint.CheckpointError,
                     match="saving checkpoint 30 .* no space left on device; the last good "
                           "checkpoint is step 20"):
    ckpt.save(30, like)
  assert not partial.exists()
  monkeypatch.undo()
  assert ckpt.restore_intact(like)[0] == 20


def _tiny_tmpfs(path: Path) -> bool:
  path.mkdir()
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)],
                           capture_output=True)
  return mounted.returncode == 0


def test_a_full_disk_ends_the_run_in_one_line(tmp_path, data_dir):
  """The workdir on a 256 KB tmpfs (where this machine lets the test mount one)."""
  disk = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
  if not _tiny_tmpfs(disk):
    pytest.skip("cannot mount a tmpfs here (needs root); the injected ENOSPC test covers it")
  try:
    result = _main(disk / "run", data_dir, 30, "--config.model.hidden_size=64")
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert "no space left on device" in lines[0].lower(), lines[0]
    assert not list((disk / "run" / "checkpoints").glob("*orbax-checkpoint-tmp*"))
    ckpt = checkpoint.Checkpoints(disk / "run")
    for step in ckpt.steps():  # every checkpoint that was written reads back
      ckpt.restore_flat(step)
    ckpt.close()
  finally:
    subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_save_killed_midway_leaves_a_run_that_resumes_to_the_same_end(tmp_path, data_dir):
  """kill -9 during a save leaves orbax's temporary folder and the previous checkpoint; the
  rerun resumes from that checkpoint and ends as an uninterrupted run (orbax's manager removes
  the folder when it opens the directory)."""
  whole, cut = tmp_path / "whole", tmp_path / "cut"
  _train(whole, data_dir, 30)
  _train(cut, data_dir, 20)
  checkpoints = cut / "checkpoints"
  shutil.rmtree(checkpoints / "20")  # the save of step 20 was killed midway:
  partial = checkpoints / "20.orbax-checkpoint-tmp"
  shutil.copytree(whole / "checkpoints" / "20", partial)  # its temporary folder, half written
  for path in _array_files(partial)[::2]:
    path.unlink()
  _train(cut, data_dir, 30)
  assert not partial.exists()
  a = checkpoint.Checkpoints(whole).restore_flat(30)
  b = checkpoint.Checkpoints(cut).restore_flat(30)
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


# ---------------------------------------------------------------------------
# A damaged data cache: prepared again from its source.
# ---------------------------------------------------------------------------


def _copy_files(task) -> list[Path]:
  return sorted(Path(task.builder.data_dir).glob("*.array_record*"))


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_damaged_prepared_dataset_is_prepared_again(damage, tmp_path, capsys):
  options = {"num_train": 32, "num_validation": 8, "num_test": 8, "delay": 3}
  task = data.get_task("copy", data_dir=str(tmp_path), **options)
  want = [task.source("train")[i] for i in range(32)]
  train_file = next(p for p in _copy_files(task) if "-train." in p.name)
  if damage == "truncate":
    train_file.write_bytes(train_file.read_bytes()[:1000])
  else:
    train_file.unlink()
  capsys.readouterr()
  task = data.get_task("copy", data_dir=str(tmp_path), **options)
  out = capsys.readouterr().out
  assert "is damaged (split 'train'" in out and "preparing it again" in out, out
  for i, example in enumerate(want):  # the same examples
    for key, value in example.items():
      np.testing.assert_array_equal(task.source("train")[i][key], value, err_msg=key)
  assert builder_lib.damaged(task.builder) is None


def test_a_cache_whose_source_file_is_gone_is_one_error(tmp_path):
  """A user's file is part of its cache's name (path, size, mtime), so a file that is gone
  is named before any cache is read, with what to do."""
  series = tmp_path / "load.csv"
  series.write_text("value\n" + "\n".join(str(np.sin(t / 5)) for t in range(600)) + "\n")
  options = {"path": str(series), "column": "value", "num_samples": 600, "window": 50}
  data.get_task("csv_series", data_dir=str(tmp_path / "data"), **options)
  series.unlink()
  with pytest.raises(DataError, match=r"load.csv: no such file or folder; fix: point"):
    data.get_task("csv_series", data_dir=str(tmp_path / "data"), **options)


def test_a_series_too_short_for_its_windows_is_one_error(tmp_path):
  """Found running the data guide's command shortened: TFDS failed on an empty split."""
  series = tmp_path / "load.csv"
  series.write_text("value\n" + "\n".join(str(t) for t in range(600)) + "\n")
  with pytest.raises(DataError, match=r"599 steps give validation and test splits of 60 "
                                      r"steps, shorter than one window of 100; fix"):
    data.get_task("csv_series", data_dir=str(tmp_path), path=str(series), column="value")


# ---------------------------------------------------------------------------
# Impossible sizes, probabilities and choices: one line before anything is built.
# ---------------------------------------------------------------------------


BAD = [("model.hidden_size", -5, "must be a positive integer"),
       ("train.batch_size", 0, "must be a positive integer"),
       ("train.num_steps", 0, "must be a positive integer"),
       ("task.options.num_symbols", 0, "must be a positive integer"),
       ("optimizer.learning_rate", 0.0, "must be > 0"),
       ("optimizer.clip_norm", -1.0, "must be >= 0"),
       ("decode.top_p", 1.5, "must lie in \\(0, 1\\]"),
       ("train.nonfinite", "skipp", "unknown value; known: stop, skip"),
       ("optimizer.schedule", "cosin", "unknown value; known: constant, cosine"),
       ("model.backend", "cuda", "unknown value; known: auto, scan")]


@pytest.mark.parametrize("field, value, message", BAD, ids=[b[0] for b in BAD])
def test_an_impossible_value_is_named(field, value, message, tmp_path):
  config = make_config("copy", None, {field: value}, tmp_path)
  with pytest.raises(ValueError, match=f"^--config.{field}={value!r}: {message}".replace(
      "(", "\\(").replace(")", "\\)").replace("\\\\", "\\")):
    config_check.check(config)


def test_the_search_choices_are_the_searchs_own():
  from seqlab.sweep import search
  assert set(config_check.SAMPLERS) == set(search.SAMPLERS)
  assert set(config_check.PRUNERS) == set(search.PRUNERS)


def test_every_shipped_config_passes_the_checks():
  variants = {"copy": ["cell=clockwork", "cell=multiscale_leaky", "model=deep", "model=tdnn"],
              "char_lstm": ["model=transformer_lm", "size=large"], "word_lm": ["vocab=0"],
              "translation": ["model=transformer"], "classify": ["task=digits,model=grid"],
              "esn": ["series=csv"], "adding": [], "tree": [], "caption": [], "demo": []}
  for name, args in variants.items():
    for arg in [None, *args]:
      config_check.check(load_config(name, arg))


def test_an_impossible_size_ends_the_run_in_one_line_before_anything_is_built(tmp_path):
  result = _main(tmp_path / "run", tmp_path / "data", 10, "--config.model.hidden_size=-5")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      "error: --config.model.hidden_size=-5: must be a positive integer "
      "(--verbosity=1 shows the traceback)"]
  assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()

