"""Padding, lengths, masks and bucketing: property tests against their definitions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab import unroll
from seqlab.data import batching
from seqlab.data.files import DataError

lengths_lists = st.lists(st.integers(0, 12), min_size=1, max_size=8)


def make_examples(lengths, feature=None):
  """Examples whose steps hold 1 + their position, so padding (0) is distinguishable."""
  shape = () if feature is None else (feature,)
  return [
      {"inputs": np.arange(1, L + 1, dtype=np.int32).reshape(-1, *([1] * len(shape)))
       * np.ones((1, *shape), np.int32),
       "targets": np.arange(1, L + 1, dtype=np.float32),
       "label": np.int32(i)}
      for i, L in enumerate(lengths)
  ]


@settings(deadline=None, max_examples=60)
@given(lengths_lists, st.integers(1, 5), st.sampled_from([None, 3]))
def test_collate_pads_with_zeros_and_masks_real_steps(lengths, multiple, feature):
  examples = make_examples(lengths, feature)
  batch = batching.collate(examples, {"inputs": "lengths", "targets": "lengths"},
                           pad_multiple=multiple)
  T = batch["inputs"].shape[1]
  assert T % multiple == 0 and T - multiple < max(lengths) <= T
  np.testing.assert_array_equal(batch["lengths"], lengths)
  np.testing.assert_array_equal(batch["mask"], unroll.length_mask(np.array(lengths), T))
  assert batch["mask"].dtype == bool
  for row, ex in enumerate(examples):
    L = lengths[row]
    np.testing.assert_array_equal(batch["inputs"][row, :L], ex["inputs"])
    np.testing.assert_array_equal(batch["targets"][row, :L], ex["targets"])
    assert not batch["inputs"][row, L:].any() and not batch["targets"][row, L:].any()
  np.testing.assert_array_equal(batch["label"], np.arange(len(lengths)))


@settings(deadline=None, max_examples=30)
@given(lengths_lists, st.integers(0, 6))
def test_collate_pad_to_fixes_the_length_or_raises(lengths, extra):
  pad_to = max(lengths) + extra
  keys = {"inputs": "lengths", "targets": "lengths"}
  batch = batching.collate(make_examples(lengths), keys, pad_to=pad_to)
  assert batch["inputs"].shape == batch["targets"].shape == (len(lengths), pad_to)
  if max(lengths) > 0:
    with pytest.raises(DataError, match=rf"length {max(lengths)} is longer than the configured "
                       rf"maximum {max(lengths) - 1}; fix: raise max_length"):
      batching.collate(make_examples(lengths), keys, pad_to=max(lengths) - 1)


def test_collate_groups_get_their_own_lengths_and_masks():
  examples = [{"inputs": np.ones(3, np.int32), "targets": np.ones(5, np.int32)},
              {"inputs": np.ones(1, np.int32), "targets": np.ones(2, np.int32)}]
  batch = batching.collate(examples, {"inputs": "source_lengths", "targets": "lengths"})
  np.testing.assert_array_equal(batch["source_lengths"], [3, 1])
  np.testing.assert_array_equal(batch["lengths"], [5, 2])
  assert batch["source_mask"].shape == (2, 3) and batch["mask"].shape == (2, 5)


@settings(deadline=None, max_examples=60)
@given(st.integers(1, 60), st.integers(1, 9), st.integers(0, 3), st.integers(0, 4),
       st.booleans())
def test_epoch_is_a_permutation_drawn_from_seed_and_epoch(n, batch_size, seed, epoch, drop):
  plan = batching.epoch_batches(n, batch_size, seed, epoch, drop_remainder=drop)
  seen = np.concatenate([idx for idx, _ in plan]) if plan else np.array([], int)
  assert len(set(seen.tolist())) == len(seen)  # no example twice in an epoch
  assert len(seen) == (n - n % batch_size if drop else n)
  assert all(len(idx) == batch_size for idx, _ in plan[: n // batch_size])
  again = batching.epoch_batches(n, batch_size, seed, epoch, drop_remainder=drop)
  assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(plan, again, strict=True))


def test_epochs_are_shuffled_differently():
  a = np.concatenate([i for i, _ in batching.epoch_batches(100, 10, seed=0, epoch=0)])
  b = np.concatenate([i for i, _ in batching.epoch_batches(100, 10, seed=0, epoch=1)])
  c = np.concatenate([i for i, _ in batching.epoch_batches(100, 10, seed=0, epoch=0,
                                                           shuffle=False)])
  assert sorted(a) == sorted(b) == list(range(100)) and not np.array_equal(a, b)
  np.testing.assert_array_equal(c, np.arange(100))


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=80), st.integers(1, 6),
       st.integers(0, 5), st.booleans())
def test_buckets_hold_similar_lengths_padded_to_their_boundary(lengths, batch_size, seed, drop):
  lengths = np.array(lengths)
  boundaries = [5, 10, 20, 30]
  plan = batching.epoch_batches(len(lengths), batch_size, seed, 0, drop_remainder=drop,
                                lengths=lengths, boundaries=boundaries)
  for idx, pad_to in plan:
    b = boundaries.index(pad_to)
    lower = boundaries[b - 1] if b else 0
    assert np.all((lengths[idx] > lower) & (lengths[idx] <= pad_to))
  seen = np.concatenate([idx for idx, _ in plan]) if plan else np.array([], int)
  assert len(set(seen.tolist())) == len(seen)
  if not drop:
    assert sorted(seen.tolist()) == list(range(len(lengths)))
  counts = np.bincount(np.searchsorted(boundaries, lengths), minlength=4)
  assert len(plan) == sum((c // batch_size if drop else -(-c // batch_size)) for c in counts)


def test_a_sequence_past_the_last_bucket_names_the_fix():
  with pytest.raises(DataError, match=r"example 2 has length 40, longer than the largest bucket "
                     r"boundary 30 \(1 such examples\); fix: add a boundary >= 40"):
    batching.epoch_batches(3, 1, 0, 0, lengths=np.array([3, 7, 40]), boundaries=[10, 30])
