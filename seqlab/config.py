"""The config every experiment starts from, and the `:key=value` variant syntax.

Every field a run reads is declared here (no defaults hidden in trainer code); the
files in configs/ change what differs and document the launch command.
"""

import importlib.util
import pathlib
from typing import Any

import ml_collections
from ml_collections import config_dict

from seqlab import cells

# Cell presets, every family and variant of seqlab.cells: name -> (family, options).
# IRNN: relu with W = I (Le et al. 2015).
CELL_PRESETS = {
    "elman": ("elman", {"activation": "tanh"}),
    "irnn": ("elman", {"activation": "relu", "recurrent_init": "identity"}),
    "jordan": ("jordan", {"output_size": 16}),
    "lstm": ("lstm", {}),
    "peephole_lstm": ("lstm", {"peephole": True}),
    "coupled_lstm": ("lstm", {"coupled": True}),
    "ln_lstm": ("lstm", {"layer_norm": True}),
    "gru": ("gru", {}),
    "torch_gru": ("gru", {"variant": "torch"}),
    "ln_gru": ("gru", {"layer_norm": True}),
    "leaky": ("leaky", {"rate": 0.5}),
    "multiscale_leaky": ("leaky", {"rate": (1.0, 0.5, 0.25, 0.125)}),  # one rate per unit group
    "delayed": ("delayed", {"delay": 4}),
    "clockwork": ("clockwork", {"periods": (1, 2, 4, 8)}),
    "esn": ("esn", {"rho": 0.9}),
}


def cell_options(family: str, options: dict | None = None) -> ml_collections.ConfigDict:
  """Every option of cell `family` with its default (`options` override), so each one is
  a declared field a command-line flag can set (--config.model.cell_options.periods=...)."""
  fields = cells.options_of(family)
  unknown = sorted(set(options or {}) - set(fields))
  if unknown:
    raise ValueError(f"unknown option(s) {unknown} for cell {family!r}; "
                     f"its options are: {sorted(fields)}")
  return ml_collections.ConfigDict({**fields, **(options or {})})


def cell_preset(name: str) -> tuple[str, ml_collections.ConfigDict]:
  """(family, all of its options) of CELL_PRESETS[name]; raises listing the presets."""
  if name not in CELL_PRESETS:
    raise ValueError(f"unknown cell {name!r}; known cells: {sorted(CELL_PRESETS)}")
  family, options = CELL_PRESETS[name]
  return family, cell_options(family, options)


def parallel_options() -> ml_collections.ConfigDict:
  """config.model.parallel: the solver of backend=parallel (seqlab.unroll.parallel); a 0 takes
  the solver's default (tol: eps^0.75 of the dtype; max_iters: T, damped 2 T + 100)."""
  return ml_collections.ConfigDict({"solver": "newton", "tol": 0.0, "max_iters": 0,
                                    "damping": 1.0})


def rnn_model(cell: str, hidden_size: int, embed_size: int | None = None,
              pattern: str = "many_to_many") -> ml_collections.ConfigDict:
  """config.model for the `rnn` model with the CELL_PRESETS cell `cell`; the vocabulary and
  output sizes are placeholders the data fills (an embedding only with embed_size)."""
  m = ml_collections.ConfigDict()
  m.name, m.pattern = "rnn", pattern
  m.cell, m.cell_options = cell_preset(cell)
  m.hidden_size = hidden_size
  m.backend = "auto"  # auto | scan | onednn | cudnn | parallel: how the layer runs (seqlab.unroll)
  m.parallel = parallel_options()  # backend=parallel's solver
  if embed_size is not None:
    m.embed_size = embed_size
    m.vocab_size = config_dict.placeholder(int)  # fixed by the data
  m.output_size = config_dict.placeholder(int)  # fixed by the data
  return m


