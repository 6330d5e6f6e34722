"""Every size, count, probability and choice of a config, checked before anything is built.

One place for the rules, by field name wherever the field sits (model.*, task.options.*,
model.cell_options.*): a bad value is one line naming the flag that sets it,

    error: --config.model.hidden_size=-5: must be a positive integer

and the run ends before a dataset is prepared or a model traced (exit status 2).
"""

from typing import Any

import ml_collections

POSITIVE_INTS = {  # >= 1; in a tuple, every entry
    "hidden_size", "embed_size", "hidden_sizes", "attention_size", "d_model", "d_ff",
    "num_layers", "num_heads", "features", "input_mlp", "output_mlp", "transition_mlp",
    "batch_size", "num_steps", "log_every", "eval_every", "checkpoint_every", "eval_batches",
    "seq_len", "pad_multiple", "max_len", "beam_width", "alphabet_size", "num_symbols",
    "num_train", "num_samples", "window", "stride", "max_length", "length", "output_size",
    "vocab_size", "num_sampled", "directions", "order", "periods", "max_vocab", "min_leaves",
    "max_leaves", "batch", "heartbeat_s", "ready",
}
NON_NEGATIVE = {  # >= 0
    "tbptt_k2", "warmup_steps", "decay_steps", "resume_step", "delay", "num_validation",
    "num_test", "num_dates", "max_number", "max_ordinal", "top_k", "washout", "max_retry",
    "num_classes", "clip_norm", "clip_value", "weight_decay", "end_learning_rate", "ridge",
    "input_scaling", "bias_scaling", "teacher_forcing_k", "chrono", "burn_in",
}
POSITIVE_FLOATS = {"learning_rate", "temperature", "rho", "recurrent_scale"}  # > 0
PROBABILITIES = {  # in [0, 1]
    "dropout_rate", "density", "validation_fraction", "test_fraction", "teacher_forcing_min",
    "resample_probability",
}
FRACTIONS = {"top_p", "leak_rate", "rate"}  # in (0, 1]; `rate` may be a tuple (timescales)
SAMPLERS, PRUNERS = ("tpe", "random"), ("median", "none")


def _choices() -> dict[str, tuple[str, ...]]:
  """Dotted field -> its known values (imported here: the modules that define them)."""
  from seqlab.data.files import ON_ERROR
  from seqlab.data.vocab import LEVELS
  from seqlab.problems.language_model import COMPLETIONS
  from seqlab.sweep.pbt_space import METHODS
  from seqlab.sweep.space import MODES
  from seqlab.train.optim import SCHEDULES
  from seqlab.unroll import BACKENDS
  from seqlab.unroll.parallel import SOLVERS
  return {
      "train.nonfinite": ("stop", "skip"),
      "optimizer.schedule": SCHEDULES,
      "decode.completion": COMPLETIONS,
      "model.backend": BACKENDS,
      "model.parallel.solver": tuple(SOLVERS),
      "sweep.mode": MODES,
      "search.sampler": SAMPLERS,  # seqlab.sweep.search's (it imports optuna: not here)
      "search.pruner": PRUNERS,
      "search.direction": ("minimize", "maximize"),
      "pbt.method": METHODS,
      "pbt.direction": ("minimize", "maximize"),
      "task.options.on_error": ON_ERROR,
      "task.options.level": LEVELS,
  }


def _leaves(node: ml_collections.ConfigDict, prefix: str = ""):
  for key, value in node.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", key, value


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rule(name: str, value: Any) -> str | None:
  """What `value` breaks for a field called `name`, or None."""
  values = value if isinstance(value, (tuple, list)) else (value,)
  if not all(_is_number(v) for v in values):
    return None  # None (filled from the data later), strings, nested tuples
  if name in POSITIVE_INTS and not all(isinstance(v, int) and v >= 1 for v in values):
    return "must be a positive integer" + (" in every entry" if len(values) > 1 else "")
  if name in NON_NEGATIVE and not all(v >= 0 for v in values):
    return "must be >= 0"
  if name in POSITIVE_FLOATS and not all(v > 0 for v in values):
    return "must be > 0"
  if name in PROBABILITIES and not all(0 <= v <= 1 for v in values):
    return "must lie in [0, 1]"
  if name in FRACTIONS and not all(0 < v <= 1 for v in values):
    return "must lie in (0, 1]"
  return None


def check(config: ml_collections.ConfigDict) -> None:
  """Raise ValueError naming the first field whose value no run could use."""
  choices = _choices()
  for path, name, value in _leaves(config):
    problem = _rule(name, value)
    if path in choices and value not in choices[path]:
      problem = f"unknown value; known: {', '.join(map(str, choices[path]))}"
    if problem:
      raise ValueError(f"--config.{path}={value!r}: {problem}")
