"""Population-based training of a population's members inside its one compiled program.

Jaderberg et al. 2017 ("Population Based Training of Neural Networks"): the members train
together; every `ready` steps each is scored on held-out validation (never its training loss),
and then
  exploit  truncation: each member of the bottom `quantile` copies a uniformly drawn member of
           the top `quantile`; or a binary tournament: each member meets a uniformly drawn other
           member and copies it when that one scored strictly better;
  explore  each hyperparameter of a member that copied is perturbed or resampled
           (`pbt_space.Hyper.explore`), within its range.
A copy is a gather over the leading member axis of every leaf of the training state: params,
optimizer state (its injected hyperparameters included), step counters, the carried state
("extra"); the copy then draws a fresh per-step random seed, so that it does not retrace its
parent's dropout or sampling. The mutable hyperparameters are the optimizer numbers injected
into the optimizer state (`optim.INJECTABLE`: state["opt_state"].hyperparams[name], one value
per row), so changing them never recompiles the program. Member i keeps reading the batches of
its own config seed from the parent's step on.

    pop = pbt.build(config, opts.names, members)   # opts = pbt_space.options(config)
    result = pbt.train(pop, num_steps, opts)        # result.record: scores, parents, lineage
    pbt.replay(pop, result.record, member)          # that member's schedule as a single run

With opts.exploit False nothing is copied or perturbed: the same population trained as random
search at equal compute, equal to `population.train`.
"""

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from seqlab.sweep import pbt_space, placement, population
from seqlab.train import mesh as mesh_lib


def build(config: ml_collections.ConfigDict, names: Sequence[str],
          members: list[dict[str, Any]] | None = None) -> population.Population:
  """The population of `members` (default: config.sweep's) with the optimizer fields `names`
  injected for every member (a sweep injects only the fields its axes vary; PBT changes them
  later)."""
  pop = (population.build(config) if members is None
         else population.from_members(config, members))
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
    raise ValueError(f"unknown PBT exploit method {method!r}; known: {list(pbt_space.METHODS)}")
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
  leaves, treedef = jax.tree.flatten(state)
  return _gather(treedef, tuple(a.sharding for a in leaves))(state, index)


@functools.cache
def _gather(treedef, shardings: tuple):
  """The jitted row gather for one state layout, built once (not once per exploit round)."""
  return jax.jit(lambda tree, i: jax.tree.map(lambda a: jnp.take(a, i, axis=0), tree),
                 out_shardings=jax.tree.unflatten(treedef, shardings))


def explore(values: Mapping[str, np.ndarray], parents: np.ndarray, key: jax.Array,
            opts: pbt_space.Options) -> dict[str, np.ndarray]:
  """Each hyperparameter of the members that copied (parents[i] != i) perturbed or resampled
  (`Hyper.explore`); the other members keep their values."""
  moved = np.asarray(parents) != np.arange(len(parents))
  keys = jax.random.split(key, len(opts.hypers))
  new = {h.name: h.explore(np.asarray(values[h.name], np.float64), moved, k, opts.factors,
                           opts.resample_probability) for h, k in zip(opts.hypers, keys,
                                                                      strict=True)}
  return {**{n: np.asarray(v, np.float64) for n, v in values.items()}, **new}


@dataclasses.dataclass
class Record:
  """PBT's host-side record beside the population's state, saved with each checkpoint.

  Chunk k trains the steps (ends[k-1], ends[k]] with the hyperparameters values[k] and the
  per-step random seeds rng_seeds[k] (values and rng_seeds hold one entry more than ends: the
  next chunk's); after it the members scored scores[k] (the validation metric) and member i
  took the state of parents[k][i] (itself when it kept its own).
  """

  key: list[int]  # key data of the next exploit and explore draws
  values: list[dict[str, list[float]]]
  rng_seeds: list[list[int]]
  ends: list[int] = dataclasses.field(default_factory=list)
  scores: list[list[float]] = dataclasses.field(default_factory=list)
  parents: list[list[int]] = dataclasses.field(default_factory=list)
  lineage: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  history: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # [steps, N]

  @property
  def step(self) -> int:
    return self.ends[-1] if self.ends else 0

  def chunks(self) -> list[tuple[int, int]]:
    """(start, end) steps of each chunk trained so far."""
    return list(zip([0, *self.ends[:-1]], self.ends, strict=True))


@dataclasses.dataclass
class Result:
  """A population trained with PBT: its state, its record and the time spent."""

  state: dict
  record: Record
  compile_s: float
  train_s: float
  eval_s: float


def start(pop: population.Population, state: dict, opts: pbt_space.Options) -> Record:
  """The record of a population at step 0: its own values and seeds, the key of config.pbt.seed."""
  values = hyperparameters(pop, state)
  key = jax.random.fold_in(jax.random.key(opts.seed), 1)  # 0 drew the initial values
  return Record(np.asarray(jax.random.key_data(key)).tolist(),
                [{n: values[n].tolist() for n in opts.names}], [list(pop.seeds)])


