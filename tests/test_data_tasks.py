"""Every builder prepares and reads back without TensorFlow; examples checked by value."""

import importlib.util
import math
import pathlib
import socket
import sys
import tempfile

import numpy as np
import pytest
from sklearn import datasets

from seqlab import data
from seqlab.data.builders import bracket_depth, digits, series
from seqlab.data.vocab import BOS

SMALL = {"num_train": 64, "num_validation": 8, "num_test": 8}
CSV = pathlib.Path(tempfile.mkdtemp()) / "series.csv"  # the csv_series task reads a user's file
CSV.write_text("value\n" + "".join(f"{math.sin(t / 7):.6f}\n" for t in range(2000)))
SERIES_SMALL = {"num_samples": 2000, "window": 50, "stride": 25}
OPTIONS = {
    "copy": {**SMALL, "alphabet_size": 5, "num_symbols": 4, "delay": 12},
    "adding": {**SMALL, "length": 30},
    "parity": {**SMALL, "max_length": 20},
    "bracket_depth": {**SMALL, "max_depth": 4, "max_pairs": 10},
    "mackey_glass": SERIES_SMALL,
    "narma10": SERIES_SMALL,
    "sine_mixture": SERIES_SMALL,
    "time_series": {**SERIES_SMALL, "series": "narma10"},
    "sequential_digits": {},
    "digits_caption": {},
    "translation_pairs": {"max_number": 300, "max_ordinal": 50, "num_dates": 100},
    "char_corpus": {"max_chars": 60_000, "chunk_length": 128},
    "word_corpus": {"max_chars": 60_000, "chunk_length": 128, "max_vocab": 500},
    "csv_series": {**SERIES_SMALL, "path": str(CSV), "column": "value"},
    "trees": {**SMALL, "max_leaves": 5},
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def task_of(name, data_dir, **extra):
  return data.get_task(name, str(data_dir), **{**OPTIONS[name], **extra})


def read_all(task, split):
  source = task.source(split)
  return [source[i] for i in range(len(source))]


def test_every_registered_task_has_test_options():
  assert sorted(OPTIONS) == sorted(data.TASKS)


@pytest.fixture
def no_network(monkeypatch):
  """Any attempt to open a connection fails the test."""
  def refuse(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args}")
  monkeypatch.setattr(socket.socket, "connect", refuse)
  monkeypatch.setattr(socket, "create_connection", refuse)
  monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_prepares_and_reads_back_every_example_without_tensorflow(name, data_dir, no_network):
  task = task_of(name, data_dir)
  assert task.builder.info.file_format.value == "array_record"
  generated = task.metadata["generated"]
  for split in ("train", "validation", "test"):
    written = task.builder.info.splits[split].num_examples
    assert generated[split] == written == len(task.source(split)) == len(read_all(task, split))
    assert written > 0
  if "num_train" in OPTIONS[name]:
    assert generated == {"train": 64, "validation": 8, "test": 8}
  batch = task.batch("train", [0, 1, 2])
  assert batch["lengths"].shape == (3,) and batch["mask"].dtype == bool
  assert "tensorflow" not in sys.modules and importlib.util.find_spec("tensorflow") is None


def test_prepared_data_is_cached(data_dir):
  first = task_of("copy", data_dir)
  folder = pathlib.Path(first.builder.data_dir)
  shard = next(p for p in folder.iterdir() if "train.array_record" in p.name)
  mtime = shard.stat().st_mtime_ns
  second = task_of("copy", data_dir)
  assert second.builder.data_dir == first.builder.data_dir and shard.stat().st_mtime_ns == mtime
  third = task_of("copy", data_dir, delay=13)  # other options: another config folder
  assert third.builder.data_dir != first.builder.data_dir


def test_copy_targets_are_the_copied_symbols(data_dir):
  task = task_of("copy", data_dir)
  A, n, T = 5, 4, 12
  assert task.metadata["baseline"] == pytest.approx(n * math.log(A) / (T + 2 * n))
  for ex in read_all(task, "train"):
    x, y = ex["inputs"], ex["targets"]
    assert len(x) == len(y) == T + 2 * n
    assert np.all((x[:n] >= 1) & (x[:n] <= A))
    assert not x[n:n + T - 1].any() and x[n + T - 1] == A + 1 and not x[n + T:].any()
    assert not y[:n + T].any()
    np.testing.assert_array_equal(y[n + T:], x[:n])
  batch = next(task.batches("train", 8, seed=3))
  np.testing.assert_array_equal(batch["targets"][:, n + T:], batch["inputs"][:, :n])


def test_adding_target_is_the_sum_of_the_marked_numbers(data_dir):
  task = task_of("adding", data_dir)
  examples = read_all(task, "train")
  for ex in examples:
    values, marks = ex["inputs"][:, 0], ex["inputs"][:, 1]
    assert marks.sum() == 2 and marks[:15].sum() == 1 and marks[15:].sum() == 1
    assert np.all((values >= 0) & (values <= 1))
    assert ex["target"] == pytest.approx(values[marks == 1].sum(), abs=1e-6)
  mse = np.mean([(ex["target"] - 1.0) ** 2 for ex in examples])
  assert mse == pytest.approx(task.metadata["baseline"], abs=0.08)
  assert task.metadata["baseline"] == pytest.approx(1 / 6)


def test_parity_and_bracket_depth_labels(data_dir):
  for ex in read_all(task_of("parity", data_dir), "train"):
    assert 1 <= len(ex["bits"]) <= 20 and ex["label"] == ex["bits"].sum() % 2
  task = task_of("parity", data_dir)
  encoded = task.examples("train", [0])[0]
  np.testing.assert_array_equal(encoded["inputs"], read_all(task, "train")[0]["bits"] + 1)
  for ex in read_all(task_of("bracket_depth", data_dir), "train"):
    surplus = np.cumsum(np.where(ex["brackets"] == 1, 1, -1))
    assert surplus[-1] == 0 and surplus.min() >= 0  # balanced
    assert ex["depth"] == surplus.max() == bracket_depth.depth_of(ex["brackets"])


def test_mackey_glass_solves_the_delay_equation():
  dt, lag = 0.1, 170
  x = series.mackey_glass(3000, dt=dt, sample_every=1, washout=0)
  t = np.arange(lag + 1, 2999)
  dxdt = (x[t + 1] - x[t - 1]) / (2 * dt)  # central difference, error O(dt^2)
  rhs = series.mackey_glass_rhs(x[t], x[t - lag])
  np.testing.assert_allclose(dxdt, rhs, atol=2e-4)


def test_time_series_windows_by_value(data_dir):
  mg = task_of("mackey_glass", data_dir)
  full = series.mackey_glass(2001)
  for split in ("train", "test"):
    for ex in read_all(mg, split):
      s = ex["start"]
      np.testing.assert_allclose(ex["inputs"][:, 0], full[s:s + 50], rtol=1e-6)
      np.testing.assert_allclose(ex["targets"][:, 0], full[s + 1:s + 51], rtol=1e-6)
  for ex in read_all(task_of("narma10", data_dir), "train")[1:]:
    u, y = ex["inputs"][:, 0].astype(float), ex["targets"][:, 0].astype(float)
    for t in range(10, 50):  # y(t+1) from y(t-9..t) = targets[t-10..t-1] and u(t-9), u(t)
      expected = (0.3 * y[t - 1] + 0.05 * y[t - 1] * y[t - 10:t].sum()
                  + 1.5 * u[t - 9] * u[t] + 0.1)
      assert y[t] == pytest.approx(expected, rel=1e-5)
  for ex in read_all(task_of("sine_mixture", data_dir), "train"):
    s = series.sine_mixture(np.arange(51), ex["amplitudes"], ex["frequencies"], ex["phases"])
    np.testing.assert_allclose(ex["inputs"][:, 0], s[:50], atol=1e-6)
    np.testing.assert_allclose(ex["targets"][:, 0], s[1:], atol=1e-6)


def test_digits_are_scikit_learns_images(data_dir):
  ref = datasets.load_digits()
  seq, cap = task_of("sequential_digits", data_dir), task_of("digits_caption", data_dir)
  indices = []
  for split in ("train", "validation", "test"):
    for a, b in zip(read_all(seq, split), read_all(cap, split), strict=True):
      np.testing.assert_allclose(a["image"], ref.images[a["index"]] / 16.0, rtol=1e-6)
      assert a["label"] == b["label"] == ref.target[a["index"]] and a["index"] == b["index"]
      indices.append(a["index"])
  assert sorted(indices) == list(range(len(ref.target)))  # the splits partition the images
  row = seq.examples("test", [0])[0]
  assert row["inputs"].shape == (8, 8)
  pixels = data.get_task("sequential_digits", str(data_dir), order="pixels").examples("test", [0])
  assert pixels[0]["inputs"].shape == (64, 1)
  np.testing.assert_array_equal(pixels[0]["inputs"][:, 0], row["inputs"].reshape(-1))


def test_digit_captions_spell_the_label(data_dir):
  task = task_of("digits_caption", data_dir)
  batch = task.batch("train", range(16))
  vocab = task.vocabs["caption"]
  source = read_all(task, "train")[:16]
  for row, ex in enumerate(source):
    name = digits.NAMES[ex["label"]]
    assert vocab.decode(batch["targets"][row]) == name
    assert batch["decoder_inputs"][row, 0] == BOS and batch["lengths"][row] == len(name) + 1
    np.testing.assert_array_equal(batch["inputs"][row], ex["image"])


def test_vocabularies_are_saved_next_to_the_data_and_reload_identically(data_dir):
  task = task_of("char_corpus", data_dir)
  path = task.builder.vocab_path("text")
  assert path.parent == pathlib.Path(task.builder.data_dir) and path.exists()
  train_text = "".join(ex["text"].decode() for ex in read_all(task, "train"))
  assert task.vocabs["text"] == data.Vocab.build([train_text], "char")
  again = task_of("char_corpus", data_dir)
  assert again.vocabs["text"] == task.vocabs["text"]
