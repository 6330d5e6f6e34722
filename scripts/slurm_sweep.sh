#!/usr/bin/env bash
# Example SLURM launch: one seqlab sweep across 2 machines x 4 GPUs, as one JAX program.
#
#   sbatch scripts/slurm_sweep.sh
#
# srun starts one process per task; jax.distributed.initialize() (seqlab/train/distributed.py)
# reads SLURM's variables (SLURM_NTASKS > 1), so no --coordinator_address flags are needed.
# The members spread over all 8 GPUs (config.mesh.pop=-1); each process builds only its own
# members, process 0 alone writes sweep.md / sweep.png. The output directory must be on a
# filesystem every node sees. For a single data-parallel run, use seqlab.main with
# --config.mesh.data=-1 and a --workdir on the shared filesystem: it resumes like one process.
#
# Optuna workers instead need no joint launch: start `python -m seqlab.sweep --search=optuna
# --storage=postgresql://USER@HOST/DB --study=NAME ...` as many independent jobs (e.g. a job
# array, one task each): they share the study through the database.

#SBATCH --job-name=seqlab-sweep
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=02:00:00
#SBATCH --output=%x-%j.out

set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"

srun .venv/bin/python -m seqlab.sweep \
  --config=configs/copy.py:cell=gru,delay=20 \
  --config.sweep.axes="(('optimizer.learning_rate', (1e-3, 2e-3, 3e-3, 5e-3)), ('seed', (0, 1, 2, 3, 4, 5, 6, 7)))" \
  --output_dir="runs/sweep-${SLURM_JOB_ID}"
