"""What every problem shares: the task from config, the model from config plus the sizes
the data dictates, and the checks that a config's sizes agree with the data."""

from typing import Any

import jax
import jax.numpy as jnp

from seqlab import data, models


class ProblemBase:
  """A problem built from config: `self.task` (seqlab.data) and `self.model` (MODELS)."""

  def __init__(self, config):
    self.config = config
    task_cfg = config.task
    self.task = data.get_task(task_cfg.name, data_dir=task_cfg.data_dir,
                              **task_cfg.options.to_dict())
    self.model = self.build_model(config.model.to_dict())

  def derived_model_fields(self) -> dict[str, Any]:
    """Model fields the data fixes (vocabulary and output sizes)."""
    return {}

  def build_model(self, model_cfg: dict):
    """MODELS[name](**fields); a field the data fixes must be unset (None) or agree."""
    name = model_cfg.pop("name")
    fields = models.model_fields(name)
    for key, value in self.derived_model_fields().items():
      if key not in fields:
        continue
      given = model_cfg.get(key)
      if given is not None and given != value:
        raise ValueError(
            f"config.model.{key}={given} does not match the data of task "
            f"{self.config.task.name!r}, which needs {key}={value}; leave it unset (None)"
        )
      model_cfg[key] = value
    model_cfg = {k: v for k, v in model_cfg.items() if not (v is None and k in fields
                                                             and fields[k].default is None)}
    return models.get_model(name, **model_cfg)

  def init(self, rng, batch):
    return self.model.init(rng, *self.model_inputs(batch))

  def model_inputs(self, batch) -> tuple:
    """The positional arguments of model.apply for a batch."""
    return (batch["inputs"], batch["lengths"])

  def init_extra(self, params, batch):
    return {}

  def batch_options(self) -> dict[str, Any]:
    """Extra options of `task.batches` (e.g. a fixed max_length, so one shape compiles)."""
    return {}

  def train_batches(self, seed: int, start_step: int):
    """Shuffled padded training batches from global step `start_step` on."""
    return self.task.batches("train", self.config.train.batch_size, seed=seed,
                             start_step=start_step, **self.batch_options())

  def eval_batches(self, split: str):
    """One pass over `split`, in stored order, the last partial batch included."""
    return self.task.batches(split, self.config.train.batch_size, shuffle=False, num_epochs=1,
                             drop_remainder=False, **self.batch_options())


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  """sum(values * mask) / sum(mask)."""
  mask = mask.astype(jnp.float32)
  return (values * mask).sum() / jnp.maximum(mask.sum(), 1.0)
