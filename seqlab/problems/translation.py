"""Translation of sentence pairs x -> y with an encoder-decoder (`seq2seq`, with or without
attention) or the Transformer baseline (`transformer`).

Training is teacher-forced: the decoder reads <bos> y_1 .. y_{T-1} and is scored on
y_1 .. y_T <eos> by the masked token cross-entropy

    loss = -sum_{b,t} m_bt log P(y_bt | y_b<t, x_b) / sum_{b,t} m_bt   (m = 1 on real steps)

The recurrent decoder can instead use scheduled sampling (Bengio et al. 2015): at training
step i each decoder input is the true previous token with probability eps_i, else a token
drawn from the model's own distribution at the step before, with

    linear:           eps_i = max(eps_min, 1 - k i)
    exponential:      eps_i = k^i                        (0 < k < 1)
    inverse_sigmoid:  eps_i = k / (k + exp(i / k))       (k >= 1)

Evaluation: teacher-forced loss, perplexity and token accuracy; greedy and beam-search
decodings (`seqlab.decode`) of the source sentences, scored by corpus BLEU (sacrebleu, its
13a tokenizer, on detokenized text) and by their mean model log-probability log P(y | x).
"""

import itertools
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sacrebleu.metrics import BLEU

from seqlab import decode
from seqlab.data import batching
from seqlab.data.vocab import BOS, EOS, PAD
from seqlab.models.seq2seq import Seq2Seq, shift_right
from seqlab.models.transformer import Transformer
from seqlab.problems import base

Array = jax.Array
SCHEDULES = ("always", "linear", "exponential", "inverse_sigmoid")
DECODERS = ("greedy", "beam")
# sacrebleu's sufficient statistics, summed over sentences: lengths, matches and totals by n.
BLEU_STATS = ("sys_len", "ref_len", *(f"match{n}" for n in range(1, 5)),
              *(f"total{n}" for n in range(1, 5)))
_SENTENCE_BLEU = BLEU(effective_order=True)  # the counts do not depend on effective_order


def teacher_forcing_probability(schedule: str, k: float, eps_min: float, step) -> Array:
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
  raise ValueError(f"config.train.teacher_forcing={schedule!r}; known: {list(SCHEDULES)}")


def check_schedule(schedule: str, k: float, eps_min: float) -> None:
  """Raises naming the field when a schedule's k or eps_min is out of its range."""
  if schedule not in SCHEDULES:
    raise ValueError(f"config.train.teacher_forcing={schedule!r}; known: {list(SCHEDULES)}")
  bad = {"linear": not k > 0 or not 0 <= eps_min <= 1, "exponential": not 0 < k < 1,
         "inverse_sigmoid": not k >= 1}.get(schedule, False)
  if bad:
    need = {"linear": "k > 0 (the slope c) and 0 <= teacher_forcing_min <= 1",
            "exponential": "0 < k < 1", "inverse_sigmoid": "k >= 1"}[schedule]
    raise ValueError(f"config.train.teacher_forcing={schedule!r} needs {need}; got "
                     f"teacher_forcing_k={k}, teacher_forcing_min={eps_min}")


def token_sums(logits: Array, targets: Array, mask: Array) -> tuple[Array, Array, Array]:
  """(sum m * -log softmax(logits)[y], sum m * [argmax == y], sum m) over real steps."""
  m = mask.astype(jnp.float32)
  xent = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return (xent * m).sum(), (correct * m).sum(), m.sum()


def detokenize(text: str, level: str) -> str:
  """Running text from decoded tokens: word level joins hyphens, apostrophes, punctuation."""
  if level == "char":
    return text
  text = re.sub(r" ?([-']) ?", r"\1", text)
  return re.sub(r" ([,.;:!?)])", r"\1", text)


