"""A population: the members of a sweep trained by one jit-compiled, vmapped train step.

    pop = population.build(config)                   # members, their configs and problems
    result = population.train(pop)                   # state [N, ...], history [steps, N]
    finals = population.evaluate(pop, result.state["params"], "validation")
    print(population.table(pop, finals))

Member i starts from what `loop.initial_state` gives for its own config (its seed, its
initial values, its optimizer numbers as optimizer-state leaves), stacked along a leading
member axis; the step is `loop.make_train_step`'s, vmapped over (state, batch, seed), and
member i reads the batches of its own seed: the same computation as a run of its config
alone (`train_alone`), to float rounding.
"""

import copy
import dataclasses
import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from seqlab import problems
from seqlab.analysis import report
from seqlab.sweep import space
from seqlab.train import loop, optim


@dataclasses.dataclass
class Population:
  """The members of one sweep, each with its config and (for init axes) its own problem."""

  members: list[dict[str, Any]]
  configs: list[ml_collections.ConfigDict]
  problems: list[Any]
  inject: tuple[str, ...]  # optimizer fields held in the optimizer state

  @property
  def size(self) -> int:
    return len(self.members)

  @property
  def seeds(self) -> list[int]:
    return [int(c.seed) for c in self.configs]

  @property
  def problem(self):
    """The problem whose loss every member's program runs (the first member's)."""
    return self.problems[0]

  def optimizer(self, i: int = 0) -> optax.GradientTransformation:
    """Member i's optimizer, its swept numbers injected into its state."""
    return optim.make_optimizer(self.configs[i].optimizer, self.inject)


@dataclasses.dataclass
class Result:
  """A trained population: stacked state, metrics per step and member, and timings."""

  state: dict
  history: dict[str, np.ndarray]  # name -> [steps, N]
  compile_s: float
  train_s: float  # the steps after compilation, data included


def build(config: ml_collections.ConfigDict, problem=None) -> Population:
  """The population of config.sweep (one member when it has no axes)."""
  members = space.members(config)
  kinds = {p: space.axis_kind(p) for p, _ in space.axes(config)}
  configs = [space.member_config(config, m) for m in members]
  problem = problem or problems.build_problem(configs[0])
  member_problems = [_member_problem(problem, c) for c in configs]
  inject = tuple(p.split(".", 1)[1] for p, k in kinds.items() if k == "optimizer")
  return Population(members, configs, member_problems, inject)


def _member_problem(problem, config):
  """`problem` itself, or a copy whose model is built from `config` when model/train differ."""
  same = (config.model.to_dict() == problem.config.model.to_dict()
          and config.train.to_dict() == problem.config.train.to_dict()
          and config.problem.to_dict() == problem.config.problem.to_dict())
  if same:
    return problem
  member = copy.copy(problem)
  member.config = config
  member.model = member.build_model(**problem.data_fields)
  return member


def stack(trees: Sequence[Any]) -> Any:
  """Pytrees with equal structure -> one pytree with a leading member axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def member(tree: Any, i: int) -> Any:
  """Member i's slice of a stacked pytree."""
  return jax.tree.map(lambda a: a[i], tree)


def batches(pop: Population, start_step: int = 0) -> Iterator[dict]:
  """The program's batches from `start_step`: one shared batch, or [N, ...] when seeds differ."""
  distinct = sorted(set(pop.seeds))
  streams = {s: pop.problem.train_batches(s, start_step) for s in distinct}
  while True:
    got = {s: next(it) for s, it in streams.items()}
    if len(distinct) == 1:
      yield got[distinct[0]]
    else:
      yield jax.tree.map(lambda *xs: np.stack(xs), *[got[s] for s in pop.seeds])


def member_batch(pop: Population, batch: dict, i: int) -> dict:
  """Member i's batch from a program batch."""
  return batch if len(set(pop.seeds)) == 1 else member(batch, i)


def initial_state(pop: Population) -> dict:
  """Every member's `loop.initial_state`, stacked; checks that one program serves them all."""
  batch = next(batches(pop, 0))
  states = [loop.initial_state(p, pop.optimizer(i), pop.seeds[i], member_batch(pop, batch, i))
            for i, p in enumerate(pop.problems)]
  _check_one_program(pop, states, batch)
  return stack(states)


def _check_one_program(pop: Population, states: list[dict], batch: dict) -> None:
  """Same parameter shapes and the same traced loss (jaxpr) for every member."""
  shapes = lambda s: jax.tree.map(lambda a: (a.shape, a.dtype), s["params"])
  ref_shapes, texts = shapes(states[0]), {}
  for i, (p, state) in enumerate(zip(pop.problems, states, strict=True)):
    if shapes(state) != ref_shapes:
      raise ValueError(f"sweep member {space.label(pop.members[i])} has other parameter "
                       "shapes than the first: a shape-changing axis needs separate programs")
    if id(p) in texts:
      continue
    b = member_batch(pop, batch, i)
    texts[id(p)] = str(jax.make_jaxpr(p.loss)(
        state["params"], b, jax.random.key(0), p.init_extra(state["params"], b), jnp.int32(0)))
    if texts[id(p)] != texts[id(pop.problem)]:
      raise ValueError(f"sweep member {space.label(pop.members[i])} computes a different "
                       "loss than the first (an axis changes more than initial values): run it "
                       "as a separate program")


