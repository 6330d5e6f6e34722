"""Population-based training against random search at equal compute: the study's two setups.

Launch:   python -m seqlab.sweep --config=configs/pbt.py:task=copy --search=pbt \
              --output_dir=runs/pbt_copy
Baseline: the same population with exploit and explore off is random search at equal compute:
              --config.pbt.exploit=False
Replay:   ... --replay=N trains member N's schedule again (its line of ancestors, chunk by
          chunk) and compares its curve with the member's in the population (bit for bit).
Variants: task=copy: copy at delay T = 100 (A = 4 symbols, n = 4 to remember) with an LSTM
          of 64 units (chrono init), Adam at a constant rate; PBT moves the learning rate
          (log-uniform 1e-4..3e-2) and the clipping threshold (0.1..10).
          task=char: the character LM (one GRU layer of 128) on Shakespeare, AdamW; PBT moves
          the learning rate (1e-4..3e-2) and the decoupled weight decay (1e-6..1e-1).
          Both: 8 members, evaluated on validation every `ready` steps, the bottom quarter
          copying the top quarter; every field is a flag (--config.pbt.size=16, ...).
Expected: experiments/study10_pbt.py runs both arms over 5 seeds (docs/studies.md, study 10).
"""

import pathlib

from seqlab import config as base

HERE = pathlib.Path(__file__).parent


def get_config(arg: str | None = None):
  """The PBT setup of `arg` = 'task=copy|char'."""
  variant = base.parse_variant(arg, {"task": "copy"})
  if variant["task"] == "copy":
    c = base.load_file(HERE / "copy.py", "cell=lstm,delay=100,recipe=none")
    o = c.task.options
    o.alphabet_size, o.num_symbols = 4, 4
    c.model.embed_size = 8
    c.model.cell_options.chrono = float(o.delay + 2 * o.num_symbols)  # chrono init T_max
    c.train.num_steps = 1500
    c.pbt.hyperparameters = (("optimizer.learning_rate", "log_uniform", 1e-4, 3e-2),
                             ("optimizer.clip_norm", "log_uniform", 0.1, 10.0))
    c.pbt.ready = 150
  elif variant["task"] == "char":
    c = base.load_file(HERE / "char_lstm.py")
    c.model.hidden_size = 128
    c.optimizer.name = "adamw"
    c.optimizer.weight_decay = 1e-4
    c.train.num_steps = 600
    c.pbt.hyperparameters = (("optimizer.learning_rate", "log_uniform", 1e-4, 3e-2),
                             ("optimizer.weight_decay", "log_uniform", 1e-6, 1e-1))
    c.pbt.ready = 60
  else:
    raise ValueError(f"unknown task variant {variant['task']!r}; known: copy, char")
  c.optimizer.schedule = "constant"  # PBT finds the schedule
  c.train.eval_batches = 4
  c.pbt.size = 8
  return c
