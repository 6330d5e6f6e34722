"""Character-level language modelling and autocompletion on one long text stream.

The task of notes 004: "predict the next character".

Batches are contiguous windows of the stream (row r of batch k+1 continues row r of
batch k). Recurrent models train with truncated BPTT(k1, k2): k1 = the window length
(one update per batch), gradients flowing back k2 >= k1 steps, the state carried
across batches without gradient (`seqlab.tbptt`) and reset at each epoch's start.
Feed-forward models (Transformer LM, NPLM) see each window on its own.

    loss = -1/T sum_t log p(c_{t+1} | c_<=t);  bits per character = loss / ln 2
"""

import math
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqlab import decode, tbptt
from seqlab.problems import base

COMPLETIONS = ("greedy", "beam", "sample")
RECURRENT = ("rnn", "deep")  # models with start / step / run: a state carried across windows


class LanguageModel(base.ProblemBase):
  """Next-character prediction on a text stream, with completion and sampling."""

  unit = "char"  # metrics are bits per `unit`

  def __init__(self, config):
    super().__init__(config)
    self.vocab = self.task.vocabs["text"]
    self.model = self.build_model(**self.model_sizes())
    # A model whose step takes (carry, token) from a carry of `start(batch_size)` (the RNN,
    # the stacked DeepRNN) continues the stream across windows; the others (Transformer LM,
    # NPLM, TDNN) see each window on its own.
    self.recurrent = config.model.name in RECURRENT

  def model_sizes(self) -> dict[str, Any]:
    """The model fields the data fixes: vocabulary in and out."""
    size = len(self.vocab)
    return {"vocab_size": size, "output_size": size}

  def model_inputs(self, batch):
    return (batch["inputs"],)

  # --- truncated BPTT over the stream (recurrent models)

  def _step(self, params, carry, token):
    """The model step (carry, token) -> (carry, logits)."""
    return self.model.bind(params).step(carry, token)

  def _train_step(self, params, carry, token):
    """The step truncated BPTT runs: (carry, token) -> (carry, what `_step_loss` scores);
    here the logits (a word LM's head scores its hidden state instead)."""
    return self._step(params, carry, token)

  def _train_sequence(self, params, carry, tokens):
    """`_train_step` over a whole window at once: (carry, tokens [B, T]) -> (carry, logits)."""
    return self.model.apply(params, carry, tokens, method="run")

  def _step_loss(self, rng):
    """step_loss(params, logits, target) of truncated BPTT (rng: training, None: evaluation)."""
    del rng

    def step_loss(params, logits, target):
      del params
      return optax.softmax_cross_entropy_with_integer_labels(
          logits.astype(jnp.float32), target).mean()
    return step_loss

  def _k2(self, k1: int) -> int:
    return max(self.config.train.tbptt_k2 or k1, 1)

  def init_extra(self, params, batch):
    if not self.recurrent:
      return {}
    B, k1 = batch["inputs"].shape
    carry = self.model.bind(params).start(B)
    return tbptt.init_state(carry, batch["inputs"], k1, self._k2(k1))

  def _window_loss(self, params, batch, extra, rng=None):
    """Mean next-token cross-entropy of the batch, and the carried state."""
    if not self.recurrent:
      logits = self.model.apply(params, batch["inputs"]).astype(jnp.float32)
      xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
      return xent.mean(), extra
    k1 = batch["inputs"].shape[1]
    if "reset" in batch:  # a new epoch starts the stream afresh
      fresh = self.init_extra(params, batch)
      extra = jax.tree.map(lambda f, e: jnp.where(batch["reset"], f, e), fresh, extra)
    total, extra = tbptt.chunk_loss(self._train_step, self._step_loss(rng), params, extra,
                                    batch["inputs"], batch["targets"], k1, self._k2(k1),
                                    self._train_sequence)
    return total / k1, extra

  def loss(self, params, batch, rng, extra, step):
    loss, extra = self._window_loss(params, batch, extra, rng)
    return loss, ({f"bits_per_{self.unit}": loss / math.log(2)}, extra)

  def eval_sums(self, params, batch, extra):
    loss, extra = self._window_loss(params, batch, extra)
    return {"xent": loss * batch["inputs"].size, "chars": batch["inputs"].size}, extra

  def summarize(self, sums):
    loss = sums["xent"] / max(sums["chars"], 1)
    return {"loss": loss, f"bits_per_{self.unit}": loss / math.log(2),
            "perplexity": math.exp(loss)}

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
      raise ValueError(f"{what} needs a recurrent model (config.model.name in {RECURRENT})")

  def _read_prefix(self, params, prefix: str) -> tuple[Any, int]:
    """The state after reading decode.prime + prefix but its last token, and that token."""
    if not prefix:
      raise ValueError("cannot complete an empty prefix")
    # Primed with decode.prime (a blank line): as at the start of a speech, not a zero state
    # the model only saw at the start of each epoch.
    ids = self.vocab.encode(self.config.decode.prime + prefix)
    model = self.model.bind(params)
    carry = model.start(1)
    for token in ids[:-1]:  # read the prefix; its last token starts the decoding
      carry, _ = model.step(carry, jnp.array([token]))
    return carry, int(ids[-1])

  def complete(self, params, prefixes: Sequence[str], length: int | None = None,
               method: str | None = None, rng: jax.Array | None = None) -> list[str]:
    """Continuations of each prefix by `method` (default config.decode.completion):
    greedy (the locally most probable token), beam (the most probable of beam_width
    beams) or sample (temperature, top_k, top_p of config.decode; rng default key(seed))."""
    self._require_recurrent("completion")
    d = self.config.decode
    length, method = length or d.max_len, method or d.completion
    if method not in COMPLETIONS:
      raise ValueError(f"unknown completion method {method!r}; known: {list(COMPLETIONS)}")
    rng = jax.random.key(self.config.seed) if rng is None else rng
    out = []
    for i, prefix in enumerate(prefixes):
      carry, last = self._read_prefix(params, prefix)
      step_fn = self.model.bind(params).step
      if method == "greedy":
        tokens = decode.greedy(step_fn, carry, last, length).tokens[0]
      elif method == "beam":
        beams = decode.beam_search(step_fn, carry, last, length, d.beam_width,
                                   length_penalty=d.length_penalty)
        tokens = beams.tokens[0, 0]
      else:
        tokens = decode.sample(step_fn, carry, last, length, jax.random.fold_in(rng, i),
                               d.temperature, top_k=d.top_k, top_p=d.top_p).tokens[0]
      out.append(self.vocab.decode(np.asarray(tokens)))
    return out

  def sample(self, params, rng, num: int = 3) -> list[str]:
    """Samples (temperature, top_k, top_p of config.decode), each started from a new line."""
    self._require_recurrent("sampling")
    d = self.config.decode
    model = self.model.bind(params)
    start = int(self.vocab.encode("\n" if self.vocab.level == "char" else ".")[0])
    decoded = decode.sample(model.step, model.start(num), start, d.max_len, rng,
                            d.temperature, top_k=d.top_k, top_p=d.top_p)
    return [self.vocab.decode(np.asarray(row)) for row in decoded.tokens]

  def report(self, params, workdir: str) -> None:
    """After training: greedy, beam and sampled completions of a few prefixes, side by side."""
    prefixes = list(self.config.decode.prefixes)
    if not (self.recurrent and prefixes):
      return
    d = self.config.decode
    print(f"completions (beam: width {d.beam_width}; sample: temperature {d.temperature}, "
          f"top_k {d.top_k}, top_p {d.top_p}, seed {self.config.seed}):")
    done = {m: self.complete(params, prefixes, method=m) for m in COMPLETIONS}
    for i, prefix in enumerate(prefixes):
      print(f"  {prefix!r}")
      for method in COMPLETIONS:
        print(f"    {method:<6} -> {done[method][i]!r}")
