"""Optimizers from config: optax by name, a learning-rate schedule, clipping, weight decay.

    config.optimizer = {name, learning_rate, schedule, warmup_steps, decay_steps,
                        end_learning_rate, weight_decay, clip_norm, clip_value, options}

Gradient clipping (Pascanu, Mikolov & Bengio 2013) rescales g to clip_norm * g / ||g||
when the global norm ||g|| exceeds clip_norm (or clips each entry to +-clip_value),
before the optimizer. Weight decay is decoupled for adamw (Loshchilov & Hutter 2019:
theta -= lr * wd * theta beside the Adam step) and an L2 term g += wd * theta for the
other optimizers (the same thing for plain SGD).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
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
# Numbers a vmapped sweep may vary inside one program (see make_optimizer's `inject`).
INJECTABLE = ("learning_rate", "clip_norm", "clip_value", "weight_decay")


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


def make_optimizer(
    cfg: Mapping[str, Any], inject: Sequence[str] = ()
) -> optax.GradientTransformation:
  """clip -> optimizer(schedule) -> decoupled weight decay, from config.optimizer.

  The fields named in `inject` (of INJECTABLE) become leaves of the optimizer state
  (`optax.inject_hyperparams`), so that one compiled program can give every member of a
  vmapped sweep its own value; an injected clipping threshold of 0 means off (infinity).
  """
  name = cfg["name"]
  if name not in OPTIMIZERS:
    raise _unknown("optimizer", name, OPTIMIZERS)
  unknown = set(inject) - set(INJECTABLE)
  if unknown:
    raise ValueError(f"config.optimizer fields {sorted(unknown)} cannot be injected (swept in "
                     f"one program); injectable: {list(INJECTABLE)}")
  if "learning_rate" in inject and cfg["schedule"] not in ("constant", "linear"):
    raise ValueError(f"an injected learning_rate needs schedule 'constant' or 'linear' (the "
                     f"{cfg['schedule']!r} schedule is built from a Python lr)")
  on = lambda k: bool(cfg[k]) or k in inject
  if on("clip_norm") and on("clip_value"):
    raise ValueError("config.optimizer: set clip_norm or clip_value, not both")
  if not inject:
    return _chain(cfg, cfg, on)

  # inject_hyperparams finds the hyperparameters in the factory's signature: name them.
  def factory(learning_rate=None, clip_norm=None, clip_value=None, weight_decay=None):
    given = {"learning_rate": learning_rate, "clip_norm": clip_norm, "clip_value": clip_value,
             "weight_decay": weight_decay}
    return _chain(cfg, {**cfg, **{k: given[k] for k in inject}}, on)

  return optax.inject_hyperparams(factory)(**{k: cfg[k] for k in inject})


def _chain(cfg: Mapping[str, Any], values: Mapping[str, Any], on) -> optax.GradientTransformation:
  """The chain whose structure `cfg` and `on` fix and whose numbers come from `values`."""
  name, chain = cfg["name"], []
  if on("clip_norm"):
    chain.append(optax.clip_by_global_norm(_off_is_infinite(values["clip_norm"])))
  if on("clip_value"):
    chain.append(optax.clip(_off_is_infinite(values["clip_value"])))
  options = dict(cfg["options"])
  if name == "adamw":
    options["weight_decay"] = values["weight_decay"]
  elif on("weight_decay"):
    chain.append(optax.add_decayed_weights(values["weight_decay"]))
  chain.append(OPTIMIZERS[name](learning_rate=make_schedule(values), **options))
  return optax.chain(*chain)


def _off_is_infinite(threshold):
  """A clipping threshold; an injected (traced) 0 becomes infinity, i.e. no clipping."""
  if isinstance(threshold, int | float):
    return threshold
  return jnp.where(threshold > 0, threshold, jnp.inf)
