"""Translation of sentence pairs x -> y with an encoder-decoder or the Transformer baseline.

The models: `seq2seq` (with or without attention) or `transformer`.

Training is teacher-forced: the decoder reads <bos> y_1 .. y_{T-1} and is scored on
y_1 .. y_T <eos> by the masked token cross-entropy

    loss = -sum_{b,t} m_bt log P(y_bt | y_b<t, x_b) / sum_{b,t} m_bt   (m = 1 on real steps)

The recurrent decoder can instead use scheduled sampling (`seqlab.teacher_forcing`, Bengio
et al. 2015): at training step i each decoder input is the true previous token with
probability eps_i, else a token drawn from the model's own distribution at the step before.

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

import jax
import jax.numpy as jnp
import numpy as np
from sacrebleu.metrics import BLEU

from seqlab import decode, losses, teacher_forcing
from seqlab.data import batching
from seqlab.data.vocab import BOS, EOS, PAD
from seqlab.problems import base

Array = jax.Array
DECODERS = ("greedy", "beam")
# sacrebleu's sufficient statistics, summed over sentences: lengths, matches and totals by n.
BLEU_STATS = ("sys_len", "ref_len", *(f"match{n}" for n in range(1, 5)),
              *(f"total{n}" for n in range(1, 5)))
_SENTENCE_BLEU = BLEU(effective_order=True)  # the counts do not depend on effective_order


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
    self.model = self.build_model(vocab_size=len(self.src_vocab), output_size=len(self.tgt_vocab),
                                  bos_id=BOS, eos_id=EOS, pad_id=PAD)
    # The two encoder-decoders share start/step (decoding, scheduled sampling) and
    # `alignment`; their teacher-forced calls differ: seq2seq(src, lengths, targets) returns
    # Outputs, transformer(src, decoder_inputs, lengths, deterministic) returns logits.
    if config.model.name not in ("seq2seq", "transformer"):
      raise ValueError(f"config.model.name={config.model.name!r} cannot translate; "
                       "use 'seq2seq' or 'transformer'")
    self.recurrent = config.model.name == "seq2seq"
    p = config.problem
    teacher_forcing.check_schedule(p.teacher_forcing, p.teacher_forcing_k, p.teacher_forcing_min)
    if p.teacher_forcing != "always" and not self.recurrent:
      raise ValueError(f"config.problem.teacher_forcing={p.teacher_forcing!r} (scheduled "
                       "sampling) needs the recurrent decoder (model 'seq2seq'); use 'always'")
    if self.recurrent and self.model.length_strategy != "eos":
      raise ValueError("translation decodes up to <eos>: config.model.length_strategy must be "
                       f"'eos', got {self.model.length_strategy!r}")
    self.greedy_jit = jax.jit(self.greedy)
    self.beam_jit = jax.jit(self.beam, static_argnames="beam_width")

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

  def loss(self, params, batch, rng, extra, step):
    model = self.model.bind(params)
    loss, metrics = teacher_forcing.token_loss(
        self.config.problem, step, rng, batch, lambda: self.logits(params, batch, rng),
        model.step, lambda: model.start(batch["inputs"], batch["source_lengths"]))
    return loss, (metrics, extra)

  def batch_options(self):
    return {"pad_multiple": self.config.train.pad_multiple}

  # --- decoding

  def _start(self, params, src: Array, src_lengths: Array):
    """The bound model and its decoding carry for the source sentences."""
    model = self.model.bind(params)
    return model, model.start(src, src_lengths, self.config.decode.max_len)

  def greedy(self, params, src: Array, src_lengths: Array) -> decode.Decoded:
    """y_t = argmax P(y | y_<t, x) until <eos>: tokens [B, L], log P(y | x) [B], lengths."""
    model, carry = self._start(params, src, src_lengths)
    return decode.greedy(model.step, carry, BOS, self.config.decode.max_len, EOS)

  def beam(self, params, src: Array, src_lengths: Array,
           beam_width: int | None = None) -> decode.Decoded:
    """The best beam (by log P / length^length_penalty): tokens [B, L], log P(y | x), lengths."""
    d = self.config.decode
    model, carry = self._start(params, src, src_lengths)
    out = decode.beam_search(model.step, carry, BOS, d.max_len, beam_width or d.beam_width, EOS,
                             d.length_penalty)
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
    xent, correct, count = losses.token_sums(self.logits(params, batch), batch["targets"],
                                             batch["mask"])
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
