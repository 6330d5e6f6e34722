"""Population-based training of a sweep's members inside its one compiled program.

Jaderberg et al. 2017 ("Population Based Training of Neural Networks"): the members train
together; every `ready` steps each is scored on held-out validation (never its training loss,
lower is better), and then
  exploit  truncation: each member of the bottom `quantile` copies a uniformly drawn member of
           the top `quantile`; or a binary tournament: each member meets a uniformly drawn other
           member and copies it when that one scored strictly better;
  explore  each mutable hyperparameter of a member that copied is multiplied by a factor drawn
           from `factors` (a step in log space) or, with `resample_probability`, resampled
           log-uniformly within its bounds; either way clipped to its bounds.
A copy is a gather over the leading member axis of every leaf of the training state: params,
optimizer state (its injected hyperparameters included), step counters, the carried state
("extra"). The mutable hyperparameters are the optimizer numbers injected into the optimizer
state (`optim.INJECTABLE`: state["opt_state"].hyperparams[name], one value per row), so
changing them never recompiles the program.

    pop = pbt.build(config, bounds)     # bounds = {"learning_rate": (1e-4, 1e-1), ...}
    result = pbt.train(pop, num_steps=2000, ready=100, quantile=0.25, bounds=bounds)
    result.lineage[0]  # {"step", "member", "parent", "score", "parent_score", "old", "new"}

The random step of member i stays fold_in(key(seed_i), step) with its own seed (the program
takes the seeds outside the state): after a copy it continues its own random stream and data
order from the parent's step, which differs from the parent's when their seeds differ.
With quantile 0 nothing is copied or perturbed and `train` equals `population.train`.
"""

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from seqlab.sweep import placement, population
from seqlab.train import mesh as mesh_lib

METHODS = ("truncation", "tournament")


@dataclasses.dataclass
class Result:
  """A population trained with PBT: final state, metrics, validation scores and the lineage."""

  state: dict
  history: dict[str, np.ndarray]  # name -> [steps, N], as population.train's
  scores: np.ndarray  # [rounds, N]: the validation score of each member after each chunk
  steps: list[int]  # the step of each round of scores
  hyperparameters: list[dict[str, np.ndarray]]  # each round's values after explore
  lineage: list[dict[str, Any]]  # one entry per member and exploit round
  compile_s: float
  train_s: float
  eval_s: float


def build(config: ml_collections.ConfigDict, names: Sequence[str]) -> population.Population:
  """`population.build(config)` with the optimizer fields `names` injected for every member
  (a sweep injects only the fields its axes vary; PBT changes them later)."""
  pop = population.build(config)
  inject = tuple(sorted(set(pop.inject) | set(names)))
  return dataclasses.replace(pop, inject=inject, compiled={})


def hyperparameters(pop: population.Population, state: dict) -> dict[str, np.ndarray]:
  """Each member's injected optimizer numbers: {name: [N]} from state["opt_state"].hyperparams."""
  hyper = mesh_lib.to_host(_hyperparams(state))
  return {name: np.asarray(v)[:pop.size] for name, v in hyper.items()}


def with_hyperparameters(pop: population.Population, state: dict,
                         values: Mapping[str, Any]) -> dict:
  """`state` whose injected numbers `values` ({name: [N]}) replace the members' own (padding
  rows take the last member's); the other leaves are shared, not copied."""
  hyper = dict(_hyperparams(state))
  unknown = set(values) - set(hyper)
  if unknown:
    raise ValueError(f"hyperparameters {sorted(unknown)} are not injected in this population's "
                     f"optimizer state (injected: {sorted(hyper)}); build it with pbt.build")
  for name, v in values.items():
    old = hyper[name]
    v = np.asarray(v, old.dtype)
    if v.shape != (pop.size,):
      raise ValueError(f"hyperparameter {name!r}: {pop.size} values expected, got {v.shape}")
    padded = v[[placement.member_of(r, pop.size) for r in range(old.shape[0])]]
    hyper[name] = mesh_lib.global_array(old.shape, old.sharding, lambda i, a=padded: a[i])
  return {**state, "opt_state": state["opt_state"]._replace(hyperparams=hyper)}


