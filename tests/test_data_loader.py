"""Task.batches: seeded shuffling, every example once per epoch, exact resume, buckets."""

import itertools
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab import data

N, B = 40, 8  # 5 steps per epoch


@pytest.fixture(scope="module")
def task(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("data"))
  return data.get_task("parity", directory, num_train=N, num_validation=4, num_test=4,
                       min_length=3, max_length=30)


def take(iterator, n):
  return list(itertools.islice(iterator, n))


def same(a, b):
  return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def row_keys(batch):
  """Each row as (length, bits): identifies the example (bits + 1 are the inputs)."""
  return [(int(L), tuple(x[:L].tolist())) for x, L in zip(batch["inputs"], batch["lengths"],
                                                           strict=True)]


def test_each_epoch_holds_every_example_once_in_a_new_order(task):
  stored = [task.source("train")[i] for i in range(N)]
  everything = sorted((len(ex["bits"]), tuple((ex["bits"] + 1).tolist())) for ex in stored)
  assert task.steps_per_epoch("train", B) == N // B
  epochs = take(task.batches("train", B, seed=7, num_epochs=2), 100)
  assert len(epochs) == 2 * (N // B)  # num_epochs stops the iterator
  first = [k for b in epochs[:5] for k in row_keys(b)]
  second = [k for b in epochs[5:] for k in row_keys(b)]
  assert sorted(first) == sorted(second) == everything and first != second
  for b in epochs:  # the label really is the parity of the bits (ids = bits + 1)
    np.testing.assert_array_equal(b["targets"], ((b["inputs"] - 1) * b["mask"]).sum(1) % 2)


def test_the_same_seed_gives_the_same_batches_and_another_seed_others(task):
  a = take(task.batches("train", B, seed=1), 7)
  b = take(task.batches("train", B, seed=1, num_threads=0), 7)
  c = take(task.batches("train", B, seed=2), 7)
  assert all(same(x, y) for x, y in zip(a, b, strict=True))
  assert not all(same(x, y) for x, y in zip(a, c, strict=True))


@settings(deadline=None, max_examples=12)
@given(st.integers(0, 13), st.integers(0, 3))
def test_resuming_at_a_step_continues_exactly(task, start, seed):
  full = take(task.batches("train", B, seed=seed, num_threads=0), 16)
  resumed = take(task.batches("train", B, seed=seed, start_step=start, num_threads=0), 16 - start)
  assert all(same(x, y) for x, y in zip(full[start:], resumed, strict=True))


def test_unshuffled_batches_follow_the_stored_order(task):
  batch = next(task.batches("validation", 4, shuffle=False))
  stored = [task.source("validation")[i]["bits"] + 1 for i in range(4)]
  for row, bits in enumerate(stored):
    np.testing.assert_array_equal(batch["inputs"][row, :len(bits)], bits)


def test_buckets_pad_to_their_boundary(task):
  boundaries = [10, 20, 30]
  lengths = task.lengths("train")
  batches = take(task.batches("train", 2, seed=0, bucket_boundaries=boundaries,
                              drop_remainder=False, num_epochs=1), 100)
  assert sum(len(b["lengths"]) for b in batches) == N
  for b in batches:
    T = b["inputs"].shape[1]
    lower = ([0] + boundaries)[boundaries.index(T)]
    assert np.all((b["lengths"] > lower) & (b["lengths"] <= T))
  assert sorted(L for b in batches for L in b["lengths"].tolist()) == sorted(lengths.tolist())


def test_fixed_length_padding_and_multiples(task):
  b = next(task.batches("train", B, max_length=30))
  assert b["inputs"].shape == (B, 30) and b["mask"].shape == (B, 30)
  b = next(task.batches("train", B, pad_multiple=16))
  assert b["inputs"].shape[1] % 16 == 0


def test_cached_epochs_equal_uncached_ones(task):
  fresh = take(task.batches("train", B, seed=5, cache=False), 12)
  cached = take(task.batches("train", B, seed=5, cache=True), 12)  # epoch 2 from memory
  assert all(same(x, y) for x, y in zip(fresh, cached, strict=True))
  assert len(task.cache["train"]) == N


def test_runs_started_together_prepare_a_dataset_once(tmp_path):
  """Four processes ask for the same new dataset at once: one prepares it, the others wait
  and read it (without the lock they race to rename the same folder: FileExistsError)."""
  code = ("import sys; from seqlab import data; t = data.get_task('copy', data_dir=sys.argv[1], "
          "num_train=2000, num_validation=64, num_test=64); print(len(t.lengths('train')))")
  procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
  for proc in procs:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert out.split()[-1] == "2000"  # every example of the train split
