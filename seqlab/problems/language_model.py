"""Character-level language modelling and autocompletion (notes 004: "predict the next
character"), on one long text stream.

Batches are contiguous windows of the stream (row r of batch k+1 continues row r of
batch k). Recurrent models train with truncated BPTT(k1, k2): k1 = the window length
(one update per batch), gradients flowing back k2 >= k1 steps, the state carried
across batches without gradient (`seqlab.tbptt`) and reset at each epoch's start.
Feed-forward models (Transformer LM, NPLM) see each window on its own.

    loss = -1/T sum_t log p(c_{t+1} | c_<=t);  bits per character = loss / ln 2
"""

import math
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqlab import decode, tbptt
from seqlab.problems import base


class LanguageModel(base.ProblemBase):
  """Next-character prediction on a text stream, with completion and sampling."""

  def __init__(self, config):
    super().__init__(config)
    self.vocab = self.task.vocabs["text"]
    self.model = self.build_model(vocab_size=len(self.vocab), output_size=len(self.vocab))
    # A model whose step takes (carry, token) from a carry of `start(batch_size)` (the RNN)
    # continues the stream across windows; the others (Transformer LM, NPLM) see each
    # window on its own.
    self.recurrent = config.model.name == "rnn"

  def model_inputs(self, batch):
    return (batch["inputs"],)

  # --- truncated BPTT over the stream (recurrent models)

  def _step(self, params, carry, token):
    """The model step (carry, token) -> (carry, logits), as truncated BPTT calls it."""
    return self.model.bind(params).step(carry, token)

  @staticmethod
  def _step_loss(params, logits, target):
    del params
    return optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), target).mean()

  def _k2(self, k1: int) -> int:
    return max(self.config.train.tbptt_k2 or k1, 1)

  def init_extra(self, params, batch):
    if not self.recurrent:
      return {}
    B, k1 = batch["inputs"].shape
    carry = self.model.bind(params).start(B)
    return tbptt.init_state(carry, batch["inputs"], k1, self._k2(k1))

  def _window_loss(self, params, batch, extra):
    """Mean next-character cross-entropy of the batch, and the carried state."""
    if not self.recurrent:
      logits = self.model.apply(params, batch["inputs"]).astype(jnp.float32)
      xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
      return xent.mean(), extra
    k1 = batch["inputs"].shape[1]
    if "reset" in batch:  # a new epoch starts the stream afresh
      fresh = self.init_extra(params, batch)
      extra = jax.tree.map(lambda f, e: jnp.where(batch["reset"], f, e), fresh, extra)
    total, extra = tbptt.chunk_loss(self._step, self._step_loss, params, extra,
                                    batch["inputs"], batch["targets"], k1, self._k2(k1))
    return total / k1, extra

  def loss(self, params, batch, rng, extra, step):
    loss, extra = self._window_loss(params, batch, extra)
    return loss, ({"bits_per_char": loss / math.log(2)}, extra)

  def eval_sums(self, params, batch, extra):
    loss, extra = self._window_loss(params, batch, extra)
    return {"xent": loss * batch["inputs"].size, "chars": batch["inputs"].size}, extra

  def summarize(self, sums):
    loss = sums["xent"] / max(sums["chars"], 1)
    return {"loss": loss, "bits_per_char": loss / math.log(2), "perplexity": math.exp(loss)}

  def train_batches(self, seed: int, start_step: int) -> Iterator[dict]:
    t = self.config.train
    return self.task.stream("train", t.batch_size, t.seq_len, start_step=start_step,
                            num_epochs=None, seed=seed)

  def eval_batches(self, split: str) -> Iterator[dict]:
    t = self.config.train
    return self.task.stream(split, t.batch_size, t.seq_len, num_epochs=1)

  # --- completion and sampling (recurrent models)

  def _require_recurrent(self, what: str):
    if not self.recurrent:
      raise ValueError(f"{what} needs a recurrent model (config.model.name='rnn')")

  def complete(self, params, prefixes: Sequence[str], length: int | None = None) -> list[str]:
    """Greedy continuations of each prefix (the most probable next characters)."""
    self._require_recurrent("completion")
    length = length or self.config.decode.max_len
    out = []
    for prefix in prefixes:
      if not prefix:
        raise ValueError("cannot complete an empty prefix")
      # Primed with decode.prime (a blank line): as at the start of a speech, not a zero state
      # the model only saw at the start of each epoch.
      ids = self.vocab.encode(self.config.decode.prime + prefix)
      model = self.model.bind(params)
      carry = model.start(1)
      for token in ids[:-1]:  # read the prefix; its last character starts the decoding
        carry, _ = model.step(carry, jnp.array([token]))
      decoded = decode.greedy(model.step, carry, int(ids[-1]), length)
      out.append(self.vocab.decode(np.asarray(decoded.tokens[0])))
    return out

  def sample(self, params, rng, num: int = 3) -> list[str]:
    """Temperature samples, each started from a newline."""
    self._require_recurrent("sampling")
    model = self.model.bind(params)
    start = int(self.vocab.encode("\n")[0])
    decoded = decode.sample(model.step, model.start(num), start, self.config.decode.max_len,
                            rng, self.config.decode.temperature)
    return [self.vocab.decode(np.asarray(row)) for row in decoded.tokens]

  def report(self, params, workdir: str) -> None:
    """After training: validation bits per character and completions of a few prefixes."""
    prefixes = list(self.config.decode.prefixes)
    if self.recurrent and prefixes:
      print("completions:")
      for prefix, completion in zip(prefixes, self.complete(params, prefixes), strict=True):
        print(f"  {prefix!r} -> {completion!r}")