def bleu_stats(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
  """sacrebleu's BLEU statistics (BLEU_STATS order) summed over the sentence pairs."""
  out = np.zeros(len(BLEU_STATS), np.int64)
  for hyp, ref in zip(hypotheses, references, strict=True):
    s = _SENTENCE_BLEU.sentence_score(hyp, [ref])
    out += np.array([s.sys_len, s.ref_len, *s.counts, *s.totals], np.int64)
  return out


def corpus_bleu(stats: Sequence[float]) -> float:
  """Corpus BLEU (0..100) from summed statistics: sacrebleu's corpus_bleu (exp smoothing),
  except that n-gram orders no hypothesis reaches are left out (effective order; this only
  changes sets of sentences shorter than 4 tokens, whose BLEU would otherwise be 0)."""
  s = [int(round(v)) for v in stats]
  return BLEU.compute_bleu(s[2:6], s[6:10], s[0], s[1], smooth_method="exp",
                           effective_order=True).score


def fill_rows(a: np.ndarray, size: int) -> np.ndarray:
  """A partial batch completed to `size` rows with copies of its first (one compiled shape)."""
  return np.concatenate([a, np.repeat(a[:1], max(size - a.shape[0], 0), axis=0)])


class Translation(base.ProblemBase):
  """Sentence-pair translation: teacher forcing or scheduled sampling, greedy and beam BLEU."""

  def __init__(self, config):
    super().__init__(config)
    self.level = self.task.read_options["level"]
    self.src_vocab = self.task.vocabs[f"source-{self.level}"]
    self.tgt_vocab = self.task.vocabs[f"target-{self.level}"]
    self.recurrent = isinstance(self.model, Seq2Seq)
    t = config.train
    if not self.recurrent and not isinstance(self.model, Transformer):
      raise ValueError(f"config.model.name={config.model.name!r} cannot translate; "
                       "use 'seq2seq' or 'transformer'")
    check_schedule(t.teacher_forcing, t.teacher_forcing_k, t.teacher_forcing_min)
    if t.teacher_forcing != "always" and not self.recurrent:
      raise ValueError(f"config.train.teacher_forcing={t.teacher_forcing!r} (scheduled "
                       "sampling) needs the recurrent decoder (model 'seq2seq'); use 'always'")
    if self.recurrent and self.model.length_strategy != "eos":
      raise ValueError("translation decodes up to <eos>: config.model.length_strategy must be "
                       f"'eos', got {self.model.length_strategy!r}")
    self.greedy_jit = jax.jit(self.greedy)
    self.beam_jit = jax.jit(self.beam, static_argnames="beam_width")

  def derived_model_fields(self) -> dict[str, Any]:
    level = self.task.read_options["level"]
    src, tgt = (len(self.task.vocabs[f"{side}-{level}"]) for side in ("source", "target"))
    return {"vocab_size": src, "target_vocab_size": tgt, "src_vocab_size": src,
            "tgt_vocab_size": tgt, "bos_id": BOS, "eos_id": EOS, "pad_id": PAD}

  def init(self, rng, batch):
    return jax.jit(self.model.init)(rng, *self.model_inputs(batch))  # one compile, not per op

  def model_inputs(self, batch) -> tuple:
    if self.recurrent:
      return (batch["inputs"], batch["source_lengths"], batch["targets"])
    return (batch["inputs"], batch["decoder_inputs"], batch["source_lengths"])

  # --- training

  def logits(self, params, batch, rng: Array | None = None) -> Array:
    """Teacher-forced logits [B, T, V] of P(y_t | y_<t, x) (dropout on when rng is given)."""
    if self.recurrent:
      return self.model.apply(params, *self.model_inputs(batch)).logits
    rngs = {} if rng is None else {"dropout": rng}
    return self.model.apply(params, *self.model_inputs(batch), deterministic=rng is None,
                            rngs=rngs)

  def scheduled_logits(self, params, batch, rng: Array, eps: Array) -> Array:
    """Logits [B, T, V] when input t is y_{t-1} with probability eps, else y ~ P(. | step t-1)."""
    gold = shift_right(batch["targets"], BOS).T  # [T, B]: <bos> y_1 .. y_{T-1}, as __call__
    T, B = gold.shape
    coin_key, sample_key = jax.random.split(rng)
    teacher = jax.random.bernoulli(coin_key, eps, (T, B)).at[0].set(True)
    state = self.model.apply(params, batch["inputs"], batch["source_lengths"], method="encode")

    def body(carry, xs):
      state, prev_logits = carry
      y_gold, use_gold, key = xs
      sampled = jax.random.categorical(key, jax.lax.stop_gradient(prev_logits).astype(jnp.float32))
      y = jnp.where(use_gold, y_gold, sampled.astype(y_gold.dtype))
      state, out = self.model.apply(params, state, y, method="decode_step")
      return (state, out.logits), out.logits

    V = self.model.target_vocab_size or self.model.vocab_size
    start = (state, jnp.zeros((B, V), self.model.dtype))
    _, logits = jax.lax.scan(body, start, (gold, teacher, jax.random.split(sample_key, T)))
    return logits.swapaxes(0, 1)

  def loss(self, params, batch, rng, extra, step):
    t = self.config.train
    if t.teacher_forcing == "always":
      logits, eps = self.logits(params, batch, rng), jnp.float32(1.0)
    else:
      eps = teacher_forcing_probability(t.teacher_forcing, t.teacher_forcing_k,
                                        t.teacher_forcing_min, step)
      logits = self.scheduled_logits(params, batch, rng, eps)
    xent, correct, count = token_sums(logits, batch["targets"], batch["mask"])
    count = jnp.maximum(count, 1.0)
    return xent / count, ({"token_accuracy": correct / count, "teacher_forcing": eps}, extra)

  def batch_options(self):
    return {"pad_multiple": self.config.train.pad_multiple}

  # --- decoding

  def _start(self, params, src: Array, src_lengths: Array):
    if self.recurrent:
      return self.model.apply(params, src, src_lengths, method="encode")
    return self.model.apply(params, src, src_lengths, self.config.decode.max_len, method="start")

  def step_fn(self, params) -> decode.StepFn:
    """The model as decode's step_fn(state, tokens [N]) -> (logits [N, V], state)."""
    def step(state, tokens):
      if self.recurrent:
        state, out = self.model.apply(params, state, tokens, method="decode_step")
        return out.logits, state
      state, logits = self.model.apply(params, state, tokens, method="step")
      return logits, state
    return step

  def greedy(self, params, src: Array, src_lengths: Array) -> decode.Decoded:
    """y_t = argmax P(y | y_<t, x) until <eos>: tokens [B, L], log P(y | x) [B], lengths."""
    return decode.greedy(self.step_fn(params), self._start(params, src, src_lengths), BOS,
                         self.config.decode.max_len, EOS)

  def beam(self, params, src: Array, src_lengths: Array,
           beam_width: int | None = None) -> decode.Decoded:
    """The best beam (by log P / length^length_penalty): tokens [B, L], log P(y | x), lengths."""
    d = self.config.decode
    out = decode.beam_search(self.step_fn(params), self._start(params, src, src_lengths), BOS,
                             d.max_len, beam_width or d.beam_width, EOS, d.length_penalty)
    return decode.Decoded(out.tokens[:, 0], out.log_probs[:, 0], out.lengths[:, 0])

  def target_text(self, ids) -> str:
    return detokenize(self.tgt_vocab.decode(ids), self.level)

  def source_text(self, ids) -> str:
    return detokenize(self.src_vocab.decode(ids), self.level)

  def _host_bleu_stats(self, tokens: np.ndarray, targets: np.ndarray) -> np.ndarray:
    hyps = [self.target_text(row) for row in tokens]
    return bleu_stats(hyps, [self.target_text(row) for row in targets]).astype(np.int32)

  # --- evaluation

  def eval_sums(self, params, batch, extra):
    xent, correct, count = token_sums(self.logits(params, batch), batch["targets"], batch["mask"])
    sums = {"xent": xent, "correct": correct, "tokens": count,
            "sentences": jnp.float32(batch["inputs"].shape[0])}
    src, lengths = batch["inputs"], batch["source_lengths"]
    for name, out in (("greedy", self.greedy(params, src, lengths)),
                      ("beam", self.beam(params, src, lengths))):
      sums[f"logp_{name}"] = out.log_probs.sum()
      shape = jax.ShapeDtypeStruct((len(BLEU_STATS),), jnp.int32)
      stats = jax.pure_callback(self._host_bleu_stats, shape, out.tokens, batch["targets"])
      sums.update({f"{name}_{key}": stats[i] for i, key in enumerate(BLEU_STATS)})
    return sums, extra

  def summarize(self, sums):
    loss = sums["xent"] / max(sums["tokens"], 1.0)
    out = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
           "token_accuracy": sums["correct"] / max(sums["tokens"], 1.0)}
    for name in DECODERS:
      out[f"bleu_{name}"] = corpus_bleu([sums[f"{name}_{key}"] for key in BLEU_STATS])
    for name in DECODERS:
      out[f"logp_{name}"] = sums[f"logp_{name}"] / max(sums["sentences"], 1.0)
    return out

  def decode_split(self, params, split: str, max_batches: int | None = None) -> list[dict]:
    """Each sentence of a split: source, reference, greedy and beam outputs and log P(y | x)."""
    rows = []
    for batch in itertools.islice(self.eval_batches(split), max_batches):
      n, size = batch["inputs"].shape[0], self.config.train.batch_size
      src, lengths = (jnp.asarray(fill_rows(batch[k], size)) for k in ("inputs", "source_lengths"))
      outs = {"greedy": self.greedy_jit(params, src, lengths),
              "beam": self.beam_jit(params, src, lengths)}
      for i in range(n):
        row = {"source": self.source_text(batch["inputs"][i]),
               "reference": self.target_text(batch["targets"][i])}
        for name, out in outs.items():
          row[name] = self.target_text(np.asarray(out.tokens[i]))
          row[f"logp_{name}"] = float(out.log_probs[i])
        rows.append(row)
    return rows

  def translate(self, params, sentences: Sequence[str]) -> list[str]:
    """Beam-search translations of the sentences."""
    ids = [{"inputs": self.src_vocab.encode(s, eos=True)} for s in sentences]
    batch = batching.collate(ids, {"inputs": "source_lengths"})
    out = self.beam_jit(params, jnp.asarray(batch["inputs"]), jnp.asarray(batch["source_lengths"]))
    return [self.target_text(np.asarray(row)) for row in out.tokens]

  # --- after training

  def report(self, params, workdir: str) -> dict:
    """Test-split BLEU and log P(y | x) of greedy and beam, a few translations, an attention
    heatmap (attention models); writes translation_report.json and attention.png."""
    from seqlab.problems import translation_report  # matplotlib loads only here

    split = "test" if "test" in self.task.splits else "validation"
    rows = self.decode_split(params, split)
    refs = [r["reference"] for r in rows]
    summary = {"split": split, "sentences": len(rows)}
    for name in DECODERS:
      summary[f"bleu_{name}"] = corpus_bleu(bleu_stats([r[name] for r in rows], refs))
      summary[f"logp_{name}"] = float(np.mean([r[f"logp_{name}"] for r in rows]))
    print(f"{split} ({len(rows)} sentences): " + "  ".join(
        f"{k} {v:.4f}" for k, v in summary.items() if k not in ("split", "sentences")))
    for r in sorted(rows, key=lambda r: len(r["source"]))[:: max(len(rows) // 5, 1)][:5]:
      print(f"  {r['source']} -> {r['beam']}   (reference: {r['reference']})")
    path = translation_report.attention_heatmap(self, params, rows[-1]["source"], workdir)
    if path:
      print(f"attention heatmap: {path}")
    Path(workdir, "translation_report.json").write_text(
        json.dumps({**summary, "translations": rows}, ensure_ascii=False, indent=1), "utf-8")
    return summary
