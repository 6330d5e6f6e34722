"""Attention of a translation model on one sentence, and its heatmap, for `Translation.report`.

alpha_tj: output t attends to source position j."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from seqlab import unroll
from seqlab.data import batching
from seqlab.data.vocab import BOS


def attention_weights(problem, params, sentence: str) -> tuple[list[str], list[str], np.ndarray]:
  """(source tokens, output tokens, alpha [outputs, source]) of the greedy translation.

  The model's `alignment`, teacher-forced on the greedy output (which reproduces the greedy
  decoding): seq2seq, the decoder's alpha_tj; transformer, the last decoder layer's
  cross-attention averaged over heads. Raises ValueError for a model without attention.
  """
  ids = problem.src_vocab.encode(sentence, eos=True)
  batch = batching.collate([{"inputs": ids}], {"inputs": "source_lengths"})
  src, lengths = jnp.asarray(batch["inputs"]), jnp.asarray(batch["source_lengths"])
  out = problem.greedy_jit(params, src, lengths)
  tokens = np.asarray(out.tokens[0, :int(out.lengths[0])])
  prev_tokens = unroll.shift_right(jnp.asarray(tokens)[None], BOS)
  alpha = np.asarray(problem.model.bind(params).alignment(src, lengths, prev_tokens)[0])
  words = lambda vocab, ids: [vocab.tokens[i] for i in ids]
  return words(problem.src_vocab, ids), words(problem.tgt_vocab, tokens), alpha


def attention_heatmap(problem, params, sentence: str, workdir: str) -> str | None:
  """Writes workdir/attention.png for an attention model; returns its path (None without)."""
  if problem.recurrent and not problem.model.attention:  # a seq2seq without attention
    return None
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  source, output, alpha = attention_weights(problem, params, sentence)
  fig, ax = plt.subplots(figsize=(max(4, 0.22 * len(source)), max(3, 0.22 * len(output))))
  ax.imshow(alpha, cmap="Greys", aspect="auto", vmin=0.0)
  ax.set_xticks(range(len(source)), [t if t.strip() else "_" for t in source], fontsize=7)
  ax.set_yticks(range(len(output)), [t if t.strip() else "_" for t in output], fontsize=7)
  ax.set_xlabel("source position j")
  ax.set_ylabel("output step t")
  ax.set_title(r"attention $\alpha_{tj}$", fontsize=9)
  fig.tight_layout()
  path = str(Path(workdir) / "attention.png")
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path
