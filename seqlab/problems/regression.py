"""Many-to-one regression: the adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015).

Batches hold `inputs` [B, T, F] vectors (the adding problem: value and marker), their
`lengths`, and one real `targets` [B] per sequence; the model reads the whole sequence
and emits one prediction y_hat = o (an `RNN` with pattern many_to_one and output_size 1,
or any model whose per-step outputs [B, T, 1] are pooled as `problem.pooling` says).

    loss = MSE = 1/B sum_b (y_hat_b - y_b)^2

Metrics: the MSE, its ratio to the data's baseline (always predicting 1: MSE 1/6 for
the adding problem, so loss_vs_baseline < 1 means the net uses the marked numbers), and
the fraction of sequences with |y_hat - y| < 0.04, the criterion of Hochreiter &
Schmidhuber (1997) for a solved sequence.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from seqlab.problems import base
from seqlab.problems.classification import pool

Array = jax.Array
TOLERANCE = 0.04  # |y_hat - y| below this counts as solved (Hochreiter & Schmidhuber 1997)


class Regression(base.ProblemBase):
  """One real-valued prediction per sequence, trained by mean squared error."""

  def __init__(self, config):
    super().__init__(config)
    self.model = self.build_model(output_size=self.task.metadata["num_outputs"])

  def predict(self, params: Any, batch: Mapping[str, Array]) -> Array:
    """y_hat [B] (float32)."""
    out = self.model.apply(params, *self.model_inputs(batch))
    if out.ndim == 3:  # per-step outputs: one summary per sequence
      out = pool(out, batch["lengths"], self.config.problem.pooling)
    return out[:, 0].astype(jnp.float32)

  def loss(self, params, batch, rng, extra, step):
    err = self.predict(params, batch) - batch["targets"]
    return jnp.mean(err**2), ({}, extra)

  def eval_sums(self, params, batch, extra):
    err = self.predict(params, batch) - batch["targets"]
    sums = {"squared_error": (err**2).sum(), "count": jnp.float32(err.shape[0]),
            "close": (jnp.abs(err) < TOLERANCE).sum()}
    return sums, extra

  def summarize(self, sums):
    count = max(sums["count"], 1.0)
    mse = sums["squared_error"] / count
    out = {"loss": mse, "close_fraction": sums["close"] / count}
    baseline = self.task.metadata.get("baseline")
    if baseline:
      out["loss_vs_baseline"] = mse / baseline
    return out

