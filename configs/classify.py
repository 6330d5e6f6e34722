"""Many-to-one sequence classification: parity, bracket depth, or an 8x8 digit read row by row.

One label per sequence: the parity of a bit string, the nesting depth of a balanced bracket
string, or the class of an 8x8 digit image read one row per step.

Launch:   python -m seqlab.main --config=configs/classify.py:task=parity,model=rnn \
              --workdir=runs/parity
Variants: task in {parity, bracket_depth, digits}; model in {rnn (an LSTM read to the last
          real step), bidirectional (outputs pooled: o_1 + o_T), deep (two stacked LSTMs),
          transformer (encoder + mean pooling; token tasks only), grid (a 2-D RNN over the
          image, four sweeps; digits only)}; cell: a seqlab.config.CELL_PRESETS name, e.g.
          configs/classify.py:task=parity,cell=gru
Runtime:  20-40 s on 2 CPU cores (2000 steps, H=64, data preparation included).
Expected: validation accuracy after 2000 steps (one seed): parity (length <= 20) rnn 1.00,
          transformer ~0.6 (chance 0.5: attention averages, it cannot count mod 2);
          bracket_depth rnn 1.00, bidirectional 0.99 (chance 1/6); digits deep 0.99.
"""

from ml_collections.config_dict import placeholder

from seqlab import config as base

TASKS = {"parity": "parity", "bracket_depth": "bracket_depth", "digits": "sequential_digits"}
MODELS = ("rnn", "bidirectional", "deep", "transformer", "grid")


def get_config(arg: str | None = None):
  """The classification experiment; `arg` = 'task=...,model=...,cell=...'."""
  variant = base.parse_variant(arg, {"task": "parity", "model": "rnn", "cell": "lstm"})
  if variant["task"] not in TASKS or variant["model"] not in MODELS:
    raise ValueError(f"classify variants: task in {sorted(TASKS)}, model in {list(MODELS)}; "
                     f"got {variant}")
  c = base.base_config()
  c.problem = base.problem(
      "classification", pooling="first_last" if variant["model"] == "bidirectional" else "last")
  c.task.name = TASKS[variant["task"]]
  if variant["task"] != "digits":  # the digits are scikit-learn's 1797 images
    c.task.options.num_train = 10_000
    c.task.options.num_validation = 1_000
    c.task.options.num_test = 1_000
  if variant["task"] == "parity":
    c.task.options.max_length = 20
  elif variant["task"] == "bracket_depth":
    c.task.options.max_depth = 6
    c.task.options.max_pairs = 15

  model = variant["model"]
  if model == "grid" and variant["task"] != "digits":
    raise ValueError(f"classify: model=grid reads images; use task=digits, got {variant}")
  if model == "grid":
    c.model.name = "grid"
    c.model.hidden_size = 32
    c.model.directions = 4
    c.model.activation = "tanh"
    c.model.output_size = placeholder(int)  # fixed by the data
  elif model == "transformer":
    c.model.name = "transformer_classifier"
    c.model.vocab_size = placeholder(int)  # fixed by the data
    c.model.output_size = placeholder(int)  # fixed by the data
    c.model.d_model = 64
    c.model.num_heads = 4
    c.model.num_layers = 2
    c.model.d_ff = 128
  else:  # rnn and deep embed the tokens; bidirectional reads them one-hot
    pattern = "many_to_one" if model == "rnn" else "many_to_many"
    embed = None if model == "bidirectional" else 16
    c.model = base.sequence_model(model, variant["cell"], 64, embed_size=embed, pattern=pattern)

  c.optimizer.learning_rate = 3e-3
  c.optimizer.clip_norm = 1.0
  c.train.batch_size = 32
  c.train.num_steps = 2000
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.eval_batches = 32
  c.train.checkpoint_every = 500
  return c
