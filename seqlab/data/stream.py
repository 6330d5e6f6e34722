"""Contiguous stream batches for stateful truncated BPTT over one long token stream.

The stream s_0 .. s_{N-1} is cut into B rows of n = (N - 1) // B steps each; batch k
holds steps kT .. kT + T - 1 of every row, with targets one step ahead:

    inputs[k][r, t]  = s[r n + k T + t]
    targets[k][r, t] = s[r n + k T + t + 1]

so row r of batch k + 1 continues exactly where row r of batch k stopped, and the
carry at the end of one batch is the right start for the next (`seqlab.tbptt.Stream`).
"""

from collections.abc import Iterator

import numpy as np


def num_stream_batches(num_tokens: int, batch_size: int, seq_len: int, offset: int = 0) -> int:
  """How many whole [B, T] batches the stream gives (after skipping `offset` tokens)."""
  return ((num_tokens - offset - 1) // batch_size) // seq_len


def stream_batch(
    ids: np.ndarray, batch_size: int, seq_len: int, step: int, offset: int = 0
) -> dict[str, np.ndarray]:
  """Batch `step` of the stream `ids[offset:]`: inputs and targets [B, T]."""
  ids = np.asarray(ids)[offset:]
  n = (len(ids) - 1) // batch_size
  if step >= n // seq_len:
    raise IndexError(f"stream batch {step} out of range: the stream has {n // seq_len}")
  starts = np.arange(batch_size)[:, None] * n + step * seq_len + np.arange(seq_len)[None, :]
  return {"inputs": ids[starts], "targets": ids[starts + 1]}


def stream_batches(
    ids: np.ndarray,
    batch_size: int,
    seq_len: int,
    start_step: int = 0,
    num_epochs: int | None = 1,
    seed: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
  """Stream batches over epochs from global step `start_step` (resumable).

  Each batch also holds "reset" (True on the first batch of an epoch, where the
  carry should start afresh). With a seed, each epoch starts at an offset drawn in
  [0, T) from (seed, epoch), so window boundaries move between epochs.
  """
  if batch_size < 1 or seq_len < 1:
    raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
  def offset(epoch: int) -> int:
    return 0 if seed is None else int(np.random.default_rng([seed, epoch]).integers(seq_len))

  largest_offset = 0 if seed is None else seq_len - 1
  per_epoch = num_stream_batches(len(ids), batch_size, seq_len, largest_offset)
  if per_epoch < 1:
    raise ValueError(
        f"a stream of {len(ids)} tokens gives no [{batch_size}, {seq_len}] batch; "
        "fix: use a smaller batch_size or seq_len, or more text"
    )
  step = start_step
  while num_epochs is None or step < num_epochs * per_epoch:
    epoch, k = divmod(step, per_epoch)
    batch = stream_batch(ids, batch_size, seq_len, k, offset(epoch))
    batch["reset"] = np.bool_(k == 0)
    yield batch
    step += 1
