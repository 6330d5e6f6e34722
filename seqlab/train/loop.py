"""The training loop: a pure jitted `train_step` and a Python loop that only runs hooks.

    state = {step, params, opt_state, extra, skipped, max_grad_norm}
    train_step(state, batch) -> (state, metrics)       # pure, jitted, state donated

Per-step randomness is `fold_in(key(seed), step)`, and batches are a pure function of
(seed, step), so a run resumed from a checkpoint continues exactly as if it had never
stopped. A non-finite loss or gradient stops the run (naming the step and the largest
gradient norm seen) before anything is saved, or, with `train.nonfinite = "skip"`,
leaves params and optimizer untouched for that step and counts it.

The run is data-parallel over the mesh (config.mesh.data devices, every process's): the state
replicated, each batch split along its batch dimension; only process 0 writes files.
"""

import itertools
import logging

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from seqlab.train import checkpoint, optim, writers
from seqlab.train import mesh as mesh_lib
from seqlab.train.problem import Problem


class NonFiniteError(FloatingPointError):
  """The loss or the gradients became NaN or infinite."""


def make_train_step(problem: Problem, optimizer: optax.GradientTransformation, seed: int,
                    skip_nonfinite: bool):
  """The pure train step for `problem`; `seed` may also be given per call (a vmapped sweep
  passes each member's seed as a traced value)."""

  def train_step(state: dict, batch: dict, seed=seed) -> tuple[dict, dict]:
    rng = jax.random.fold_in(jax.random.key(seed), state["step"])
    grad_fn = jax.value_and_grad(problem.loss, has_aux=True)
    (loss, (metrics, extra)), grads = grad_fn(
        state["params"], batch, rng, state["extra"], state["step"])
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    if skip_nonfinite:  # keep the old params, optimizer state and carried state
      keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
      params = keep(params, state["params"])
      opt_state = keep(opt_state, state["opt_state"])
      extra = keep(extra, state["extra"])
    new_state = {
        "step": state["step"] + 1,
        "params": params,
        "opt_state": opt_state,
        "extra": extra,
        "skipped": state["skipped"] + (~finite).astype(jnp.int32),
        "max_grad_norm": jnp.maximum(state["max_grad_norm"],
                                     jnp.where(jnp.isfinite(grad_norm), grad_norm, 0.0)),
        "first_nonfinite": jnp.where(
            (state["first_nonfinite"] < 0) & ~finite, state["step"] + 1,
            state["first_nonfinite"]),
    }
    metrics = {"loss": loss, "grad_norm": grad_norm, **metrics}
    return new_state, metrics

  return train_step


def initial_state(problem: Problem, optimizer, seed: int, batch: dict) -> dict:
  """Step 0: fresh params, optimizer state and carried state."""
  params = problem.init(jax.random.key(seed), batch)
  state = {
      "step": jnp.int32(0),
      "params": params,
      "opt_state": optimizer.init(params),
      "extra": problem.init_extra(params, batch),
      "skipped": jnp.int32(0),
      "max_grad_norm": jnp.float32(0.0),
      "first_nonfinite": jnp.int32(-1),  # the first step with a non-finite loss/gradient
  }
  # Distinct buffers for every leaf (an LSTM's h_0 and c_0 may share one): the state is donated.
  return jax.tree.map(lambda a: jnp.array(a, copy=True), state)


def evaluate(problem: Problem, eval_fn, params, split: str, max_batches: int | None,
             mesh=None) -> dict:
  """The problem's metrics over (up to max_batches of) an evaluation split (each batch
  replicated over `mesh` when given)."""
  totals: dict[str, float] = {}
  extra = None
  for batch in itertools.islice(problem.eval_batches(split), max_batches):
    if mesh is not None:
      batch = mesh_lib.replicate(batch, mesh)
    if extra is None:
      extra = problem.init_extra(params, batch)
    sums, extra = eval_fn(params, batch, extra)
    for name, value in sums.items():
      totals[name] = totals.get(name, 0.0) + float(value)
  return problem.summarize(totals)


def train(problem: Problem, config, workdir: str, saved_config=None) -> dict:
  """Train (or resume) `problem` as config.train says; returns the final state. The workdir
  keeps `saved_config` (default `config`): a curriculum stage passes the whole run's."""
  cfg = config.train
  mesh = mesh_lib.make(config.mesh, sweep=False)
  primary = mesh_lib.is_primary()
  if primary:
    print(mesh_lib.describe(mesh), flush=True)
  optimizer = optim.make_optimizer(config.optimizer)
  ckpt = checkpoint.Checkpoints(workdir)
  ckpt.check_config((saved_config or config).to_dict())
  metrics_writer = writers.MetricsWriter(workdir, enabled=primary)

  first_batch = next(problem.train_batches(config.seed, 0))
  replicated = NamedSharding(mesh, P())
  state = mesh_lib.replicate(initial_state(problem, optimizer, config.seed, first_batch), mesh)
  start = ckpt.latest_step()
  if start is not None:  # the newest intact checkpoint, or train.resume_step's
    start, state = ckpt.restore_intact(state, cfg.resume_step or None)
    metrics_writer.truncate_after(start)
    logging.info("resumed from step %d", start)
  start = int(state["step"])

  batch_sharding = jax.tree.map(lambda a: a.sharding,
                                mesh_lib.shard_batch(first_batch, mesh))
  train_step = jax.jit(
      make_train_step(problem, optimizer, config.seed, cfg.nonfinite == "skip"),
      in_shardings=(replicated, batch_sharding), out_shardings=replicated, donate_argnums=0,
  )
  eval_fn = jax.jit(problem.eval_sums, out_shardings=replicated)
  progress = writers.Progress(cfg.num_steps, start)

  def check_finite(state):
    if cfg.nonfinite == "stop" and int(state["first_nonfinite"]) >= 0:
      last = ckpt.latest_step()
      kept = (f"The last good checkpoint (step {last}) is intact." if last is not None
              else "No checkpoint had been written yet.")
      raise NonFiniteError(
          f"non-finite loss or gradients at step {int(state['first_nonfinite'])}; "
          f"largest finite gradient norm seen: {float(state['max_grad_norm']):.4g}. {kept} "
          "Lower optimizer.learning_rate, set optimizer.clip_norm, or set "
          "train.nonfinite='skip'."
      )

  batches = problem.train_batches(config.seed, start)
  for step in range(start + 1, cfg.num_steps + 1):
    state, metrics = train_step(state, mesh_lib.shard_batch(next(batches), mesh))
    if step % cfg.log_every == 0 or step == cfg.num_steps:
      check_finite(state)
      values = {k: float(v) for k, v in metrics.items()}
      if cfg.nonfinite == "skip":
        values["skipped"] = int(state["skipped"])
      metrics_writer.write(step, "train", values)
      if primary:
        print(progress.line(step, {"loss": values["loss"]}), flush=True)
    if step % cfg.eval_every == 0 or step == cfg.num_steps:
      check_finite(state)
      results = evaluate(problem, eval_fn, state["params"], "validation", cfg.eval_batches,
                         mesh)
      metrics_writer.write(step, "validation", results)
      if primary:
        print("  validation: " + "  ".join(f"{k} {v:.4f}" for k, v in results.items()),
              flush=True)
    if step % cfg.checkpoint_every == 0 or step == cfg.num_steps:
      check_finite(state)
      ckpt.save(step, state)

  if primary:
    writers.plot_learning_curves(metrics_writer.read(), f"{workdir}/learning_curves.png")
  metrics_writer.close()
  ckpt.close()
  return state
