"""The programs the scale tests compare, run in a subprocess (forced host devices, or one of
several processes joined by jax.distributed): a 6-member sweep, the same members under
population-based training and a data-parallel run of a tiny copy-task GRU, each with Adam and
with plain SGD. Results go to .npz files (process 0
only).

    JAX_NUM_CPU_DEVICES=4 python tests/scale_worker.py OUT_DIR DATA_DIR [host:port N i]

writes OUT_DIR/sweep_OPT.npz, pbt_OPT.npz and run_OPT.npz (the run's workdir: OUT_DIR/run_OPT) for
each OPT of LEARNING_RATES.
"""

import sys

import ml_collections
import numpy as np

from seqlab import config as base

# Each optimizer with a learning rate that trains stably. Adam hardly notices gradients scaled
# by a constant (a sum over devices instead of a mean: ~3e-4 relative in the final params);
# plain SGD's steps scale with them.
LEARNING_RATES = {"adam": 1e-2, "sgd": 0.1}


def sweep_axes(learning_rate: float) -> tuple:
  """6 members: seeds 0-5 zipped with 1x, 2x, 3x, 1x, 2x, 3x `learning_rate`."""
  return (("seed", (0, 1, 2, 3, 4, 5)),
          ("optimizer.learning_rate", tuple(learning_rate * k for k in (1, 2, 3, 1, 2, 3))))


def tiny_config(data_dir: str, axes=(), optimizer="adam", **train) -> ml_collections.ConfigDict:
  """Copy task (delay 3, 3 symbols of 4) with a GRU of 8 units: seconds to compile and train;
  `optimizer` (a key of LEARNING_RATES) with its learning rate."""
  c = base.base_config()
  c.problem = base.problem("tagging")
  c.task.name = "copy"
  c.task.data_dir = str(data_dir)
  c.task.options.update(alphabet_size=4, num_symbols=3, delay=3, num_train=64,
                        num_validation=16, num_test=16)
  c.model = base.rnn_model("gru", hidden_size=8, embed_size=4)
  c.optimizer.name, c.optimizer.learning_rate = optimizer, LEARNING_RATES[optimizer]
  c.train.update(batch_size=8, num_steps=6, log_every=2, eval_every=6, eval_batches=2,
                 checkpoint_every=6)
  c.train.update(train)
  c.sweep.axes, c.sweep.mode = axes, "zip"
  c.lock()
  return c


def run_sweep(data_dir: str, optimizer: str) -> dict[str, np.ndarray]:
  """The sweep's final params (members stacked), loss and gradient-norm histories and
  validation loss."""
  from seqlab import sweep
  from seqlab.train import mesh as mesh_lib
  config = tiny_config(data_dir, sweep_axes(LEARNING_RATES[optimizer]), optimizer)
  pop = sweep.build(config)
  print(mesh_lib.describe(pop.mesh), f"rows {pop.rows}", flush=True)
  result = sweep.train(pop)
  finals = sweep.evaluate(pop, result.state["params"], "validation", 2)
  params = mesh_lib.to_host(result.state["params"])
  flat = {f"param{k}": a[:pop.size] for k, a in enumerate(_leaves(params))}
  return {**flat, "loss": result.history["loss"], "grad_norm": result.history["grad_norm"],
          "valid_loss": np.array([f["loss"] for f in finals]), "rows": np.array(pop.rows)}


def run_pbt(data_dir: str, optimizer: str) -> dict[str, np.ndarray]:
  """Population-based training of the sweep's 6 members (rows padded to the pop axis), the
  learning rate mutable: every 2 steps the worse half copies the better half, across devices.
  Final params, loss and grad-norm histories, validation scores and who copied whom."""
  from seqlab.sweep import pbt, pbt_space
  from seqlab.train import mesh as mesh_lib
  lr = LEARNING_RATES[optimizer]
  config = tiny_config(data_dir, sweep_axes(lr), optimizer).unlock()
  config.pbt.update(size=6, ready=2, quantile=0.5, eval_batches=2, hyperparameters=(
      ("optimizer.learning_rate", "log_uniform", lr / 10, lr * 10),))
  opts = pbt_space.options(config)
  pop = pbt.build(config, opts.names)
  record = (result := pbt.train(pop, config.train.num_steps, opts)).record
  params = mesh_lib.to_host(result.state["params"])
  flat = {f"param{k}": a[:pop.size] for k, a in enumerate(_leaves(params))}
  return {**flat, "loss": record.history["loss"], "grad_norm": record.history["grad_norm"],
          "scores": np.array(record.scores), "parents": np.array(record.parents),
          "learning_rate": np.array([v["learning_rate"] for v in record.values])}


def run_single(data_dir: str, workdir: str, data: int, optimizer: str) -> dict[str, np.ndarray]:
  """A single run over config.mesh.data=`data` devices: final params, and the loss and
  gradient norm of its metrics.jsonl train lines."""
  import json

  from seqlab import problems
  from seqlab.train import loop
  from seqlab.train import mesh as mesh_lib
  config = tiny_config(data_dir, optimizer=optimizer).unlock()
  config.mesh.data = data
  state = loop.train(problems.build_problem(config), config, workdir)
  params = mesh_lib.to_host(state["params"])
  out = {f"param{k}": a for k, a in enumerate(_leaves(params))}
  if mesh_lib.is_primary():
    lines = [json.loads(x) for x in open(f"{workdir}/metrics.jsonl")]
    for name in ("loss", "grad_norm"):
      out[f"train_{name}"] = np.array([r[name] for r in lines if r["split"] == "train"])
  return out


def _leaves(tree) -> list[np.ndarray]:
  import jax
  return [np.asarray(a) for a in jax.tree.leaves(tree)]


def main(argv: list[str]) -> None:
  out, data_dir, *cluster = argv[1:]
  import jax
  if cluster:
    address, n, i = cluster
    jax.distributed.initialize(address, int(n), int(i))
  for optimizer in LEARNING_RATES:
    sweep = run_sweep(data_dir, optimizer)
    run = run_single(data_dir, f"{out}/run_{optimizer}", data=-1, optimizer=optimizer)
    population_based = run_pbt(data_dir, optimizer)
    if jax.process_index() == 0:
      np.savez(f"{out}/pbt_{optimizer}.npz", **population_based)
      np.savez(f"{out}/sweep_{optimizer}.npz", **sweep)
      np.savez(f"{out}/run_{optimizer}.npz", **run)


if __name__ == "__main__":
  main(sys.argv)
