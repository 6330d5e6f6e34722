"""Many processes (machines) as one JAX program, initialised from flags or a detected cluster.

`initialize()` calls `jax.distributed.initialize` with what the flags or the cluster say.
Import this module for the flags; call `initialize()` first thing in main.

    python -m seqlab.main ... --coordinator_address=host0:1234 --num_processes=2 --process_id=0
    srun python -m seqlab.main ...    # SLURM (and Open MPI) are detected: no flags needed

Afterwards `jax.devices()` lists every process's devices; meshes span them all (train/mesh.py).
"""

import os

import jax
from absl import flags

_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for a multi-process run "
    "(jax.distributed); detected under SLURM and Open MPI.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes of a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (0: writes files).")

# Environment variables of the launchers jax.distributed detects, with the process count.
CLUSTER_SIZE_VARIABLES = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


def detected_cluster() -> str | None:
  """The launcher variable that says more than one process runs (SLURM, Open MPI), or None."""
  for name in CLUSTER_SIZE_VARIABLES:
    if int(os.environ.get(name, "1") or "1") > 1:
      return name
  return None


def initialize() -> None:
  """Join the processes of this run: with the flags if given, else the detected cluster's
  settings; a lone process does nothing."""
  given = {"coordinator_address": _COORDINATOR.value, "num_processes": _NUM_PROCESSES.value,
           "process_id": _PROCESS_ID.value}
  if any(v is not None for v in given.values()):
    missing = [k for k, v in given.items() if v is None]
    if missing and not detected_cluster():
      raise ValueError(f"a multi-process run needs --coordinator_address, --num_processes and "
                       f"--process_id (or a SLURM/Open MPI launch); missing: {missing}")
    jax.distributed.initialize(**{k: v for k, v in given.items() if v is not None})
  elif detected_cluster():
    jax.distributed.initialize()
