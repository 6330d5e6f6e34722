"""The adding problem: read T (value, marker) pairs, output the sum of the two marked values.

The task of Hochreiter & Schmidhuber (1997) as laid out by Le, Jaitly & Hinton (2015); always
predicting 1 has MSE 1/6 ~ 0.167, the memoryless baseline (loss_vs_baseline = MSE / (1/6)).

Launch:   python -m seqlab.main --config=configs/adding.py:cell=lstm,T=50 --workdir=runs/adding
Variants: cell in {elman, irnn, lstm, gru}; T the sequence length, e.g.
          configs/adding.py:cell=irnn,T=100
Runtime:  ~35 s on 2 CPU cores (T=50, 3000 steps, H=64, data preparation included); T=100 ~60 s.
Expected: validation loss_vs_baseline after 3000 steps at T=50 (one seed): irnn 0.005,
          gru 0.008, lstm 0.03, elman 0.39 (tanh Elman barely beats the baseline);
          lstm at T=100: 0.11 (it sits at ~0.97 for the first 1500 steps).
"""


from seqlab import config as base


def get_config(arg: str | None = None):
  """The adding-problem experiment; `arg` = 'cell=...,T=...'."""
  variant = base.parse_variant(arg, {"cell": "lstm", "T": 50})
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
  return c
