"""The programs the scale tests compare, run in a subprocess (forced host devices, or one of
several processes joined by jax.distributed): a 6-member sweep and a data-parallel run of a
tiny copy-task GRU. Results go to an .npz (process 0 only).

    JAX_NUM_CPU_DEVICES=4 python tests/scale_worker.py OUT_DIR DATA_DIR [host:port N i]

writes OUT_DIR/sweep.npz and OUT_DIR/run.npz (the run's workdir: OUT_DIR/run).
"""

import sys

import ml_collections
import numpy as np

from seqlab import config as base

SWEEP_AXES = (("seed", (0, 1, 2, 3, 4, 5)),
              ("optimizer.learning_rate", (1e-2, 2e-2, 3e-2, 1e-2, 2e-2, 3e-2)))


def tiny_config(data_dir: str, axes=(), **train) -> ml_collections.ConfigDict:
  """Copy task (delay 3, 3 symbols of 4) with a GRU of 8 units: seconds to compile and train."""
  c = base.base_config()
  c.problem = base.problem("tagging")
  c.task.name = "copy"
  c.task.data_dir = str(data_dir)
  c.task.options.update(alphabet_size=4, num_symbols=3, delay=3, num_train=64,
                        num_validation=16, num_test=16)
  c.model = base.rnn_model("gru", hidden_size=8, embed_size=4)
  c.optimizer.learning_rate = 1e-2
  c.train.update(batch_size=8, num_steps=6, log_every=2, eval_every=6, eval_batches=2,
                 checkpoint_every=6)
  c.train.update(train)
  c.sweep.axes, c.sweep.mode = axes, "zip"
  c.lock()
  return c


def run_sweep(data_dir: str) -> dict[str, np.ndarray]:
  """The sweep's final params (members stacked), loss history and validation loss."""
  from seqlab import sweep
  from seqlab.train import mesh as mesh_lib
  pop = sweep.build(tiny_config(data_dir, SWEEP_AXES))
  print(mesh_lib.describe(pop.mesh), f"rows {pop.rows}", flush=True)
  result = sweep.train(pop)
  finals = sweep.evaluate(pop, result.state["params"], "validation", 2)
  params = mesh_lib.to_host(result.state["params"])
  flat = {f"param{k}": a[:pop.size] for k, a in enumerate(_leaves(params))}
  return {**flat, "loss": result.history["loss"], "grad_norm": result.history["grad_norm"],
          "valid_loss": np.array([f["loss"] for f in finals]), "rows": np.array(pop.rows)}


def run_single(data_dir: str, workdir: str, data: int) -> dict[str, np.ndarray]:
  """A single run over config.mesh.data=`data` devices: final params and logged losses."""
  import json

  from seqlab import problems
  from seqlab.train import loop
  from seqlab.train import mesh as mesh_lib
  config = tiny_config(data_dir).unlock()
  config.mesh.data = data
  state = loop.train(problems.build_problem(config), config, workdir)
  params = mesh_lib.to_host(state["params"])
  out = {f"param{k}": a for k, a in enumerate(_leaves(params))}
  if mesh_lib.is_primary():
    lines = [json.loads(x) for x in open(f"{workdir}/metrics.jsonl")]
    out["train_loss"] = np.array([r["loss"] for r in lines if r["split"] == "train"])
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
  sweep = run_sweep(data_dir)
  run = run_single(data_dir, f"{out}/run", data=-1)
  if jax.process_index() == 0:
    np.savez(f"{out}/sweep.npz", **sweep)
    np.savez(f"{out}/run.npz", **run)


if __name__ == "__main__":
  main(sys.argv)
