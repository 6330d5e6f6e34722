"""The adding problem: read T (value, marker) pairs, output the sum of the two marked values.

The task of Hochreiter & Schmidhuber (1997) as laid out by Le, Jaitly & Hinton (2015); always
predicting 1 has MSE 1/6 ~ 0.167, the memoryless baseline (loss_vs_baseline = MSE / (1/6)).

Launch:   python -m seqlab.main --config=configs/adding.py:cell=lstm,T=50 --workdir=runs/adding
Long lags: from T = 100 on the config carries study 8's recipe (long_lag_recipe below: the
          learning rate of the cell, cosine decay to a tenth over 3000 steps, clipping at 1,
          chrono init T_max = T for LSTM and GRU; recipe=none|long_lag turns it off or on at
          any T), each field still a flag; study 8 trains these configs.
Variants: cell in {elman, irnn, lstm, gru}; T the sequence length, e.g.
          configs/adding.py:cell=irnn,T=100
Runtime:  ~35 s on 2 CPU cores (T=50, 3000 steps, H=64, data preparation included); T=100 ~60 s.
Expected: validation loss_vs_baseline after 3000 steps at T=50 (one seed): irnn 0.0042,
          gru 0.0077, lstm 0.03, elman 0.39 (tanh Elman barely beats the baseline); at
          T = 100-400 see study 8 (LSTM and GRU solve T = 400; the IRNN diverges from
          T = 200 with Adam, and SGD as in Le et al. did not solve T = 200 here either).
"""


from seqlab import config as base


def get_config(arg: str | None = None):
  """The adding-problem experiment; `arg` = 'cell=...,T=...,recipe=auto|long_lag|none'
  (recipe: study 8's long-lag recipe, by default from T = LONG_LAG on)."""
  variant = base.parse_variant(arg, {"cell": "lstm", "T": 50, "recipe": "auto"})
  c = base.base_config()
  c.problem = base.problem("regression")
  c.task.name = "adding"
  c.task.options.length = variant["T"]
  c.task.options.num_train = 10_000
  c.task.options.num_validation = 1_000
  c.task.options.num_test = 1_000

  c.model = base.rnn_model(variant["cell"], hidden_size=64, pattern="many_to_one")

  c.optimizer.learning_rate = 1e-3
  c.optimizer.clip_norm = 1.0
  c.train.batch_size = 32
  c.train.num_steps = 3000
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.eval_batches = 32  # the whole validation split
  c.train.checkpoint_every = 500
  if base.wants_long_lag_recipe(variant["recipe"], variant["T"], LONG_LAG):
    long_lag_recipe(c, variant["cell"])
  return c


LONG_LAG = 100  # from this T on, recipe=auto (the default) carries the long-lag recipe

# Adam's learning rate per cell in the recipe: relu units explode at the gated cells' rate
LEARNING_RATES = {"elman": 1e-3, "irnn": 3e-4}


def long_lag_recipe(c, cell: str) -> None:
  """Study 8's adding recipe: seqlab.config.long_lag_recipe over 3000 steps at the cell's
  learning rate (3e-3 for the gated cells) with chrono T_max = T. Every field stays a flag."""
  base.long_lag_recipe(c, LEARNING_RATES.get(cell, 3e-3), 3000, c.task.options.length)
