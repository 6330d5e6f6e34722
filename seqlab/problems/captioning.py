"""One-to-many generation: caption an 8x8 digit image with its name ("seven"), character
by character (captioning in miniature; notes 000, the one-to-many pattern).

An `RNN` with pattern one_to_many reads x_t = [context; embed(y_{t-1})] at every step,
the context being the image [64]. Training is teacher-forced: y_0 = <bos> and y_{t-1}
the true previous character, scored on the name followed by <eos>:

    loss = -sum_{b,t} m_bt log P(y_bt | y_b<t, image_b) / sum_{b,t} m_bt

or uses scheduled sampling (Bengio et al. 2015; `train.teacher_forcing`, the schedules
of `seqlab.problems.translation`): the true y_{t-1} with probability eps_i at training
step i, else a character drawn from the model's distribution at step t - 1.

Metrics: teacher-forced loss and token accuracy, and the exact match of the greedy
caption (y_t = argmax, fed back; `RNN.generate`): every character and the final <eos>
right.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqlab.data.builders.digits import NAMES
from seqlab.data.vocab import BOS
from seqlab.models.recurrent import cast_floats
from seqlab.models.rnn import RNN
from seqlab.problems import base
from seqlab.problems.translation import check_schedule, teacher_forcing_probability

Array = jax.Array


def scheduled_logits(module: RNN, context: Array, gold_prev: Array, teacher: Array,
                     keys: Array) -> Array:
  """Logits [B, T, V]; input t reads gold_prev[:, t] where teacher[:, t], else a sample
  from the logits of step t - 1 (`model.apply(..., method=scheduled_logits)`)."""
  cell = module.recurrent.make_cell()
  params = cast_floats(module.recurrent.variables["params"]["cell"], module.dtype)
  context = context.astype(module.dtype)

  def body(carry, xs):
    h, prev_logits = carry
    y_gold, use_gold, key = xs
    sampled = jax.random.categorical(key, jax.lax.stop_gradient(prev_logits).astype(jnp.float32))
    y = jnp.where(use_gold, y_gold, sampled.astype(y_gold.dtype))
    h, out = cell.step(params, h, jnp.concatenate([context, module.embed(y)], axis=-1))
    logits = module.output(out)
    return (h, logits), logits

  B = context.shape[0]
  h0 = cell.initial_carry(params, (B,))
  start = (h0, jnp.zeros((B, module.output_size), module.dtype))
  _, logits = jax.lax.scan(body, start, (gold_prev.T, teacher.T, keys))
  return logits.swapaxes(0, 1)


class Captioning(base.ProblemBase):
  """Image -> name of the digit, one character per step, with greedy generation."""

  def __init__(self, config):
    super().__init__(config)
    if not (isinstance(self.model, RNN) and self.model.pattern == "one_to_many"):
      raise ValueError("captioning needs config.model.name='rnn' with "
                       "config.model.pattern='one_to_many'")
    t = config.train
    check_schedule(t.teacher_forcing, t.teacher_forcing_k, t.teacher_forcing_min)
    self.vocab = self.task.vocabs["caption"]
    self.max_length = max(len(name) for name in NAMES) + 1  # the longest name and <eos>

  def derived_model_fields(self) -> dict[str, Any]:
    size = self.task.metadata["vocab_size"]
    return {"vocab_size": size, "output_size": size}

  def model_inputs(self, batch) -> tuple:
    return (batch["inputs"], batch["lengths"], batch["decoder_inputs"])

  def logits(self, params: Any, batch: Mapping[str, Array]) -> Array:
    """Teacher-forced logits [B, T, V] (float32)."""
    return self.model.apply(params, *self.model_inputs(batch)).astype(jnp.float32)

  def _token_sums(self, logits, batch):
    m = batch["mask"].astype(jnp.float32)
    xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    correct = (jnp.argmax(logits, -1) == batch["targets"]).astype(jnp.float32)
    return (xent * m).sum(), (correct * m).sum(), m.sum()

  def loss(self, params, batch, rng, extra, step):
    t = self.config.train
    if t.teacher_forcing == "always":
      logits, eps = self.logits(params, batch), jnp.float32(1.0)
    else:
      eps = teacher_forcing_probability(t.teacher_forcing, t.teacher_forcing_k,
                                        t.teacher_forcing_min, step)
      gold = batch["decoder_inputs"]
      coin_key, sample_key = jax.random.split(rng)
      teacher = jax.random.bernoulli(coin_key, eps, gold.shape).at[:, 0].set(True)
      keys = jax.random.split(sample_key, gold.shape[1])
      logits = self.model.apply(params, batch["inputs"], gold, teacher, keys,
                                method=scheduled_logits).astype(jnp.float32)
    xent, correct, count = self._token_sums(logits, batch)
    count = jnp.maximum(count, 1.0)
    return xent / count, ({"token_accuracy": correct / count, "teacher_forcing": eps}, extra)

  def generate(self, params: Any, images: Array, num_steps: int | None = None) -> Array:
    """Greedy captions [B, num_steps] (character ids) of images [B, 64]."""
    return self.model.apply(params, images, BOS, num_steps or self.max_length,
                            method=RNN.generate)

  def eval_sums(self, params, batch, extra):
    xent, correct, count = self._token_sums(self.logits(params, batch), batch)
    tokens = self.generate(params, batch["inputs"], batch["targets"].shape[1])
    right = (tokens == batch["targets"]) | ~batch["mask"]  # every real step, <eos> included
    sums = {"xent": xent, "correct": correct, "tokens": count,
            "exact": right.all(axis=1).sum(), "captions": jnp.float32(tokens.shape[0])}
    return sums, extra

  def summarize(self, sums):
    tokens = max(sums["tokens"], 1.0)
    return {"loss": sums["xent"] / tokens, "token_accuracy": sums["correct"] / tokens,
            "exact_match": sums["exact"] / max(sums["captions"], 1.0)}

  def batch_options(self):
    return {"max_length": self.max_length}

  def caption(self, params: Any, images: np.ndarray) -> list[str]:
    """The greedy caption of each image [64], as text."""
    tokens = np.asarray(jax.jit(self.generate)(params, jnp.asarray(images)))
    return [self.vocab.decode(row) for row in tokens]

  def report(self, params: Any, workdir: str) -> None:
    """After training: the greedy captions of the first test images next to their labels."""
    del workdir
    batch = next(self.eval_batches("test"))
    images, names = batch["inputs"][:10], batch["targets"][:10]
    print("captions (test images):")
    for caption, target in zip(self.caption(params, images), names, strict=True):
      print(f"  {self.vocab.decode(target)!r} -> {caption!r}")
