"""Many-to-one classification of variable-length sequences: one label per sequence.

Parity, bracket depth, sequential digits; `lengths` marks the real steps.

    loss = 1/B sum_b -log softmax(o_b)[y_b]

Models: an `RNN` with pattern many_to_one (o = c + V h_T at each sequence's last real
step), a `TransformerClassifier` (mean over real steps), or any model with per-step
outputs o_t [B, T, C] (`Bidirectional` with output_size, `DeepRNN`, a many_to_many
`RNN`), pooled over the real steps as `problem.pooling` says:

    last:       o = o_T                  (the top state after the whole sequence)
    mean:       o = 1/T sum_t o_t
    first_last: o = o_1 + o_T            (for a bidirectional net, o_1 holds the backward
                                          state after reading x_T..x_1, o_T the forward one)

Token ids go to models without an embedding as one-hot vectors. Metrics: cross-entropy
(nats) and accuracy; the data's chance accuracy is in `task.metadata["baseline"]`.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from seqlab import models
from seqlab.models.rnn import last_real
from seqlab.problems import base

Array = jax.Array
POOLINGS = ("last", "mean", "first_last")


def pool(outputs: Array, lengths: Array, how: str) -> Array:
  """One output per sequence from per-step outputs [B, T, C] over the real steps."""
  if how == "last":
    return last_real(outputs, lengths)
  if how == "mean":
    real = (jnp.arange(outputs.shape[1])[None, :] < lengths[:, None]).astype(outputs.dtype)
    total = (outputs * real[..., None]).sum(1)
    return total / jnp.maximum(lengths, 1)[:, None].astype(outputs.dtype)
  if how == "first_last":
    return outputs[:, 0] + last_real(outputs, lengths)
  raise ValueError(f"unknown config.problem.pooling {how!r}; known: {list(POOLINGS)}")


class Classification(base.ProblemBase):
  """One class per sequence, trained by cross-entropy."""

  def __init__(self, config):
    if config.problem.pooling not in POOLINGS:
      raise ValueError(f"unknown config.problem.pooling {config.problem.pooling!r}; "
                       f"known: {list(POOLINGS)}")
    super().__init__(config)
    meta = self.task.metadata
    fields = models.model_fields(config.model.name)
    vocab = meta.get("num_inputs")  # None: vector inputs
    if "vocab_size" in fields and vocab is None and fields["vocab_size"].default is not None:
      raise ValueError(f"model {config.model.name!r} reads token ids, but task "
                       f"{config.task.name!r} has vector inputs; use another model")
    self.model = self.build_model(vocab_size=vocab, output_size=meta["num_classes"])
    self.one_hot = self.token_inputs and "vocab_size" not in fields
    # One padded length for every batch: one compiled step instead of one per length.
    self.max_length = max(int(self.task.lengths(s).max()) for s in self.task.splits)

  @property
  def token_inputs(self) -> bool:
    """Whether the inputs are token ids (the data gives a vocabulary size) or vectors."""
    return "num_inputs" in self.task.metadata

  def model_inputs(self, batch) -> tuple:
    inputs = batch["inputs"]
    if self.one_hot:
      inputs = jax.nn.one_hot(inputs, self.task.metadata["num_inputs"])
    return (inputs, batch["lengths"])

  def logits(self, params: Any, batch: Mapping[str, Array]) -> Array:
    """o [B, C] (float32)."""
    out = self.model.apply(params, *self.model_inputs(batch))
    if out.ndim == 3:
      out = pool(out, batch["lengths"], self.config.problem.pooling)
    return out.astype(jnp.float32)

  def loss(self, params, batch, rng, extra, step):
    logits = self.logits(params, batch)
    xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    accuracy = (jnp.argmax(logits, -1) == batch["targets"]).mean()
    return xent.mean(), ({"accuracy": accuracy}, extra)

  def eval_sums(self, params, batch, extra):
    logits = self.logits(params, batch)
    xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    correct = jnp.argmax(logits, -1) == batch["targets"]
    return {"xent": xent.sum(), "correct": correct.sum(),
            "count": jnp.float32(xent.shape[0])}, extra

  def summarize(self, sums):
    count = max(sums["count"], 1.0)
    return {"loss": sums["xent"] / count, "accuracy": sums["correct"] / count}
