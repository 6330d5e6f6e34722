"""One-to-many generation: caption an 8x8 digit image with its name, character by character.

Captioning in miniature (a 7 -> "seven"; notes 000, the one-to-many pattern).

An `RNN` with pattern one_to_many reads x_t = [context; embed(y_{t-1})] at every step,
the context being the image [64]. Training is teacher-forced: y_0 = <bos> and y_{t-1}
the true previous character, scored on the name followed by <eos>:

    loss = -sum_{b,t} m_bt log P(y_bt | y_b<t, image_b) / sum_{b,t} m_bt

or uses scheduled sampling (Bengio et al. 2015; `problem.teacher_forcing`, the schedules
of `seqlab.teacher_forcing`): the true y_{t-1} with probability eps_i at training step i,
else a character drawn from the model's distribution at step t - 1.

Metrics: teacher-forced loss and token accuracy, and the exact match of the greedy
caption (y_t = argmax, fed back: `seqlab.decode.greedy` over the model's `start(context=
image)` and `step`): every character and the final <eos> right.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqlab import decode, losses, teacher_forcing
from seqlab.data.builders.digits import NAMES
from seqlab.data.vocab import BOS, EOS
from seqlab.problems import base

Array = jax.Array


class Captioning(base.ProblemBase):
  """Image -> name of the digit, one character per step, with greedy generation."""

  def __init__(self, config):
    super().__init__(config)
    if not (config.model.name == "rnn" and config.model.pattern == "one_to_many"):
      raise ValueError("captioning needs config.model.name='rnn' with "
                       "config.model.pattern='one_to_many'")
    p = config.problem
    teacher_forcing.check_schedule(p.teacher_forcing, p.teacher_forcing_k, p.teacher_forcing_min)
    size = self.task.metadata["vocab_size"]
    self.model = self.build_model(vocab_size=size, output_size=size)
    self.vocab = self.task.vocabs["caption"]
    self.max_length = max(len(name) for name in NAMES) + 1  # the longest name and <eos>

  def model_inputs(self, batch) -> tuple:
    return (batch["inputs"], batch["lengths"], batch["decoder_inputs"])

  def logits(self, params: Any, batch: Mapping[str, Array]) -> Array:
    """Teacher-forced logits [B, T, V] (float32)."""
    return self.model.apply(params, *self.model_inputs(batch)).astype(jnp.float32)

  def loss(self, params, batch, rng, extra, step):
    model = self.model.bind(params)
    loss, metrics = teacher_forcing.token_loss(
        self.config.problem, step, rng, batch, lambda: self.logits(params, batch), model.step,
        lambda: model.start(context=batch["inputs"]))
    return loss, (metrics, extra)

  def generate(self, params: Any, images: Array, num_steps: int | None = None) -> Array:
    """Greedy captions [B, num_steps] (character ids, <eos> repeated after the end)."""
    model = self.model.bind(params)
    return decode.greedy(model.step, model.start(context=images), BOS,
                         num_steps or self.max_length, EOS).tokens

  def eval_sums(self, params, batch, extra):
    logits = self.logits(params, batch)
    xent, correct, count = losses.token_sums(logits, batch["targets"], batch["mask"])
    tokens = self.generate(params, batch["inputs"], batch["targets"].shape[1])
    right = (tokens == batch["targets"]) | ~batch["mask"]  # every real step, <eos> included
    sums = {"xent": xent, "correct": correct, "tokens": count,
            "exact": right.all(axis=1).sum(), "captions": jnp.float32(tokens.shape[0])}
    return sums, extra

  def summarize(self, sums):
    tokens = max(sums["tokens"], 1.0)
    return {"loss": sums["xent"] / tokens, "token_accuracy": sums["correct"] / tokens,
            "exact_match": sums["exact"] / max(sums["captions"], 1.0)}

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
