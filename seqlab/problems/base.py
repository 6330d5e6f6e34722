"""What every problem shares: the task and the model from config, and the batch iterators.

The model takes its config plus the sizes the data dictates.

A problem's `__init__` reads its task (`super().__init__`), then builds its model with the
sizes the data fixes, explicitly: `self.model = self.build_model(vocab_size=...,
output_size=...)`. Those two fields are spelled alike by every model: `vocab_size` the input
tokens, `output_size` the outputs (classes, target tokens, regression outputs). A config
leaves them unset (placeholders, None) and the data fills them; a value the config sets
must agree with the data.
"""

from typing import Any

from seqlab import cells, data, models


class ProblemBase:
  """A problem built from config: `self.task` (seqlab.data) and `self.model` (MODELS)."""

  max_length: int | None = None  # one padded length for every batch: one compiled step

  def __init__(self, config):
    self.config = config
    task_cfg = config.task
    self.task = data.get_task(task_cfg.name, data_dir=task_cfg.data_dir,
                              **task_cfg.options.to_dict())

  def build_model(self, **data_fields: Any):
    """MODELS[config.model.name] from config.model, with the fields the data fixes (the
    sizes; a model without such a field takes none); a set value must agree with the data."""
    self.data_fields = data_fields  # a sweep member rebuilds its model with the same sizes
    model_cfg = self.config.model.to_dict()
    name = model_cfg.pop("name")
    fields = models.model_fields(name)
    check_cell_options(model_cfg)
    for key, value in data_fields.items():
      if key not in fields:
        continue
      given = model_cfg.get(key)
      if given is not None and given != value:
        raise ValueError(
            f"config.model.{key}={given} does not match the data of task "
            f"{self.config.task.name!r}, which needs {key}={value}; leave it unset (None)"
        )
      model_cfg[key] = value
    return models.get_model(name, **model_cfg)

  def init(self, rng, batch):
    return self.model.init(rng, *self.model_inputs(batch))

  def model_inputs(self, batch) -> tuple:
    """The positional arguments of model.apply for a batch."""
    return (batch["inputs"], batch["lengths"])

  def init_extra(self, params, batch):
    return {}

  def batch_options(self) -> dict[str, Any]:
    """Extra options of `task.batches`: the fixed max_length, when the problem sets one."""
    return {} if self.max_length is None else {"max_length": self.max_length}

  def train_batches(self, seed: int, start_step: int):
    """Shuffled padded training batches from global step `start_step` on."""
    return self.task.batches("train", self.config.train.batch_size, seed=seed,
                             start_step=start_step, **self.batch_options())

  def eval_batches(self, split: str):
    """One pass over `split`, in stored order, the last partial batch included."""
    return self.task.batches(split, self.config.train.batch_size, shuffle=False, num_epochs=1,
                             drop_remainder=False, **self.batch_options())


def check_cell_options(model_cfg: dict) -> None:
  """config.model.cell_options must be options of config.model.cell (named if not)."""
  if "cell" not in model_cfg or not model_cfg.get("cell_options"):
    return
  known = cells.options_of(model_cfg["cell"])
  foreign = sorted(set(model_cfg["cell_options"]) - set(known))
  if foreign:
    raise ValueError(
        f"config.model.cell_options has {foreign}, which cell {model_cfg['cell']!r} does not "
        f"take (its options: {sorted(known)}); choose the cell with the config's variant, "
        "e.g. --config=configs/copy.py:cell=clockwork, which declares all of its options")

