"""Mackey-Glass (tau = 17) one-step-ahead prediction with an echo-state network (Jaeger 2001).

A fixed random reservoir of spectral radius rho, and a linear readout fitted in closed form
by ridge regression (problem.readout_fit = "ridge") on one pass over the training windows;
the training step then changes nothing and only evaluates and saves.

Launch:   python -m seqlab.main --config=configs/esn.py --workdir=runs/esn
Variants: rho, the reservoir's spectral radius: configs/esn.py:rho=1.2 ; the series:
          configs/esn.py:series=narma10|sine_mixture|csv, the last a column of your CSV:
          --config.task.options.path=prices.csv --config.task.options.column=close
          (header name, or a 0-based index without a header);
          readout by gradient instead: --config.problem.readout_fit=gradient
          --config.train.num_steps=3000
Runtime:  ~15 s on 2 CPU cores (Mackey-Glass generation, reservoir pass, float64 solve).
Expected: validation NRMSE ~6e-4 (rho=0.9), ~3e-4 (rho=1.2); loss_vs_persistence < 1e-3.
          The same readout by Adam (lr 1e-2, 2000 steps, ~60 s): NRMSE ~0.025.
"""

from ml_collections.config_dict import placeholder

from seqlab import config as base

SERIES = {"mackey_glass": "mackey_glass", "narma10": "narma10",
          "sine_mixture": "sine_mixture", "csv": "csv_series"}


def get_config(arg: str | None = None):
  """The ESN experiment; `arg` = 'rho=...,series=mackey_glass|narma10|sine_mixture|csv'."""
  variant = base.parse_variant(arg, {"rho": 0.9, "series": "mackey_glass"})
  c = base.base_config()
  c.problem = base.problem("series", readout_fit="ridge", ridge=1e-6,
                           washout=50)  # each window starts from h = 0
  series = variant["series"]
  if series not in SERIES:
    raise ValueError(f"esn variants: series in {list(SERIES)}, got {series!r}")
  c.task.name = SERIES[series]
  if series == "csv":
    c.task.options.path = placeholder(str)  # your file: --config.task.options.path=...
    c.task.options.column = "0"
    c.task.options.on_error = "raise"
  c.task.options.num_samples = 10_000
  c.task.options.window = 200
  c.task.options.stride = 50

  c.model.name = "esn"
  c.model.hidden_size = 300
  c.model.output_size = placeholder(int)  # fixed by the data (1)
  c.model.rho = variant["rho"]
  c.model.density = 0.1
  c.model.input_scaling = 1.0
  c.model.bias_scaling = 0.0
  c.model.leak_rate = 1.0
  c.model.readout_input = False

  c.train.batch_size = 32
  c.train.num_steps = 1  # the fit happens at initialisation
  c.train.log_every = 1
  c.train.eval_every = 1
  c.train.eval_batches = 100  # the whole validation split
  c.train.checkpoint_every = 1
  return c
