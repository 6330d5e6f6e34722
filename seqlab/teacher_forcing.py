"""Teacher forcing and scheduled sampling, for any decoder with the model step interface.

The interface is `step(carry, token [B]) -> (carry, logits [B, V])` (seqlab.decode).

Teacher forcing feeds the true previous token y_{t-1} at every step. Scheduled sampling
(Bengio et al. 2015) feeds it with probability eps_i at training step i, else a token drawn
from the model's own distribution at the step before, with

    always:           eps_i = 1                          (teacher forcing)
    linear:           eps_i = max(eps_min, 1 - k i)
    exponential:      eps_i = k^i                        (0 < k < 1)
    inverse_sigmoid:  eps_i = k / (k + exp(i / k))       (k >= 1)
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from seqlab import losses

Array = jax.Array
SCHEDULES = ("always", "linear", "exponential", "inverse_sigmoid")


def check_schedule(schedule: str, k: float, eps_min: float) -> None:
  """Raises naming the field when the schedule is unknown or its k or eps_min out of range."""
  if schedule not in SCHEDULES:
    raise ValueError(f"config.problem.teacher_forcing={schedule!r}; known: {list(SCHEDULES)}")
  need = {"linear": "k > 0 (the slope c) and 0 <= teacher_forcing_min <= 1",
          "exponential": "0 < k < 1", "inverse_sigmoid": "k >= 1"}.get(schedule)
  bad = {"linear": not k > 0 or not 0 <= eps_min <= 1, "exponential": not 0 < k < 1,
         "inverse_sigmoid": not k >= 1}.get(schedule, False)
  if bad:
    raise ValueError(f"config.problem.teacher_forcing={schedule!r} needs {need}; got "
                     f"teacher_forcing_k={k}, teacher_forcing_min={eps_min}")


def probability(schedule: str, k: float, eps_min: float, step) -> Array:
  """eps_i, the probability of feeding the true previous token at training step i."""
  i = jnp.asarray(step, jnp.float32)
  if schedule == "always":
    return jnp.ones_like(i)
  if schedule == "linear":
    return jnp.maximum(eps_min, 1.0 - k * i)
  if schedule == "exponential":
    return jnp.power(jnp.float32(k), i)
  if schedule == "inverse_sigmoid":
    return k / (k + jnp.exp(i / k))
  raise ValueError(f"config.problem.teacher_forcing={schedule!r}; known: {list(SCHEDULES)}")


def feed(step: Callable[[Any, Array], tuple[Any, Array]], carry: Any, prev_tokens: Array,
         eps: float | Array = 1.0, rng: Array | None = None) -> Array:
  """Logits [B, T, V] of `step` run over prev_tokens [B, T] (<bos>, y_1 .. y_{T-1}).

  Without rng every input is the true one (teacher forcing). With rng, input t >= 1 is
  prev_tokens[:, t] with probability eps, else a token drawn from the (gradient-stopped)
  logits of step t - 1 (scheduled sampling); step 0 always reads <bos>.
  """
  gold = prev_tokens.T  # [T, B]
  carry, first = step(carry, gold[0])
  if rng is None:
    _, rest = jax.lax.scan(step, carry, gold[1:])
  else:
    coin_key, sample_key = jax.random.split(rng)
    use_gold = jax.random.bernoulli(coin_key, eps, gold[1:].shape)

    def body(state, xs):
      carry, prev_logits = state
      y_gold, teacher, key = xs
      sampled = jax.random.categorical(key, jax.lax.stop_gradient(prev_logits).astype(jnp.float32))
      carry, logits = step(carry, jnp.where(teacher, y_gold, sampled.astype(y_gold.dtype)))
      return (carry, logits), logits

    keys = jax.random.split(sample_key, gold.shape[0] - 1)
    _, rest = jax.lax.scan(body, (carry, first), (gold[1:], use_gold, keys))
  return jnp.concatenate([first[None], rest]).swapaxes(0, 1)


def token_loss(fields, step: Array, rng: Array, batch: Mapping[str, Array],
               forced_logits: Callable[[], Array], model_step: Callable, start: Callable[[], Any]
               ) -> tuple[Array, dict[str, Array]]:
  """(mean token cross-entropy, metrics) of a decoder trained as `fields.teacher_forcing`
  (config.problem) says.

  "always": the model's teacher-forced logits `forced_logits()`; a schedule: `feed` of
  `model_step` from `start()` over batch["decoder_inputs"] with eps_i at training step i.
  Scored on batch["targets"] where batch["mask"].
  """
  if fields.teacher_forcing == "always":
    logits, eps = forced_logits(), jnp.float32(1.0)
  else:
    eps = probability(fields.teacher_forcing, fields.teacher_forcing_k,
                      fields.teacher_forcing_min, step)
    logits = feed(model_step, start(), batch["decoder_inputs"], eps, rng)
  xent, correct, count = losses.token_sums(logits, batch["targets"], batch["mask"])
  count = jnp.maximum(count, 1.0)
  return xent / count, {"token_accuracy": correct / count, "teacher_forcing": eps}
