"""A population: the members of a sweep trained by one jit-compiled, vmapped train step.

    pop = population.build(config)                   # members, configs, problems, the mesh
    result = population.train(pop)                   # state [rows, ...], history [steps, N]
    finals = population.evaluate(pop, result.state["params"], "validation")
    print(space.table(pop.members, finals))

Member i starts from what `loop.initial_state` gives for its own config (its seed, its
initial values, its optimizer numbers as optimizer-state leaves), stacked along a leading
member axis; the step is `loop.make_train_step`'s, vmapped over (state, batch, seed), and
member i reads the batches of its own seed: the same computation as a run of its config
alone (`train_alone`), to float rounding. The rows are spread over the mesh's "pop" axis
(`placement`: padded to a multiple of it, each process building only its own rows).
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
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from seqlab import problems
from seqlab.sweep import placement, space
from seqlab.train import loop, optim
from seqlab.train import mesh as mesh_lib


@dataclasses.dataclass
class Population:
  """The members of one sweep, each with its config and (for init axes) its own problem."""

  members: list[dict[str, Any]]
  configs: list[ml_collections.ConfigDict]
  problems: list[Any]
  inject: tuple[str, ...]  # optimizer fields held in the optimizer state
  mesh: Mesh  # (pop, data): members along pop, each batch along data
  compiled: dict = dataclasses.field(default_factory=dict, repr=False)  # programs, built once

  @property
  def size(self) -> int:
    return len(self.members)

  @property
  def rows(self) -> int:
    """Rows of the program: the members padded to a multiple of the pop axis."""
    return mesh_lib.padded(self.size, self.mesh)

  @property
  def shared_batch(self) -> bool:
    """All members read one batch (one seed)."""
    return len(set(self.seeds)) == 1

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


def build(config: ml_collections.ConfigDict, problem=None, mesh: Mesh | None = None
          ) -> Population:
  """The population of config.sweep (one member when it has no axes) on `mesh` (default:
  the mesh config.mesh describes)."""
  return from_members(config, space.members(config), problem, mesh)


def from_members(config: ml_collections.ConfigDict, members: list[dict[str, Any]], problem=None,
                 mesh: Mesh | None = None) -> Population:
  """The population of `config` with each member's {path: value} set (paths whose values
  differ must be sweepable in one program: `space.axis_kind`)."""
  configs = [space.member_config(config, m) for m in members]
  problem = problem or problems.build_problem(configs[0])
  member_problems = [_member_problem(problem, c) for c in configs]
  varying = {p for m in members for p in m if len({repr(n.get(p)) for n in members}) > 1}
  kinds = {p: space.axis_kind(p) for p in varying}
  inject = tuple(sorted(p.split(".", 1)[1] for p, k in kinds.items() if k == "optimizer"))
  mesh = mesh or mesh_lib.make(config.mesh, sweep=True)
  return Population(members, configs, member_problems, inject, mesh)


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
  """The program's batches from `start_step`, on the mesh: one shared batch [B, ...] split
  along data, or [rows, B, ...] when seeds differ (this process reads only its rows' seeds)."""
  rows = placement.local_rows(pop.mesh, pop.rows)
  seeds = sorted({pop.seeds[placement.member_of(r, pop.size)] for r in rows})
  streams = {s: pop.problem.train_batches(s, start_step) for s in seeds}
  while True:
    got = {s: next(it) for s, it in streams.items()}
    if pop.shared_batch:
      yield mesh_lib.shard_batch(got[pop.seeds[0]], pop.mesh)
    else:
      yield placement.stacked_batch(got, pop.seeds, pop.mesh)


def member_batch(pop: Population, batch: dict, i: int) -> dict:
  """Member i's batch from a program batch."""
  return batch if pop.shared_batch else member(batch, i)


def initial_state(pop: Population) -> dict:
  """`loop.initial_state` of this process's members, stacked on the mesh ([rows, ...], P("pop"));
  checks that one program serves them all."""
  needed = sorted({0} | {placement.member_of(r, pop.size)
                         for r in placement.local_rows(pop.mesh, pop.rows)})
  firsts = {s: next(pop.problem.train_batches(s, 0)) for s in {pop.seeds[i] for i in needed}}
  states = {i: loop.initial_state(pop.problems[i], pop.optimizer(i), pop.seeds[i],
                                  firsts[pop.seeds[i]]) for i in needed}
  _check_one_program(pop, states, firsts)
  return placement.stacked(states, pop.size, pop.mesh)


def _check_one_program(pop: Population, states: dict[int, dict], firsts: dict[int, dict]
                       ) -> None:
  """Same parameter shapes and the same traced loss (jaxpr) for every member in `states`."""
  shapes = lambda s: jax.tree.map(lambda a: (a.shape, a.dtype), s["params"])
  ref_shapes, texts = shapes(states[0]), {}
  for i, state in states.items():
    p = pop.problems[i]
    if shapes(state) != ref_shapes:
      raise ValueError(f"sweep member {space.label(pop.members[i])} has other parameter "
                       "shapes than the first: a shape-changing axis needs separate programs")
    if id(p) in texts:
      continue
    b = firsts[pop.seeds[i]]
    texts[id(p)] = str(jax.make_jaxpr(p.loss)(
        state["params"], b, jax.random.key(0), p.init_extra(state["params"], b), jnp.int32(0)))
    if texts[id(p)] != texts[id(pop.problem)]:
      raise ValueError(f"sweep member {space.label(pop.members[i])} computes a different "
                       "loss than the first (an axis changes more than initial values): run it "
                       "as a separate program")


def program(pop: Population, batch: dict):
  """jit(vmap(train step)) over (state [rows], batch [rows] or shared, seed [rows]) with the
  mesh's in/out shardings (members along pop, batches along data); state donated."""
  cfg = pop.configs[0]
  step = loop.make_train_step(pop.problem, pop.optimizer(0), cfg.seed,
                              cfg.train.nonfinite == "skip")

  def member_step(state, batch, seed):
    new, metrics = step(state, batch, seed)
    delta = jax.tree.map(jnp.subtract, new["params"], state["params"])
    return new, {**metrics, "update_norm": optax.tree.norm(delta)}  # ||theta' - theta||

  batch_axis = None if pop.shared_batch else 0
  rows = NamedSharding(pop.mesh, P(mesh_lib.POP))
  batch_sharding = jax.tree.map(lambda a: a.sharding, batch)
  return jax.jit(jax.vmap(member_step, in_axes=(0, batch_axis, 0)),
                 in_shardings=(rows, batch_sharding, rows), out_shardings=(rows, rows),
                 donate_argnums=0)


def train(
    pop: Population,
    num_steps: int | None = None,
    state: dict | None = None,
    data: Iterable[dict] | None = None,
    log_every: int = 0,
    rng_seeds: Sequence[int] | None = None,
) -> Result:
  """Train every member `num_steps` (default config.train.num_steps) steps in one program;
  member i's per-step random key is fold_in(key(rng_seeds[i]), step) (default: its seed)."""
  num_steps = pop.configs[0].train.num_steps if num_steps is None else num_steps
  state = initial_state(pop) if state is None else state
  start = int(mesh_lib.to_host(state["step"])[0])
  data = iter(batches(pop, start) if data is None else data)
  rows = placement.local_rows(pop.mesh, pop.rows)
  rng_seeds = pop.seeds if rng_seeds is None else rng_seeds
  seeds = placement.stacked({placement.member_of(r, pop.size): np.int32(
      rng_seeds[placement.member_of(r, pop.size)]) for r in rows}, pop.size, pop.mesh)
  history: list[dict] = []
  compile_s, t0 = 0.0, time.perf_counter()
  for k in range(num_steps):
    batch = next(data)
    if k == 0:
      c0 = time.perf_counter()
      key = str(jax.tree.map(lambda a: a.shape, batch))
      if key not in pop.compiled:  # a population trained in chunks compiles once
        pop.compiled[key] = program(pop, batch).lower(state, batch, seeds).compile()
      step = pop.compiled[key]
      compile_s = time.perf_counter() - c0
    state, metrics = step(state, batch, seeds)
    history.append(metrics)
    if log_every and ((k + 1) % log_every == 0 or k + 1 == num_steps):
      loss = mesh_lib.to_host(metrics["loss"])[:pop.size]
      if mesh_lib.is_primary():
        print(f"step {start + k + 1:6d}/{start + num_steps}  loss median {np.median(loss):.4g} "
              f"[{loss.min():.4g}, {loss.max():.4g}] over {pop.size} members", flush=True)
  jax.block_until_ready(state)
  train_s = time.perf_counter() - t0 - compile_s
  return Result(state, _gathered(history, pop), compile_s, train_s)


def _gathered(history: list[dict], pop: Population, chunk: int = 256) -> dict[str, np.ndarray]:
  """Per-step metrics [rows] -> {name: [steps, N]} on the host, padding rows dropped; stacked
  on the devices in chunks (one gather per chunk, not per step)."""
  if not history:
    return {}
  stack = jax.jit(lambda ms: jax.tree.map(lambda *xs: jnp.stack(xs), *ms),
                  out_shardings=NamedSharding(pop.mesh, P()))
  parts = [mesh_lib.to_host(stack(history[k:k + chunk]))
           for k in range(0, len(history), chunk)]
  return {n: np.concatenate([p[n] for p in parts])[:, :pop.size] for n in history[0]}


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
  """Each member's metrics (`problem.summarize`) over (max_batches of) an evaluation split;
  `params` stacked [rows, ...] on the mesh, the evaluation batches replicated."""
  problem = pop.problem
  rows = NamedSharding(pop.mesh, P(mesh_lib.POP))
  if "eval" not in pop.compiled:  # jitted once per population (a search evaluates often)
    pop.compiled["eval"] = (
        jax.jit(jax.vmap(problem.init_extra, in_axes=(0, None)), out_shardings=rows),
        jax.jit(jax.vmap(problem.eval_sums, in_axes=(0, None, 0)), out_shardings=rows))
  init_extra_fn, sums_fn = pop.compiled["eval"]
  totals: dict[str, np.ndarray] = {}
  extra = None
  for batch in itertools.islice(problem.eval_batches(split), max_batches):
    batch = mesh_lib.replicate(batch, pop.mesh)
    if extra is None:
      extra = init_extra_fn(params, batch)
    sums, extra = sums_fn(params, batch, extra)
    for name, value in mesh_lib.to_host(sums).items():
      totals[name] = totals.get(name, 0.0) + np.asarray(value, np.float64)
  return [problem.summarize({k: float(v[i]) for k, v in totals.items()})
          for i in range(pop.size)]

