"""Per-step classification (many-to-many): the copy task, and any task with per-step targets.

Its batches hold `inputs` [B, T] ids and `targets` [B, T] class ids with a `mask`.

    loss = sum_{b,t} mask * -log softmax(o_t)[y_t] / sum mask

Metrics: cross-entropy per step (nats), its ratio to the task's memoryless baseline
when the data reports one, and accuracy on the positions that carry information
(target != 0 for the copy task, where 0 is the blank).
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from seqlab import losses, models
from seqlab.problems import base

Array = jax.Array


class Tagging(base.ProblemBase):
  """Many-to-many classification of every step, e.g. the copy task."""

  def __init__(self, config):
    super().__init__(config)
    meta = self.task.metadata
    self.model = self.build_model(vocab_size=meta["num_inputs"], output_size=meta["num_outputs"])
    # Models without an embedding (jordan, bidirectional) read one-hot tokens.
    self.one_hot = "vocab_size" not in models.model_fields(config.model.name)

  def model_inputs(self, batch) -> tuple:
    inputs = batch["inputs"]
    if self.one_hot:
      inputs = jax.nn.one_hot(inputs, self.task.metadata["num_inputs"])
    return (inputs,)

  def init(self, rng, batch):
    return self.model.init(rng, *self.model_inputs(batch), lengths=batch["lengths"])

  def logits(self, params: Any, batch: Mapping[str, Array], rng: Array | None = None) -> Array:
    return self.model.apply(params, *self.model_inputs(batch), lengths=batch["lengths"])

  def loss(self, params, batch, rng, extra, step):
    logits = self.logits(params, batch, rng).astype(jnp.float32)
    xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    return losses.masked_mean(xent, batch["mask"]), ({}, extra)

  def eval_sums(self, params, batch, extra):
    logits = self.logits(params, batch).astype(jnp.float32)
    xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    mask = batch["mask"].astype(jnp.float32)
    informative = mask * (batch["targets"] != 0)
    correct = (jnp.argmax(logits, -1) == batch["targets"]) * informative
    sums = {"xent": (xent * mask).sum(), "steps": mask.sum(),
            "correct": correct.sum(), "informative": informative.sum()}
    return sums, extra

  def summarize(self, sums):
    loss = sums["xent"] / max(sums["steps"], 1.0)
    out = {"loss": loss, "accuracy": sums["correct"] / max(sums["informative"], 1.0)}
    baseline = self.task.metadata.get("baseline")
    if baseline:
      out["loss_vs_baseline"] = loss / baseline
    return out