# The problems (seqlab.problems.PROBLEMS) and the fields each one reads, with defaults.
_TEACHER_FORCING = {
    "teacher_forcing": "always",  # always | linear | exponential | inverse_sigmoid
    "teacher_forcing_k": 0.0,  # the schedule's rate parameter k
    "teacher_forcing_min": 0.0,  # linear: the floor eps_min of the probability
}
_POOLING = {"pooling": "last"}  # many-to-one from per-step outputs [B, T, C]: last|mean|first_last
PROBLEM_FIELDS: dict[str, dict] = {
    "tagging": {},  # per-step classification (copy)
    "language_model": {},  # next token on a stream, truncated BPTT (train.seq_len, tbptt_k2)
    "word_language_model": {},  # the same over words, with the model's large-vocabulary head
    "classification": _POOLING,  # one class per sequence
    "regression": _POOLING,  # one number per sequence (adding)
    "series": {  # one-step-ahead prediction of a time series
        "washout": 0,  # first steps of each window, left out of loss/metrics/fit
        "readout_fit": "gradient",  # esn: gradient | ridge (closed form at init, then fixed)
        #   | ridge_then_gradient (closed form at init, then gradient steps)
        "ridge": 1e-6,  # esn: the penalty lambda of the closed-form (ridge) readout
    },
    "captioning": _TEACHER_FORCING,  # image -> tokens (one-to-many decoder)
    "translation": _TEACHER_FORCING,  # tokens -> tokens (encoder-decoder)
    "tree": {},  # one class per tree (recursive net)
}


def problem(name: str, **fields) -> ml_collections.ConfigDict:
  """config.problem: the problem `name` and its fields (PROBLEM_FIELDS defaults, updated)."""
  if name and name not in PROBLEM_FIELDS:
    raise ValueError(f"unknown problem {name!r}; known: {sorted(PROBLEM_FIELDS)}")
  known = PROBLEM_FIELDS.get(name, {})
  unknown = sorted(set(fields) - set(known))
  if unknown:
    raise ValueError(f"unknown field(s) {unknown} of problem {name!r}; its fields: {sorted(known)}")
  return ml_collections.ConfigDict({"name": name, **known, **fields})


def load_file(path: str | pathlib.Path, arg: str | None = None) -> ml_collections.ConfigDict:
  """get_config(arg) of the config file at `path`, as `--config=path:arg` loads it."""
  path = pathlib.Path(path)
  spec = importlib.util.spec_from_file_location(f"config_{path.stem}", path)
  if spec is None or not path.is_file():
    raise FileNotFoundError(f"{path}: no such config file")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def set_field(config: ml_collections.ConfigDict, path: str, value: Any,
              add: bool = False) -> None:
  """config.<path> = value for a dotted path ("model.hidden_size"); a missing section, or a
  missing field unless `add`, raises naming the path."""
  *parents, key = path.split(".")
  node = config
  for name in parents:
    if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
      raise ValueError(f"{path!r}: the config has no section {name!r}")
    node = node[name]
  if key not in node and not add:
    raise ValueError(f"{path!r}: the config declares no such field; declare it (with its "
                     "default) first")
  node[key] = value


SEQUENCE_MODELS = ("rnn", "jordan", "bidirectional", "deep", "tdnn")


def sequence_model(name: str, cell: str, hidden_size: int, embed_size: int | None = None,
                   pattern: str = "many_to_many") -> ml_collections.ConfigDict:
  """config.model for a model over [B, T] sequences with one output per step (one per
  sequence for rnn's many_to_one): rnn, jordan (output recurrence, free running),
  bidirectional, deep (two stacked layers) or tdnn (causal convolutions); `cell` is a
  CELL_PRESETS name (jordan and tdnn have none). Sizes the data fixes are placeholders;
  models without an embedding read one-hot tokens."""
  if name not in SEQUENCE_MODELS:
    raise ValueError(f"unknown sequence model {name!r}; known: {list(SEQUENCE_MODELS)}")
  if name == "rnn":
    return rnn_model(cell, hidden_size, embed_size, pattern)
  m = ml_collections.ConfigDict()
  m.name = name
  if name in ("bidirectional", "deep"):
    m.cell, m.cell_options = cell_preset(cell)
  if name == "jordan":
    m.hidden_size, m.activation, m.output_activation = hidden_size, "tanh", "identity"
  elif name == "bidirectional":
    m.hidden_size, m.merge = hidden_size, "concat"
  elif name == "deep":
    m.hidden_sizes = (hidden_size, hidden_size)
    m.input_mlp, m.transition_mlp, m.output_mlp = (), (), ()
    m.transition_shortcut, m.skip, m.residual = False, False, False
  else:  # tdnn
    m.features, m.window, m.activation = (hidden_size, hidden_size), 4, "tanh"
  if name in ("deep", "tdnn") and embed_size is not None:
    m.vocab_size = config_dict.placeholder(int)  # fixed by the data
    m.embed_size = embed_size
  m.output_size = config_dict.placeholder(int)  # fixed by the data
  return m


