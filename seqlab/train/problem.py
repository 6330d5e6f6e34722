"""The contract between the training loop and a task family (a `Problem`).

A problem owns the model, the loss and the metrics of one kind of task; the loop
owns the optimizer, the checkpoints, the logging and the non-finite checks. All the
functions below that take params are pure and run under `jax.jit`.
"""

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import jax

Array = jax.Array
Batch = Mapping[str, Any]


class Problem(Protocol):
  """What the loop needs from a task family."""

  def init(self, rng: Array, batch: Batch) -> Any:
    """Initial parameters."""

  def init_extra(self, params: Any, batch: Batch) -> Any:
    """State carried from one training batch to the next (e.g. a TBPTT stream state), or {}."""

  def loss(
      self, params: Any, batch: Batch, rng: Array, extra: Any, step: Array
  ) -> tuple[Array, tuple[dict[str, Array], Any]]:
    """(scalar loss, (metrics, next extra)); differentiated w.r.t. params."""

  def eval_sums(self, params: Any, batch: Batch, extra: Any) -> tuple[dict[str, Array], Any]:
    """Summed statistics of one evaluation batch (and the state carried to the next one);
    `summarize` turns their totals into metrics."""

  def summarize(self, sums: Mapping[str, float]) -> dict[str, float]:
    """Metrics from statistics summed over the evaluation batches."""

  def train_batches(self, seed: int, start_step: int) -> Iterator[Batch]:
    """Training batches from global step `start_step` on (a pure function of seed and step)."""

  def eval_batches(self, split: str) -> Iterator[Batch]:
    """One pass over an evaluation split."""
