"""Stream batching: row r of batch k+1 continues row r of batch k exactly."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab.data import stream


@settings(deadline=None, max_examples=80)
@given(st.integers(20, 400), st.integers(1, 5), st.integers(1, 9))
def test_rows_continue_exactly_and_targets_are_the_next_token(n, batch_size, seq_len):
  ids = np.arange(n) * 7 % 1000  # distinct enough to see any misalignment
  per_epoch = stream.num_stream_batches(n, batch_size, seq_len)
  batches = list(stream.stream_batches(ids, batch_size, seq_len)) if per_epoch else []
  assert len(batches) == per_epoch
  row_len = (n - 1) // batch_size
  for k, batch in enumerate(batches):
    assert batch["inputs"].shape == batch["targets"].shape == (batch_size, seq_len)
    assert bool(batch["reset"]) == (k == 0)
    np.testing.assert_array_equal(batch["targets"][:, :-1], batch["inputs"][:, 1:])
    if k + 1 < len(batches):  # the next batch starts with this batch's last target
      np.testing.assert_array_equal(batches[k + 1]["inputs"][:, 0], batch["targets"][:, -1])
  if batches:
    rows = np.concatenate([b["inputs"] for b in batches], axis=1)
    for r in range(batch_size):  # each row is one contiguous piece of the stream
      np.testing.assert_array_equal(rows[r], ids[r * row_len:r * row_len + rows.shape[1]])


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 20), st.sampled_from([None, 0, 3]))
def test_resuming_at_a_step_gives_the_same_batches(start, seed):
  ids = np.arange(500)
  full = list(stream.stream_batches(ids, 4, 10, num_epochs=3, seed=seed))
  resumed = list(stream.stream_batches(ids, 4, 10, start_step=start, num_epochs=3, seed=seed))
  assert len(resumed) == len(full) - start
  for a, b in zip(full[start:], resumed, strict=True):
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    np.testing.assert_array_equal(a["targets"], b["targets"])


def test_seeded_epochs_move_the_window_boundaries():
  ids = np.arange(1000)
  batches = list(stream.stream_batches(ids, 2, 10, num_epochs=4, seed=1))
  per_epoch = len(batches) // 4
  starts = {int(batches[e * per_epoch]["inputs"][0, 0]) for e in range(4)}
  assert len(starts) > 1 and all(0 <= s < 10 for s in starts)