def train(pop: population.Population, num_steps: int, opts: pbt_space.Options,
          state: dict | None = None, record: Record | None = None,
          on_round: Callable[[dict, Record], None] | None = None) -> Result:
  """PBT from `state` and `record` (default: step 0) to `num_steps`: `population.train` in
  chunks of opts.ready steps (the one compiled program), each followed by every member's
  validation metric (the selection score, never the training loss) and, once opts.burn_in
  steps are done and while steps remain, exploit and explore (opts.exploit False: neither,
  random search at equal compute). `on_round(state, record)` follows each round (checkpoints).
  """
  state = population.initial_state(pop) if state is None else state
  record = start(pop, state, opts) if record is None else record
  missing = set(opts.names) - set(pop.inject)
  if missing:
    raise ValueError(f"PBT hyperparameters {sorted(missing)} are not injected (injected: "
                     f"{list(pop.inject)}); build the population with pbt.build(config, names)")
  sign = -1.0 if opts.maximize else 1.0
  compile_s = train_s = eval_s = 0.0
  while record.step < num_steps:
    chunk = min(opts.ready, num_steps - record.step)
    result = population.train(pop, chunk, state=state, rng_seeds=record.rng_seeds[-1])
    state = result.state
    compile_s, train_s = compile_s + result.compile_s, train_s + result.train_s
    record.history = {n: np.concatenate([record.history[n], h]) if n in record.history else h
                      for n, h in result.history.items()}
    record.ends.append(record.step + chunk)
    t0 = time.perf_counter()
    finals = population.evaluate(pop, state["params"], "validation", opts.eval_batches)
    eval_s += time.perf_counter() - t0
    scores = np.asarray([f[opts.metric] for f in finals], np.float64)
    record.scores.append(scores.tolist())
    parents, values, seeds = np.arange(pop.size), record.values[-1], record.rng_seeds[-1]
    if opts.exploit and opts.burn_in <= record.step < num_steps:
      key, k_exploit, k_explore, k_seeds = jax.random.split(
          jax.random.wrap_key_data(np.asarray(record.key, np.uint32)), 4)
      record.key = np.asarray(jax.random.key_data(key)).tolist()
      state, parents = exploit(state, sign * scores, k_exploit, opts.quantile, opts.method)
      copied = {n: np.asarray(v)[parents] for n, v in values.items()}
      new = explore(copied, parents, k_explore, opts)
      state = with_hyperparameters(pop, state, new)
      moved = parents != np.arange(pop.size)
      fresh = np.asarray(jax.random.randint(k_seeds, (pop.size,), 0, 2**31 - 1))
      seeds = np.where(moved, fresh, seeds).tolist()  # a copy draws its own random stream
      record.lineage += [{"step": record.step, "member": i, "parent": int(parents[i]),
                          "score": float(scores[i]), "parent_score": float(scores[parents[i]]),
                          "old": {n: float(values[n][i]) for n in opts.names},
                          "new": {n: float(new[n][i]) for n in opts.names},
                          "rng_seed": int(seeds[i])} for i in range(pop.size)]
      values = {n: new[n].tolist() for n in opts.names}
    record.parents.append(parents.tolist())
    record.values.append(values)
    record.rng_seeds.append(list(seeds))
    if on_round:
      on_round(state, record)
  return Result(state, record, compile_s, train_s, eval_s)


def line_of(record: Record, member: int) -> list[int]:
  """The row whose state became member `member`'s in each chunk: its line of ancestors."""
  rows = [member]
  for parents in reversed(record.parents[:-1]):
    rows.append(parents[rows[-1]])
  return rows[::-1]


def schedule(record: Record, member: int) -> list[dict[str, Any]]:
  """Member `member`'s schedule: for each chunk its steps, the row it trained on, that row's
  hyperparameters and random seed."""
  return [{"start": s, "end": e, "row": r, "rng_seed": record.rng_seeds[k][r],
           **{n: v[r] for n, v in record.values[k].items()}}
          for k, ((s, e), r) in enumerate(zip(record.chunks(), line_of(record, member),
                                              strict=True))]


def curve(record: Record, member: int, name: str = "loss") -> np.ndarray:
  """Member `member`'s training `name` along its line: each chunk's steps from its row."""
  return np.concatenate([record.history[name][c["start"]:c["end"], c["row"]]
                         for c in schedule(record, member)])


def replay(pop: population.Population, record: Record, member: int) -> dict[str, np.ndarray]:
  """Member `member`'s schedule trained again from scratch: the initial state of its line's
  first row, then each chunk with that chunk's hyperparameters, random seed and data stream
  (the row's seed). It runs in the population's own compiled program with every row on this
  one line, so each step is computed as it was in the population and the history equals
  `curve(record, member)` bit for bit; the rows are copies (a single schedule at the cost of
  the population: a one-row program orders XLA's sums differently, and that float drift
  grows with training that is sensitive to it: 3.7x in the final training loss of a copy
  run at T = 100 after 1500 steps)."""
  plan = schedule(record, member)
  everyone = lambda value: np.full(pop.size, value)
  state = copy_rows(population.initial_state(pop), everyone(plan[0]["row"]))
  parts = []
  for c in plan:
    state = with_hyperparameters(pop, state, {n: everyone(c[n]) for n in record.values[0]})
    seed = pop.seeds[c["row"]]
    data = (mesh_lib.shard_batch(b, pop.mesh) if pop.shared_batch
            else placement.stacked_batch({seed: b}, [seed] * pop.size, pop.mesh)
            for b in pop.problem.train_batches(seed, c["start"]))
    result = population.train(pop, c["end"] - c["start"], state=state, data=data,
                              rng_seeds=everyone(c["rng_seed"]))
    state = result.state
    parts.append(result.history)
  return {n: np.concatenate([p[n][:, 0] for p in parts]) for n in parts[0]}
