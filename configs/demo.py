"""Demo: an LSTM learns the copy task (remember n symbols across a blank delay).

Launch:   python -m seqlab.demo --config=configs/demo.py
          (`python3 scripts/dev.py demo` trains the character LM, configs/char_lstm.py)
Variants: --config=configs/demo.py:gru   (any cell name of seqlab.cells.CELLS but jordan)
Runtime:  about 10 seconds on 2 CPU cores (compilation included).
Expected: the loss falls from 1.60 nats per step below the memoryless baseline
          n log(A) / (T + 2n) = 0.347 within a few hundred steps, to ~0.02 by step 2000.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The demo's settings; `arg` picks the cell (default lstm)."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.cell = ml_collections.ConfigDict()
  config.cell.name = arg or "lstm"
  config.cell.hidden_size = 64
  config.cell.options = ml_collections.ConfigDict()  # keyword options of cells.make

  config.task = ml_collections.ConfigDict()
  config.task.alphabet_size = 4  # A symbols to copy
  config.task.num_symbols = 5  # n
  config.task.delay = 10  # T blank steps between the symbols and the delimiter

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 64
  config.train.num_steps = 2000
  config.train.learning_rate = 5e-3
  config.train.log_every = 100
  return config
