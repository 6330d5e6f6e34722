"""Optimizers from config: optax by name, a learning-rate schedule, clipping, weight decay.

    config.optimizer = {name, learning_rate, schedule, warmup_steps, decay_steps,
                        end_learning_rate, weight_decay, clip_norm, clip_value, options}

Gradient clipping (Pascanu, Mikolov & Bengio 2013) rescales g to clip_norm * g / ||g||
when the global norm ||g|| exceeds clip_norm (or clips each entry to +-clip_value),
before the optimizer. Weight decay is decoupled for adamw (Loshchilov & Hutter 2019:
theta -= lr * wd * theta beside the Adam step) and an L2 term g += wd * theta for the
other optimizers (the same thing for plain SGD).
"""

from collections.abc import Callable, Mapping
from typing import Any

import optax

OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": optax.sgd,
    "momentum": lambda learning_rate, **kw: optax.sgd(learning_rate, **{"momentum": 0.9, **kw}),
    "adam": optax.adam,
    "adamw": optax.adamw,
    "rmsprop": optax.rmsprop,
    "adagrad": optax.adagrad,
    "lamb": optax.lamb,
}

SCHEDULES = ("constant", "cosine", "linear", "exponential")


def _unknown(kind: str, name: str, known) -> ValueError:
  return ValueError(f"unknown {kind} {name!r}; known: {sorted(known)}")


def make_schedule(cfg: Mapping[str, Any]) -> optax.Schedule:
  """Linear warmup from 0 over warmup_steps, then the named decay over decay_steps."""
  lr, warmup = cfg["learning_rate"], cfg["warmup_steps"]
  decay_steps, end = max(cfg["decay_steps"], 1), cfg["end_learning_rate"]
  name = cfg["schedule"]
  if name == "constant":
    decay = optax.constant_schedule(lr)
  elif name == "cosine":
    decay = optax.cosine_decay_schedule(lr, decay_steps, alpha=end / lr if lr else 0.0)
  elif name == "linear":
    decay = optax.linear_schedule(lr, end, decay_steps)
  elif name == "exponential":  # lr * (end / lr)^(step / decay_steps)
    decay = optax.exponential_decay(lr, decay_steps, end / lr, end_value=end)
  else:
    raise _unknown("schedule", name, SCHEDULES)
  if warmup <= 0:
    return decay
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), decay], [warmup])


def make_optimizer(cfg: Mapping[str, Any]) -> optax.GradientTransformation:
  """clip -> optimizer(schedule) -> decoupled weight decay, from config.optimizer."""
  name = cfg["name"]
  if name not in OPTIMIZERS:
    raise _unknown("optimizer", name, OPTIMIZERS)
  if cfg["clip_norm"] and cfg["clip_value"]:
    raise ValueError("config.optimizer: set clip_norm or clip_value, not both")
  chain = []
  if cfg["clip_norm"]:
    chain.append(optax.clip_by_global_norm(cfg["clip_norm"]))
  if cfg["clip_value"]:
    chain.append(optax.clip(cfg["clip_value"]))
  options = dict(cfg["options"])
  if name == "adamw":
    options["weight_decay"] = cfg["weight_decay"]
  elif cfg["weight_decay"]:
    chain.append(optax.add_decayed_weights(cfg["weight_decay"]))
  chain.append(OPTIMIZERS[name](learning_rate=make_schedule(cfg), **options))
  return optax.chain(*chain)