def _hyperparams(state: dict) -> dict:
  opt_state = state["opt_state"]
  if not hasattr(opt_state, "hyperparams"):
    raise ValueError("the optimizer state holds no injected hyperparameters: build the "
                     "population with pbt.build(config, names)")
  return opt_state.hyperparams


def select(scores: Sequence[float], key: jax.Array, quantile: float,
           method: str = "truncation") -> np.ndarray:
  """parents[i]: the member that member i copies (i itself when it keeps its own state).

  Lower scores are better (a validation loss); NaN scores rank last. truncation: the
  floor(quantile * N) worst members each copy a uniformly drawn one of the floor(quantile * N)
  best (ties ranked by index). tournament: member i meets a uniformly drawn other member j and
  copies j when score[j] < score[i] (quantile unused).
  """
  scores = np.where(np.isnan(np.asarray(scores, np.float64)), np.inf, scores)
  n = len(scores)
  parents = np.arange(n)
  if method == "truncation":
    if not 0.0 <= quantile <= 0.5:
      raise ValueError(f"a truncation quantile is in [0, 0.5]; got {quantile}")
    k = int(np.floor(quantile * n))
    if k == 0:
      return parents
    order = np.argsort(scores, kind="stable")
    top, bottom = order[:k], order[n - k:]
    picks = np.asarray(jax.random.randint(key, (k,), 0, k))
    parents[bottom] = top[picks]
  elif method == "tournament":
    if n < 2:
      return parents
    others = np.asarray(jax.random.randint(key, (n,), 0, n - 1))
    others = others + (others >= parents)  # uniform over the members other than i
    better = scores[others] < scores
    parents = np.where(better, others, parents)
  else:
    raise ValueError(f"unknown PBT exploit method {method!r}; known: {list(METHODS)}")
  return parents


def exploit(state: dict, scores: Sequence[float], key: jax.Array, quantile: float,
            method: str = "truncation") -> tuple[dict, np.ndarray]:
  """(new state, parents): every leaf of the state [rows, ...] gathered along the member axis,
  row i taking row parents[i] (`select`: lower score is better); padding rows follow the last
  member. `state` itself is left intact (not donated)."""
  parents = select(scores, key, quantile, method)
  return copy_rows(state, parents), parents


def copy_rows(state: dict, parents: np.ndarray) -> dict:
  """Each member i's state replaced by member parents[i]'s, every leaf bit for bit."""
  size = len(parents)
  rows = jax.tree.leaves(state)[0].shape[0]
  index = np.asarray([parents[placement.member_of(r, size)] for r in range(rows)], np.int32)
  shardings = jax.tree.map(lambda a: a.sharding, state)
  gather = jax.jit(lambda tree, i: jax.tree.map(lambda a: jnp.take(a, i, axis=0), tree),
                   out_shardings=shardings)
  return gather(state, index)


def explore(values: Mapping[str, Any], parents: np.ndarray, key: jax.Array,
            bounds: Mapping[str, tuple[float, float]], factors: Sequence[float] = (0.8, 1.2),
            resample_probability: float = 0.25) -> dict[str, np.ndarray]:
  """Perturbed hyperparameters {name: [N]} for the members that copied (parents[i] != i):
  log v + log f with f uniform over `factors`, or with `resample_probability` a log-uniform
  draw within bounds[name]; clipped to bounds[name]. Other members keep their values."""
  parents = np.asarray(parents)
  moved = parents != np.arange(len(parents))
  out = {}
  for name, k in zip(sorted(bounds), jax.random.split(key, len(bounds)), strict=True):
    lo, hi = bounds[name]
    if not 0 < lo <= hi:
      raise ValueError(f"PBT bounds of {name!r} are 0 < low <= high (log space); got {lo, hi}")
    v = np.asarray(values[name], np.float64)
    k_choice, k_resample, k_value = jax.random.split(k, 3)
    factor = np.asarray(factors, np.float64)[
        np.asarray(jax.random.randint(k_choice, v.shape, 0, len(factors)))]
    stepped = np.exp(np.log(np.maximum(v, np.finfo(np.float64).tiny)) + np.log(factor))
    fresh = np.exp(np.asarray(jax.random.uniform(k_value, v.shape, jnp.float32,
                                                 np.log(lo), np.log(hi)), np.float64))
    resample = np.asarray(jax.random.uniform(k_resample, v.shape)) < resample_probability
    new = np.clip(np.where(resample, fresh, stepped), lo, hi)
    out[name] = np.where(moved, new, v).astype(np.asarray(values[name]).dtype)
  return {**{n: np.asarray(v) for n, v in values.items()}, **out}


