"""A recursive net on expression trees: the value mod 10 of a random arithmetic expression.

The expressions are over digits with + and * (e.g. "((3+4)*2)" -> 4); the value is read from
the root of a TreeRNN that composes every node from its children,
h_n = tanh([h_left; h_right] W + x_n U + b).

Launch:   python -m seqlab.main --config=configs/tree.py --workdir=runs/tree
Variants: operators: configs/tree.py:operators=+ (sums only); tree size:
          configs/tree.py:max_leaves=6
Runtime:  ~30 s on 2 CPU cores (3000 steps, H=64, 2-4 leaves, data preparation included).
Expected: validation accuracy ~0.90 (majority label 0.22), node_accuracy ~0.95 (every
          internal node's value, though only the root is trained); operators=+ (sums
          only, labels near uniform) stays at chance (~0.10) within 3000 steps.
"""

from ml_collections.config_dict import placeholder

from seqlab import config as base


def get_config(arg: str | None = None):
  """The tree experiment; `arg` = 'operators=...,max_leaves=...'."""
  variant = base.parse_variant(arg, {"operators": "+*", "max_leaves": 4})
  c = base.base_config()
  c.problem = base.problem("tree")
  c.task.name = "trees"
  c.task.options.min_leaves = 2
  c.task.options.max_leaves = variant["max_leaves"]
  c.task.options.operators = variant["operators"]
  c.task.options.num_train = 20_000
  c.task.options.num_validation = 1_000
  c.task.options.num_test = 1_000

  c.model.name = "tree"
  c.model.hidden_size = 64
  c.model.embed_size = 16
  c.model.activation = "tanh"
  c.model.composition = "matrix"  # or "tensor": the RNTN's c T c + c W (Socher et al. 2013)
  c.model.vocab_size = placeholder(int)  # fixed by the data
  c.model.output_size = placeholder(int)  # fixed by the data

  c.optimizer.learning_rate = 3e-3
  c.optimizer.clip_norm = 1.0
  c.train.batch_size = 64
  c.train.num_steps = 3000
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.eval_batches = 16  # the whole validation split
  c.train.checkpoint_every = 500
  return c
