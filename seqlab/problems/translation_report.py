"""Attention of a translation model on one sentence, and its heatmap (alpha_tj: output t
attends to source position j), for `Translation.report`."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from seqlab.data import batching
from seqlab.data.vocab import BOS


def attention_weights(problem, params, sentence: str) -> tuple[list[str], list[str], np.ndarray]:
  """(source tokens, output tokens, alpha [outputs, source]) of the greedy translation.

  seq2seq: the decoder's alpha_tj; transformer: the last decoder layer's cross-attention,
  averaged over heads. Raises ValueError for a model without attention.
  """
  if problem.recurrent and not problem.model.attention:
    raise ValueError("the model has no attention (config.model.attention is None)")
  ids = problem.src_vocab.encode(sentence, eos=True)
  batch = batching.collate([{"inputs": ids}], {"inputs": "source_lengths"})
  src, lengths = jnp.asarray(batch["inputs"]), jnp.asarray(batch["source_lengths"])
  max_len = problem.config.decode.max_len
  if problem.recurrent:
    out = problem.model.apply(params, src, lengths, max_len, method="greedy")
    n = int(out.lengths[0])
    tokens, alpha = np.asarray(out.tokens[0, :n]), np.asarray(out.alpha[0, :n])
  else:
    out = problem.greedy_jit(params, src, lengths)
    n = int(out.lengths[0])
    tokens = np.asarray(out.tokens[0, :n])
    tgt_in = jnp.asarray(np.concatenate([[BOS], tokens[:-1]]))[None]
    _, state = problem.model.apply(params, src, tgt_in, lengths, mutable=["intermediates"])
    layers = state["intermediates"]["decoder"]
    last = layers[sorted(k for k in layers if k.startswith("layer_"))[-1]]
    alpha = np.asarray(last["cross_attention"]["attention_weights"][0])[0].mean(0)
  words = lambda vocab, ids: [vocab.tokens[i] for i in ids]
  return words(problem.src_vocab, ids), words(problem.tgt_vocab, tokens), alpha


def attention_heatmap(problem, params, sentence: str, workdir: str) -> str | None:
  """Writes workdir/attention.png for an attention model; returns its path (None without)."""
  if problem.recurrent and not problem.model.attention:
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
