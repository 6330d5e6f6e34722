"""Full vs sampled vs hierarchical softmax for a word-level LSTM LM as the vocabulary grows.

For each vocabulary size (the most frequent train words kept, the rest <unk>) and each head
of configs/word_lm.py, trains the model (or loads the finished run from the workdir),
scores the validation split with the exact, normalised distribution (perplexity over
every word, <unk> included), and times the jitted training step apart from its compile
(median of `--repeats` timings of `--steps_per_repeat` steps each, the three heads of a
vocabulary taking turns in shuffled order). Writes
`word_lm_heads.md` (table) and `word_lm_heads.png`.

    python experiments/word_lm_heads.py --workdir=runs/word_lm_heads
    python experiments/word_lm_heads.py --quick   # smoke run: a small corpus, tiny models

The sampled head's advantage is the cost of its output layer, K columns instead of V; the
hierarchical head needs the C class logits and the logits of one class (~2 sqrt(V)).
"""

import json
import logging
import random
import statistics
import time
from pathlib import Path

import jax
from absl import app, flags
from absl import logging as absl_logging

from seqlab import config as base
from seqlab import problems
from seqlab.train import loop, optim

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

_WORKDIR = flags.DEFINE_string("workdir", "runs/word_lm_heads", "Where runs and outputs go.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Prepared datasets are cached here.")
_QUICK = flags.DEFINE_bool("quick", False, "Smoke run: 200k characters, tiny models.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", 300, "Training steps per run.")
_VOCABS = flags.DEFINE_list("vocabs", ["2000", "8000", "0"], "Vocabulary sizes (0: all).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timings per run (the median is reported).")
_STEPS_PER_REPEAT = flags.DEFINE_integer("steps_per_repeat", 5, "Train steps per timing.")

HEADS = ("full", "sampled", "hierarchical")
SMALL = {"model.hidden_size": 128, "model.embed_size": 64, "train.batch_size": 16,
         "train.eval_batches": 40}
QUICK = {"task.options.max_chars": 200_000, "model.hidden_size": 16, "model.embed_size": 8,
         "model.num_sampled": 16, "train.batch_size": 4, "train.seq_len": 8,
         "train.tbptt_k2": 8, "train.eval_batches": 2}


def make_config(head: str, vocab: int, data_dir: str, quick: bool, num_steps: int):
  """configs/word_lm.py:head=<head>,vocab=<vocab> at the experiment's size."""
  config = base.load_file(CONFIGS / "word_lm.py", f"head={head},vocab={vocab}")
  config.task.data_dir = data_dir
  config.train.num_steps = config.train.eval_every = config.train.checkpoint_every = num_steps
  config.train.log_every = max(num_steps // 3, 1)
  config.decode.prefixes = ()
  for key, value in {**SMALL, **(QUICK if quick else {})}.items():
    base.set_field(config, key, value)
  return config


def compiled_step(problem, config):
  """(jitted train step, a state, fixed batches) of a problem, its compile done and timed."""
  optimizer = optim.make_optimizer(config.optimizer)
  batches = problem.train_batches(config.seed, 0)
  state = loop.initial_state(problem, optimizer, config.seed, next(batches))
  step = jax.jit(loop.make_train_step(problem, optimizer, config.seed, False), donate_argnums=0)
  start = time.perf_counter()
  state, _ = step(state, next(batches))
  jax.block_until_ready(state)
  return step, state, time.perf_counter() - start, [next(batches) for _ in range(3)]


def tokens_per_second(runs: dict, repeats: int, steps: int) -> dict[str, float]:
  """Median training tokens/s of each run, compile excluded; the runs take turns (in a
  shuffled order each round), so a busy machine slows them alike."""
  times = {name: [] for name in runs}
  rng = random.Random(0)
  for _ in range(repeats):
    for name in rng.sample(list(runs), len(runs)):
      step, state, config, batches = runs[name]
      start = time.perf_counter()
      for i in range(steps):
        state, _ = step(state, batches[i % len(batches)])
      jax.block_until_ready(state)
      times[name].append(time.perf_counter() - start)
      runs[name] = (step, state, config, batches)
  return {name: steps * runs[name][2].train.batch_size * runs[name][2].train.seq_len
          / statistics.median(t) for name, t in times.items()}


def table(rows: list[dict]) -> str:
  """Markdown: one row per vocabulary size and head."""
  lines = ["| vocabulary | head | validation perplexity | train tokens/s | vs full |",
           "|---|---|---|---|---|"]
  full = {r["max_vocab"]: r["tokens_per_s"] for r in rows if r["head"] == "full"}
  for r in rows:
    lines.append(f"| {r['vocab_size']} | {r['head']} | {r['perplexity']:.1f} | "
                 f"{r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / full[r['max_vocab']]:.2f}x |")
  return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str) -> None:
  """Perplexity and tokens/s against the vocabulary size, one line per head."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for head in HEADS:
    mine = sorted((r for r in rows if r["head"] == head), key=lambda r: r["max_vocab"] or 1e9)
    sizes = [r["vocab_size"] for r in mine]
    axes[0].plot(sizes, [r["perplexity"] for r in mine], "o-", label=head)
    axes[1].plot(sizes, [r["tokens_per_s"] for r in mine], "o-", label=head)
  for ax, name in zip(axes, ("validation perplexity (exact)", "training tokens/s"), strict=True):
    ax.set_xscale("log")
    ax.set_xlabel("vocabulary size")
    ax.set_ylabel(name)
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  del argv
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
  workdir, quick = _WORKDIR.value, _QUICK.value
  num_steps = 6 if quick else _NUM_STEPS.value
  repeats, steps = (2, 2) if quick else (_REPEATS.value, _STEPS_PER_REPEAT.value)
  rows = []
  for vocab in map(int, _VOCABS.value):
    timed = {}
    for head in HEADS:
      config = make_config(head, vocab, _DATA_DIR.value, quick, num_steps)
      problem = problems.build_problem(config)
      state = loop.train(problem, config, f"{workdir}/v{vocab}_{head}")  # or load a finished run
      metrics = loop.evaluate(problem, jax.jit(problem.eval_sums), state["params"], "validation",
                              config.train.eval_batches)
      step, state, compile_s, batches = compiled_step(problem, config)
      timed[head] = (step, state, config, batches)
      rows.append({"max_vocab": vocab, "vocab_size": len(problem.vocab), "head": head,
                   "perplexity": metrics["perplexity"], "compile_s": compile_s,
                   "num_steps": num_steps})
    speeds = tokens_per_second(timed, repeats, steps)
    for row in rows[-len(HEADS):]:
      row["tokens_per_s"] = speeds[row["head"]]
      print(json.dumps(row), flush=True)
  Path(workdir).mkdir(parents=True, exist_ok=True)
  Path(workdir, "word_lm_heads.json").write_text(json.dumps(rows, indent=1))
  Path(workdir, "word_lm_heads.md").write_text(table(rows))
  plot(rows, f"{workdir}/word_lm_heads.png")
  print(table(rows))


if __name__ == "__main__":
  app.run(main)
