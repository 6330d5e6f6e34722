"""What population-based training may change: config.pbt checked, draws and explore steps.

Each hyperparameter of config.pbt has its initial (random-search) draw and its explore step.

    config.pbt.hyperparameters = (("optimizer.learning_rate", "log_uniform", 1e-4, 1e-1),
                                  ("optimizer.clip_norm", "choice", (0.25, 0.5, 1.0, 2.0)))

The mutable fields are the optimizer numbers held in the optimizer state (`optim.INJECTABLE`),
so a new value never recompiles the program. Explore (Jaderberg et al. 2017, section 3.1)
moves a value that was copied:
  log_uniform, uniform   v <- clip(v * f, low, high), f drawn from config.pbt.factors
                         (a step of log f in log space);
  choice                 the neighbouring choice, down for f < 1 and up for f > 1 (clipped
                         at the ends of the tuple);
and with config.pbt.resample_probability draws it afresh as at the start instead.
"""

import dataclasses
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np

from seqlab.sweep import space
from seqlab.train import optim

KINDS = ("log_uniform", "uniform", "choice")
METHODS = ("truncation", "tournament")
MUTABLE = tuple(f"optimizer.{name}" for name in optim.INJECTABLE)


@dataclasses.dataclass(frozen=True)
class Hyper:
  """One mutable hyperparameter: its config path, kind and (low, high) or (choices,)."""

  path: str
  kind: str
  args: tuple

  @property
  def name(self) -> str:
    """Its name in the optimizer state ("learning_rate")."""
    return self.path.split(".", 1)[1]

  @property
  def choices(self) -> np.ndarray:
    return np.asarray(self.args[0], np.float64)

  def draw(self, key: jax.Array, n: int) -> np.ndarray:
    """n fresh values: log-uniform or uniform within (low, high), or uniform over choices."""
    u = np.asarray(jax.random.uniform(key, (n,)), np.float64)
    if self.kind == "choice":
      return self.choices[np.minimum((u * len(self.choices)).astype(int), len(self.choices) - 1)]
    low, high = self.args
    if self.kind == "log_uniform":
      return np.exp(np.log(low) + u * (np.log(high) - np.log(low)))
    return low + u * (high - low)

  def perturb(self, values: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Each value times its factor, clipped to the range; a choice moves one place."""
    values = np.asarray(values, np.float64)
    if self.kind == "choice":
      index = np.abs(self.choices[None, :] - values[:, None]).argmin(axis=1)
      index = np.clip(index + np.sign(np.log(factors)).astype(int), 0, len(self.choices) - 1)
      return self.choices[index]
    return np.clip(values * factors, *self.args)

  def explore(self, values: np.ndarray, moved: np.ndarray, key: jax.Array,
              factors: Sequence[float], resample_probability: float) -> np.ndarray:
    """The values of the members that copied (`moved`) perturbed, or resampled with
    `resample_probability`; the others kept."""
    k_factor, k_resample, k_value = jax.random.split(key, 3)
    n = len(values)
    factor = np.asarray(factors, np.float64)[
        np.asarray(jax.random.randint(k_factor, (n,), 0, len(factors)))]
    resample = np.asarray(jax.random.uniform(k_resample, (n,))) < resample_probability
    new = np.where(resample, self.draw(k_value, n), self.perturb(values, factor))
    return np.where(moved, new, values)


@dataclasses.dataclass(frozen=True)
class Options:
  """config.pbt, checked (see seqlab.config)."""

  size: int
  hypers: tuple[Hyper, ...]
  ready: int
  burn_in: int
  quantile: float
  method: str
  factors: tuple[float, ...]
  resample_probability: float
  exploit: bool
  metric: str
  maximize: bool
  eval_batches: int | None
  seed: int

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(h.name for h in self.hypers)


def options(config: ml_collections.ConfigDict) -> Options:
  """config.pbt as Options; raises naming the flag of the first bad field (one line)."""
  p = config.pbt
  bad = lambda field, why: ValueError(f"--config.pbt.{field}={p[field]!r}: {why}")
  if not isinstance(p.size, int) or p.size < 2:
    raise bad("size", "a population needs at least 2 members")
  if not 0 < p.quantile <= 0.5:
    raise bad("quantile", "the bottom and top fractions lie in (0, 0.5]")
  if p.method not in METHODS:
    raise bad("method", f"unknown value; known: {', '.join(METHODS)}")
  if not p.factors or not all(isinstance(f, int | float) and f > 0 and f != 1
                              for f in p.factors):
    raise bad("factors", "give positive perturbation factors other than 1, e.g. (0.8, 1.2)")
  if p.direction not in ("minimize", "maximize"):
    raise bad("direction", "unknown value; known: minimize, maximize")
  return Options(p.size, hypers(config), p.ready, p.burn_in, float(p.quantile), p.method,
                 tuple(float(f) for f in p.factors), float(p.resample_probability),
                 bool(p.exploit), p.metric, p.direction == "maximize",
                 p.eval_batches or config.train.eval_batches, int(p.seed))


def hypers(config: ml_collections.ConfigDict) -> tuple[Hyper, ...]:
  """config.pbt.hyperparameters as Hypers; raises naming the entry that is malformed, of an
  unknown kind or over a field PBT cannot change inside the program."""
  out: list[Hyper] = []
  for entry in config.pbt.hyperparameters:
    if isinstance(entry, str) or len(entry) < 2 or not isinstance(entry[0], str):
      raise ValueError(f"config.pbt.hyperparameters entries are (path, kind, *args); "
                       f"got {entry!r}")
    path, kind, args = entry[0], entry[1], tuple(entry[2:])
    where = f"config.pbt.hyperparameters {path!r}"
    if path not in MUTABLE:
      raise ValueError(f"{where}: not a hyperparameter PBT can change inside the compiled "
                       f"program; mutable: {', '.join(MUTABLE)}")
    if kind not in KINDS:
      raise ValueError(f"{where}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    space.check_range(f"{where} ({kind})", kind, args)
    if kind == "choice" and not all(isinstance(v, int | float) and v >= 0 for v in args[0]):
      raise ValueError(f"{where} (choice): the choices are numbers >= 0; got {args[0]!r}")
    if path in {h.path for h in out}:
      raise ValueError(f"config.pbt.hyperparameters: {path!r} appears twice")
    out.append(Hyper(path, kind, args))
  if not out:
    raise ValueError("config.pbt.hyperparameters is empty: declare the fields PBT may change, "
                     "e.g. ((\"optimizer.learning_rate\", \"log_uniform\", 1e-4, 1e-1),)")
  return tuple(out)


def initial_members(config: ml_collections.ConfigDict, opts: Options) -> list[dict]:
  """Each member's {path: value}: seed config.seed + i and a random-search draw of every
  hyperparameter (key: config.pbt.seed), the same for PBT and its exploit-off baseline."""
  keys = jax.random.split(jax.random.fold_in(jax.random.key(opts.seed), 0), len(opts.hypers))
  draws = {h.path: h.draw(k, opts.size) for h, k in zip(opts.hypers, keys, strict=True)}
  return [{"seed": int(config.seed) + i, **{p: float(v[i]) for p, v in draws.items()}}
          for i in range(opts.size)]