def program(pop: Population):
  """jit(vmap(train step)) over (state [N], batch [N] or shared, seed [N]); state donated."""
  cfg = pop.configs[0]
  step = loop.make_train_step(pop.problem, pop.optimizer(0), cfg.seed,
                              cfg.train.nonfinite == "skip")

  def member_step(state, batch, seed):
    new, metrics = step(state, batch, seed)
    delta = jax.tree.map(jnp.subtract, new["params"], state["params"])
    return new, {**metrics, "update_norm": optax.tree.norm(delta)}  # ||theta' - theta||

  batch_axis = None if len(set(pop.seeds)) == 1 else 0
  return jax.jit(jax.vmap(member_step, in_axes=(0, batch_axis, 0)), donate_argnums=0)


def train(
    pop: Population,
    num_steps: int | None = None,
    state: dict | None = None,
    data: Iterable[dict] | None = None,
    log_every: int = 0,
) -> Result:
  """Train every member `num_steps` (default config.train.num_steps) steps in one program."""
  num_steps = pop.configs[0].train.num_steps if num_steps is None else num_steps
  state = initial_state(pop) if state is None else state
  start = int(state["step"][0])
  data = iter(batches(pop, start) if data is None else data)
  seeds = jnp.asarray(pop.seeds, jnp.int32)
  history: list[dict] = []
  compile_s, t0 = 0.0, time.perf_counter()
  for k in range(num_steps):
    batch = next(data)
    if k == 0:
      c0 = time.perf_counter()
      step = program(pop).lower(state, batch, seeds).compile()
      compile_s = time.perf_counter() - c0
    state, metrics = step(state, batch, seeds)
    history.append(metrics)
    if log_every and ((k + 1) % log_every == 0 or k + 1 == num_steps):
      loss = np.asarray(metrics["loss"])
      print(f"step {start + k + 1:6d}/{start + num_steps}  loss median {np.median(loss):.4g} "
            f"[{loss.min():.4g}, {loss.max():.4g}] over {pop.size} members", flush=True)
  jax.block_until_ready(state)
  train_s = time.perf_counter() - t0 - compile_s
  names = history[0].keys() if history else ()
  hist = {n: np.stack([np.asarray(m[n]) for m in history]) for n in names}
  return Result(state, hist, compile_s, train_s)


def train_alone(pop: Population, i: int, num_steps: int,
                data: Iterable[dict] | None = None) -> Result:
  """Member i run by itself with the runner's pieces (un-injected optimizer, un-vmapped step)."""
  cfg, problem = pop.configs[i], pop.problems[i]
  optimizer = optim.make_optimizer(cfg.optimizer)
  data = iter(problem.train_batches(cfg.seed, 0) if data is None else data)
  batch = next(data)
  state = loop.initial_state(problem, optimizer, cfg.seed, batch)
  step = jax.jit(loop.make_train_step(problem, optimizer, cfg.seed, cfg.train.nonfinite == "skip"),
                 donate_argnums=0)
  c0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s, losses = time.perf_counter() - c0, []
  t0 = time.perf_counter()
  for k in range(num_steps):
    state, metrics = compiled(state, batch if k == 0 else next(data))
    losses.append(metrics["loss"])
  jax.block_until_ready(state)
  train_s = time.perf_counter() - t0
  return Result(state, {"loss": np.asarray(losses)}, compile_s, train_s)


def evaluate(pop: Population, params: Any, split: str = "validation",
             max_batches: int | None = None) -> list[dict[str, float]]:
  """Each member's metrics (`problem.summarize`) over (max_batches of) an evaluation split."""
  problem = pop.problem
  sums_fn = jax.jit(jax.vmap(problem.eval_sums, in_axes=(0, None, 0)))
  totals: dict[str, np.ndarray] = {}
  extra = None
  for batch in itertools.islice(problem.eval_batches(split), max_batches):
    if extra is None:
      extra = jax.vmap(problem.init_extra, in_axes=(0, None))(params, batch)
    sums, extra = sums_fn(params, batch, extra)
    for name, value in sums.items():
      totals[name] = totals.get(name, 0.0) + np.asarray(value, np.float64)
  return [problem.summarize({k: float(v[i]) for k, v in totals.items()})
          for i in range(pop.size)]


def table(pop: Population, rows: Sequence[dict[str, Any]], digits: int = 4) -> str:
  """A markdown table: one row per member, its axis values then `rows[i]`'s columns."""
  axes = list(pop.members[0])
  columns = list(rows[0]) if rows else []
  body = [[m[a] for a in axes] + [r[c] for c in columns]
          for m, r in zip(pop.members, rows, strict=True)]
  return report.markdown_table(axes + columns, body, digits)