def long_lag_recipe(c: ml_collections.ConfigDict, learning_rate: float, num_steps: int,
                    t_max: int) -> None:
  """Study 8's training recipe for long lags, set on config `c`: Adam at `learning_rate` with
  a cosine decay to a tenth over `num_steps`, global-norm clipping at 1 (Pascanu et al.
  2013), chrono initialisation T_max = `t_max` for the gated cells that have it (Tallec &
  Ollivier 2018), and the study's data: 4096 training sequences, 256 validated in 8 batches."""
  c.optimizer.learning_rate = learning_rate
  c.optimizer.schedule = "cosine"
  c.optimizer.decay_steps = c.train.num_steps = num_steps
  c.optimizer.end_learning_rate = learning_rate / 10
  c.optimizer.clip_norm = 1.0
  if "chrono" in c.model.get("cell_options", {}):
    c.model.cell_options.chrono = float(t_max)
  o = c.task.options
  o.num_train, o.num_validation, o.num_test = 4096, 256, 64
  c.train.batch_size, c.train.eval_batches = 32, 8


def wants_long_lag_recipe(recipe: str, length: int, threshold: int) -> bool:
  """The `recipe` variant of the copy and adding configs: 'auto' (from `threshold` on),
  'long_lag' or 'none'."""
  if recipe not in ("auto", "long_lag", "none"):
    raise ValueError(f"config variant recipe={recipe!r}; known: auto, long_lag, none")
  return recipe == "long_lag" or (recipe == "auto" and length >= threshold)


def parse_variant(arg: str | None, defaults: dict) -> dict:
  """'cell=gru,delay=200' -> defaults updated, values typed like the defaults."""
  out = dict(defaults)
  if not arg:
    return out
  for item in arg.split(","):
    key, sep, value = item.partition("=")
    if not sep:
      key, value = next(iter(defaults)), item  # a bare value sets the first field
    if key not in defaults:
      raise ValueError(f"unknown config variant {key!r}; variants: {sorted(defaults)}")
    out[key] = type(defaults[key])(value) if defaults[key] is not None else value
  return out