def train(pop: population.Population, num_steps: int, ready: int, quantile: float,
          bounds: Mapping[str, tuple[float, float]], method: str = "truncation",
          factors: Sequence[float] = (0.8, 1.2), resample_probability: float = 0.25,
          metric: str = "loss", split: str = "validation", eval_batches: int | None = None,
          state: dict | None = None, seed: int = 0) -> Result:
  """PBT: `population.train` in chunks of `ready` steps (the one compiled program), each
  followed by the members' validation `metric` (lower is better) and, while steps remain and
  quantile > 0 (for a tournament it only switches exploit on), exploit and explore of the
  hyperparameters in `bounds`. `lineage` gets one entry per member and round: its step, the
  member, its parent (itself if it kept its state), both scores, and the member's values
  before exploit ("old") and after explore ("new").

  With quantile 0 the state is never touched between chunks: the result equals
  population.train(pop, num_steps) (random search at equal compute).
  """
  if ready <= 0:
    raise ValueError(f"PBT ready is a positive number of steps; got {ready}")
  state = population.initial_state(pop) if state is None else state
  missing = set(bounds) - set(pop.inject)
  if quantile > 0 and missing:
    raise ValueError(f"PBT hyperparameters {sorted(missing)} are not injected (injected: "
                     f"{list(pop.inject)}); build the population with pbt.build(config, names)")
  key = jax.random.key(seed)
  histories, all_scores, steps, values_log, lineage = [], [], [], [], []
  compile_s = train_s = eval_s = 0.0
  done = 0
  while done < num_steps:
    chunk = min(ready, num_steps - done)
    result = population.train(pop, chunk, state=state)
    state, done = result.state, done + chunk
    histories.append(result.history)
    compile_s, train_s = compile_s + result.compile_s, train_s + result.train_s
    t0 = time.perf_counter()
    finals = population.evaluate(pop, state["params"], split, eval_batches)
    eval_s += time.perf_counter() - t0
    scores = np.asarray([f[metric] for f in finals], np.float64)
    all_scores.append(scores)
    steps.append(int(mesh_lib.to_host(state["step"])[0]))
    if quantile > 0 and done < num_steps:
      key, k_exploit, k_explore = jax.random.split(key, 3)
      old = hyperparameters(pop, state)
      state, parents = exploit(state, scores, k_exploit, quantile, method)
      copied = hyperparameters(pop, state)
      new = explore(copied, parents, k_explore, bounds, factors, resample_probability)
      state = with_hyperparameters(pop, state, {n: new[n] for n in bounds})
      lineage += [{"step": steps[-1], "member": i, "parent": int(parents[i]),
                   "score": float(scores[i]), "parent_score": float(scores[parents[i]]),
                   "old": {n: float(old[n][i]) for n in bounds},
                   "new": {n: float(new[n][i]) for n in bounds}} for i in range(pop.size)]
    if pop.inject:
      values_log.append(hyperparameters(pop, state))
  history = {n: np.concatenate([h[n] for h in histories]) for n in histories[0]} if histories \
      else {}
  return Result(state, history, np.asarray(all_scores), steps, values_log, lineage,
                compile_s, train_s, eval_s)
