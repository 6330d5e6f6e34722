"""One-step-ahead time-series prediction (Mackey-Glass, NARMA10, sine mixtures).

Batches hold windows `inputs` [B, W, 1] and `targets` [B, W, 1] (the series `horizon`
steps later); a model emits y_hat_t at every step: an `RNN` (many_to_many), a `TDNN`,
or an `ESN`. Every window starts from a zero state, so its first `problem.washout` steps
are left out of the loss, the metrics and the ridge fit (mask m_t = [t >= washout]):

    loss = MSE = sum_t m_t (y_hat_t - y_t)^2 / sum_t m_t
    NRMSE = sqrt(MSE / Var(y))            (Var over the same steps; 1 = predicting the mean)

ESN readout (`problem.readout_fit`). The loss is the readout's MSE in every case; what
changes is how W_out gets its value:
  gradient:            W_out starts at 0 and follows the optimizer, like any model;
  ridge:               `init` fits W_out in closed form on one pass over the training
                       split, W_out = (Z^T Z + lambda I)^-1 Z^T Y with lambda = problem.ridge
                       (Z^T Z and Z^T Y summed batch by batch, so the split need not fit
                       in memory), and the loss then stops its gradient: training steps
                       change nothing and only log, evaluate and checkpoint (1 step is enough;
                       a resumed run or --mode=eval refits, then restores the saved W_out);
  ridge_then_gradient: the closed-form W_out as the starting point of gradient steps.
The reservoir sits in the params pytree (collection "reservoir") but gets no gradient
(`cells.esn` stops it), so the optimizer leaves it alone; weight decay would not, hence
it is refused for the ESN.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqlab import losses
from seqlab.problems import base

Array = jax.Array
READOUT_FITS = ("gradient", "ridge", "ridge_then_gradient")


class SeriesPrediction(base.ProblemBase):
  """y_hat_t for every step of a window, trained by masked mean squared error."""

  def __init__(self, config):
    super().__init__(config)
    self.model = self.build_model(output_size=self.task.metadata["num_outputs"])
    t = config.problem
    self.esn = config.model.name == "esn"  # the model with a closed-form readout
    if t.readout_fit not in READOUT_FITS:
      raise ValueError(f"unknown config.problem.readout_fit {t.readout_fit!r}; "
                       f"known: {list(READOUT_FITS)}")
    if t.readout_fit != "gradient" and not self.esn:
      raise ValueError(f"config.problem.readout_fit={t.readout_fit!r} needs config.model.name="
                       f"'esn'; got {config.model.name!r} (use 'gradient')")
    if self.esn and config.optimizer.weight_decay:
      raise ValueError("config.optimizer.weight_decay must be 0 for the ESN: it would decay "
                       "the fixed reservoir, which lives in the params")
    window = self.task.builder.options["window"]
    if not 0 <= t.washout < window:
      raise ValueError(f"config.problem.washout={t.washout} must lie in [0, window={window})")

  def scored(self, batch: Mapping[str, Array]) -> Array:
    """m [B, W]: real steps at or after the washout."""
    T = batch["inputs"].shape[1]
    return batch["mask"] & (jnp.arange(T) >= self.config.problem.washout)[None, :]

  def predict(self, params: Any, batch: Mapping[str, Array]) -> Array:
    """y_hat [B, W, O] (float32)."""
    return self.model.apply(params, *self.model_inputs(batch)).astype(jnp.float32)

  def _squared_errors(self, params, batch) -> tuple[Array, Array]:
    """(y_hat - y)^2 summed over outputs [B, W], and the mask m [B, W] (float32)."""
    err = self.predict(params, batch) - batch["targets"]
    return (err**2).sum(-1), self.scored(batch).astype(jnp.float32)

  def loss(self, params, batch, rng, extra, step):
    if self.config.problem.readout_fit == "ridge":  # W_out is fitted: steps change nothing
      params = jax.lax.stop_gradient(params)
    squared, m = self._squared_errors(params, batch)
    return losses.masked_mean(squared, m), ({}, extra)

  def eval_sums(self, params, batch, extra):
    squared, m = self._squared_errors(params, batch)
    y = batch["targets"].astype(jnp.float32)
    persistence = ((batch["inputs"] - y) ** 2).sum(-1)  # predict y_t = x_t
    sums = {"squared_error": (squared * m).sum(), "count": m.sum(),
            "y": (y.sum(-1) * m).sum(), "y2": ((y**2).sum(-1) * m).sum(),
            "persistence": (persistence * m).sum()}
    return sums, extra

  def summarize(self, sums):
    count = max(sums["count"], 1.0)
    mse = sums["squared_error"] / count
    var = sums["y2"] / count - (sums["y"] / count) ** 2
    out = {"loss": mse, "nrmse": (mse / max(var, 1e-12)) ** 0.5}
    if "persistence" in self.task.metadata.get("baseline_metric", ""):
      out["loss_vs_persistence"] = mse / max(sums["persistence"] / count, 1e-12)
    return out


  # --- the ESN's closed-form readout

  def init(self, rng, batch):
    params = super().init(rng, batch)
    if self.esn and self.config.problem.readout_fit != "gradient":
      params = self.fit_readout(params)
    return params

  def fit_readout(self, params: Any) -> Any:
    """`params` with W_out = (Z^T Z + lambda I)^-1 Z^T Y over the scored training steps."""

    @jax.jit
    def features(batch):
      z = self.model.bind(params).features(*self.model_inputs(batch))
      return z.astype(jnp.float32) * self.scored(batch)[..., None]  # a zero row adds nothing

    # Z^T Z and Z^T Y summed batch by batch in float64 on the host, then solved there:
    # Z^T Z is ill-conditioned, and float32 sums or solves visibly spoil the fit.
    gram = rhs = 0.0
    for batch in self.eval_batches("train"):
      z = np.asarray(features(batch), np.float64)
      z = z.reshape(-1, z.shape[-1])
      y = np.asarray(batch["targets"], np.float64).reshape(len(z), -1)
      gram, rhs = gram + z.T @ z, rhs + z.T @ y
    W_out = np.linalg.solve(gram + self.config.problem.ridge * np.eye(len(gram)), rhs)
    return {**params, "params": {**params["params"], "W_out": jnp.asarray(W_out, jnp.float32)}}
