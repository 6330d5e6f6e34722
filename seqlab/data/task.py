"""A prepared task: its TFDS data source, vocabularies and batch iterators.

    task = data.get_task("copy", data_dir="/tmp/data", delay=50)
    for batch in task.batches("train", batch_size=32, seed=0, start_step=step):
      ...   # batch["inputs"] [B, T], batch["targets"] [B, T], "lengths" [B], "mask" [B, T]

Batches are a pure function of (seed, step): `start_step` resumes exactly where a
checkpoint left off. Reading, decoding and padding run ahead of the consumer in grain
worker threads.
"""

import dataclasses
import functools
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import grain
import numpy as np

from seqlab.data import batching, stream
from seqlab.data import builder as builder_lib
from seqlab.data.vocab import Vocab


@dataclasses.dataclass(eq=False)
class Task:
  """A prepared task: builder (the stored data), vocabularies and read options."""

  name: str
  builder: builder_lib.Builder
  vocabs: dict[str, Vocab]
  read_options: dict[str, Any]
  cache: dict[str, dict[int, dict]] = dataclasses.field(default_factory=dict, repr=False)

  @property
  def metadata(self) -> dict[str, Any]:
    """Sizes, baselines and skip counts stored with the data."""
    return dict(self.builder.info.metadata)

  @property
  def time_keys(self) -> dict[str, str]:
    """Sequence field -> its lengths field."""
    return self.builder.time_keys(**self.read_options)

  @property
  def splits(self) -> list[str]:
    """The split names, e.g. ["train", "validation", "test"]."""
    return list(self.builder.info.splits)

  @functools.cache  # noqa: B019 (one source per split for the task's lifetime)
  def source(self, split: str) -> Sequence[dict]:
    """The split's stored examples, random access (a TFDS ArrayRecordDataSource)."""
    if split not in self.splits:
      raise ValueError(f"task {self.name!r} has no split {split!r}; its splits: {self.splits}")
    return self.builder.as_data_source(split)

  def encode(self, example: dict) -> dict[str, np.ndarray]:
    """A stored example -> the arrays a model reads."""
    return self.builder.encode(example, self.vocabs, **self.read_options)

  def examples(
      self, split: str, indices: Sequence[int], cache: bool = False
  ) -> list[dict[str, np.ndarray]]:
    """The encoded examples at `indices`; with `cache`, each is read and encoded once and
    then kept in memory (for splits that fit)."""
    indices = [int(i) for i in indices]
    kept = self.cache.setdefault(split, {}) if cache else {}
    missing = sorted({i for i in indices if i not in kept})
    fresh = dict(zip(missing, map(self.encode, self._read(split, missing)), strict=True))
    if cache:
      kept.update(fresh)
    return [kept[i] if i in kept else fresh[i] for i in indices]

  def _read(self, split: str, indices: list[int]) -> list[dict]:
    """The stored examples at `indices`, decoded by TFDS."""
    if not indices:
      return []
    source = self.source(split)
    if hasattr(source, "__getitems__"):
      return source.__getitems__(indices)
    return [source[i] for i in indices]

  @functools.cache  # noqa: B019
  def lengths(self, split: str) -> np.ndarray:
    """Each example's length (the longest of its sequence fields), for bucketing."""
    source = self.source(split)
    out = np.zeros(len(source), np.int64)
    for start in range(0, len(source), 1024):
      chunk = self.examples(split, range(start, min(start + 1024, len(source))))
      out[start:start + len(chunk)] = [max(len(ex[k]) for k in self.time_keys) for ex in chunk]
    return out

  def batch(
      self,
      split: str,
      indices: Sequence[int],
      pad_to: int | None = None,
      pad_multiple: int = 1,
      cache: bool = False,
  ) -> dict[str, np.ndarray]:
    """The examples at `indices` as one padded batch with lengths and masks."""
    examples = self.examples(split, indices, cache)
    return batching.collate(examples, self.time_keys, pad_to, pad_multiple)

  def _plan(self, split, batch_size, seed, shuffle, drop_remainder, boundaries):
    lengths = self.lengths(split) if boundaries is not None else None
    n = len(self.source(split))

    @functools.lru_cache(maxsize=2)
    def epoch(e: int):
      return batching.epoch_batches(
          n, batch_size, seed, e, shuffle, drop_remainder, lengths, boundaries
      )

    return epoch

  def steps_per_epoch(
      self,
      split: str,
      batch_size: int,
      drop_remainder: bool = True,
      bucket_boundaries: Sequence[int] | None = None,
  ) -> int:
    """How many batches one epoch of `split` gives."""
    return len(self._plan(split, batch_size, 0, True, drop_remainder, bucket_boundaries)(0))

  def batches(
      self,
      split: str,
      batch_size: int,
      *,
      seed: int = 0,
      shuffle: bool = True,
      start_step: int = 0,
      num_epochs: int | None = None,
      drop_remainder: bool = True,
      bucket_boundaries: Sequence[int] | None = None,
      max_length: int | None = None,
      pad_multiple: int = 1,
      cache: bool = True,
      num_threads: int = 2,
      prefetch: int = 8,
  ) -> Iterator[dict[str, np.ndarray]]:
    """Padded batches from global step `start_step` on, over `num_epochs` (None: forever).

    Args:
      split: "train", "validation" or "test".
      batch_size: examples per batch.
      seed: the shuffle seed; epoch e uses the permutation drawn from (seed, e).
      shuffle: shuffle each epoch (False: stored order).
      start_step: the first global step to produce; resuming a run passes its step.
      num_epochs: stop after this many epochs; None repeats forever.
      drop_remainder: drop the last partial batch of each epoch (of each bucket).
      bucket_boundaries: group examples of similar length; a batch in bucket b is padded
        to boundaries[b] (few distinct shapes, few recompiles).
      max_length: pad every batch to exactly this length; raises on a longer sequence.
      pad_multiple: without buckets or max_length, round T up to a multiple of this.
      cache: keep encoded examples in memory after their first read, so epochs after
        the first skip reading and decoding (turn off for data that does not fit).
      num_threads: grain reader threads (0 reads in the caller's thread).
      prefetch: batches prepared ahead.
    """
    if bucket_boundaries is not None and max_length is not None:
      raise ValueError("give bucket_boundaries or max_length, not both")
    plan = self._plan(split, batch_size, seed, shuffle, drop_remainder, bucket_boundaries)
    per_epoch = len(plan(0))
    if per_epoch == 0:
      raise ValueError(
          f"split {split!r} of {self.name!r} has {len(self.source(split))} examples: "
          f"no whole batch of {batch_size}; fix: a smaller batch_size or drop_remainder=False"
      )
    stop = sys.maxsize if num_epochs is None else num_epochs * per_epoch

    def make(step: int) -> dict[str, np.ndarray]:
      indices, pad_to = plan(step // per_epoch)[step % per_epoch]
      return self.batch(split, indices, pad_to or max_length, pad_multiple, cache)

    steps = grain.MapDataset.range(start_step, max(start_step, stop)).map(make)
    options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    return iter(steps.to_iter_dataset(options))

  def token_stream(self, split: str) -> np.ndarray:
    """The split's text as one id array, in stored order (text tasks only)."""
    key = getattr(self.builder, "STREAM_KEY", None)
    if key is None:
      raise ValueError(f"task {self.name!r} is not a text stream; stream batching needs one")
    texts = [ex[key] for ex in self._read(split, list(range(len(self.source(split)))))]
    text = b"".join(texts).decode("utf-8")
    return self.vocabs[key].encode(text)

  def stream(
      self,
      split: str,
      batch_size: int,
      seq_len: int,
      start_step: int = 0,
      num_epochs: int | None = 1,
      seed: int | None = None,
  ) -> Iterator[dict[str, np.ndarray]]:
    """Contiguous [B, T] batches of the split's text for stateful truncated BPTT."""
    ids = self.token_stream(split)
    return stream.stream_batches(ids, batch_size, seq_len, start_step, num_epochs, seed)