def base_config() -> ml_collections.ConfigDict:
  """All sections with their defaults: seed, problem, task, model, optimizer, train, decode."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.problem = problem("")  # which Problem trains the task (each config sets it), its fields

  c.task = ml_collections.ConfigDict()
  c.task.name = ""
  c.task.data_dir = "data"  # prepared datasets are cached here
  c.task.options = ml_collections.ConfigDict()  # the builder's options
  c.task.curriculum = ()  # ((fraction of options.<curriculum_option>, fraction of the steps),
  #   ...) per stage, the last stage the task itself, e.g. ((0.1, 0.15), (0.25, 0.15), (0.5,
  #   0.2), (1.0, 0.5)) on the copy task's delay (Zaremba & Sutskever 2014)
  c.task.curriculum_option = "delay"  # the task option the curriculum grows

  c.model = ml_collections.ConfigDict()  # name + the model's fields, passed through
  c.model.name = ""

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = "constant"  # constant | cosine | linear | exponential
  c.optimizer.warmup_steps = 0
  c.optimizer.decay_steps = 0
  c.optimizer.end_learning_rate = 0.0
  c.optimizer.weight_decay = 0.0
  c.optimizer.clip_norm = 0.0  # global-norm clipping threshold (0: off)
  c.optimizer.clip_value = 0.0  # per-entry clipping (0: off)
  c.optimizer.options = ml_collections.ConfigDict()  # extra optax keyword arguments

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 32
  c.train.num_steps = 1000
  c.train.log_every = 50
  c.train.eval_every = 250
  c.train.eval_batches = 8  # validation batches per evaluation
  c.train.checkpoint_every = 250
  c.train.resume_step = 0  # resume from this checkpoint (0: the newest intact one)
  c.train.nonfinite = "stop"  # stop | skip
  c.train.seq_len = 64  # stream tasks: the window length k1 of truncated BPTT
  c.train.tbptt_k2 = 0  # stream tasks: gradient flows back k2 steps (0: = seq_len)
  c.train.pad_multiple = 1  # padded batches: round T up to a multiple (fewer recompiles)

  c.decode = ml_collections.ConfigDict()
  c.decode.max_len = 64
  c.decode.beam_width = 4
  c.decode.length_penalty = 0.6
  c.decode.temperature = 1.0
  c.decode.top_k = 0  # sampling: only the k most probable tokens (0: all)
  c.decode.top_p = 1.0  # sampling: only the nucleus, the fewest tokens of mass >= top_p
  c.decode.completion = "greedy"  # --mode=complete: greedy | beam | sample
  c.decode.prefixes = ("Romeo:", "To be, or ")  # completed after training (text tasks)
  c.decode.prime = "\n\n"  # text read before each prefix to warm up the state

  # Sweeps (seqlab.sweep): members that differ only in shape-preserving hyperparameters are
  # trained together by one jit-compiled, vmapped train step.
  c.sweep = ml_collections.ConfigDict()
  c.sweep.axes = ()  # ((field path, (values, ...)), ...), e.g. (("optimizer.learning_rate",
  #   (1e-3, 3e-3)), ("seed", (0, 1, 2))); paths: seed, optimizer.<learning_rate|clip_norm|
  #   clip_value|weight_decay>, model.* and train.* fields that only change initial values
  c.sweep.mode = "grid"  # grid: every combination | zip: the i-th values of every axis together

  # Search on Optuna (python -m seqlab.sweep --search=optuna): trials asked in batches, each
  # batch trained as vmapped populations (one program per shape), pruned at evaluation points.
  c.search = ml_collections.ConfigDict()
  c.search.space = ()  # ((path, kind, *args), ...): kinds log_uniform (low, high) | uniform
  #   (low, high) | int (low, high) | choice ((values, ...),); e.g. (("optimizer.learning_rate",
  #   "log_uniform", 1e-4, 1e-2), ("model.hidden_size", "choice", (32, 64)))
  c.search.sampler = "tpe"  # tpe | random
  c.search.pruner = "median"  # median (stop a trial below the median at an evaluation) | none
  c.search.metric = "loss"  # the validation metric to optimize
  c.search.direction = "minimize"  # minimize | maximize
  c.search.batch = 8  # trials asked at once and trained together
  c.search.heartbeat_s = 30  # a worker silent for 2x this is taken as dead: its trials retried
  c.search.max_retry = 2  # retries of a trial whose worker died

  # Population-based training (python -m seqlab.sweep --search=pbt; seqlab.sweep.pbt): the
  # members train in one program; every `ready` steps the bottom quantile copies the top one
  # (exploit) and perturbs its hyperparameters (explore).
  c.pbt = ml_collections.ConfigDict()
  c.pbt.size = 8  # members (>= 2): seeds config.seed + i, hyperparameters drawn at random
  c.pbt.hyperparameters = ()  # ((path, kind, *args), ...) over optimizer.<learning_rate|
  #   clip_norm|clip_value|weight_decay>: kinds log_uniform (low, high) | uniform (low, high)
  #   | choice ((values, ...),); e.g. (("optimizer.learning_rate", "log_uniform", 1e-4, 1e-1),)
  c.pbt.ready = 200  # steps between evaluations (each one an exploit/explore point)
  c.pbt.burn_in = 0  # steps before the first exploit
  c.pbt.method = "truncation"  # truncation | tournament (binary)
  c.pbt.quantile = 0.25  # truncation: the bottom quantile copies the top one, in (0, 0.5]
  c.pbt.factors = (0.8, 1.2)  # explore: a value times one of these (a choice moves one place)
  c.pbt.resample_probability = 0.25  # explore: draw the value afresh instead
  c.pbt.exploit = True  # False: no exploit, no explore: random search at equal compute
  c.pbt.metric = "loss"  # the validation metric that selects (never the training loss)
  c.pbt.direction = "minimize"  # minimize | maximize
  c.pbt.eval_batches = config_dict.placeholder(int)  # per evaluation (None: train.eval_batches)
  c.pbt.seed = 0  # the initial draws, exploit and explore

  # Devices (seqlab.train.mesh), over every process's devices after jax.distributed.initialize.
  c.mesh = ml_collections.ConfigDict()
  c.mesh.pop = -1  # sweeps: devices that split the members, padded to a multiple (-1: all
  #   the devices `data` leaves)
  c.mesh.data = 1  # devices that split each training batch, params replicated (-1: all the
  #   devices `pop` leaves; a single run uses only this axis)
  return c
