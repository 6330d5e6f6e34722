"""A population on 1 device vs sharded over several: seconds per member-step, side by side.

    python scripts/bench_sweep_devices.py --members=32 --devices=1,2 --steps=20 --repeats=3

Each case runs in its own process (the device count is fixed when JAX starts:
JAX_NUM_CPU_DEVICES forces host devices on a CPU); cases alternate, compile time apart,
medians over the repeats. The model: configs/copy.py's GRU (H=64, delay 20, batch 32).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(members: int, steps: int, data_dir: str) -> dict:
  """One timing in this process: the population trained `steps` steps after compiling."""
  import itertools

  import jax

  from seqlab import config as base
  from seqlab import sweep
  from seqlab.sweep import studies
  from seqlab.train import mesh as mesh_lib
  config = studies.with_fields(base.load_file(ROOT / "configs" / "copy.py", "cell=gru,delay=20"),
                               {"task.data_dir": data_dir},
                               axes=(("seed", tuple(range(members))),))
  pop = sweep.build(config)
  data = list(itertools.islice(sweep.batches(pop, 0), steps))
  result = sweep.train(pop, steps, data=data)
  return {"mesh": mesh_lib.describe(pop.mesh), "devices": jax.device_count(),
          "ms_per_member_step": 1e3 * result.train_s / (steps * members),
          "compile_s": result.compile_s}


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--members", type=int, default=32)
  p.add_argument("--devices", default="1,2")
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--data_dir", default="data")
  p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.worker:
    print(json.dumps(worker(args.members, args.steps, args.data_dir)))
    return
  counts = [int(d) for d in args.devices.split(",")]
  runs: dict[int, list[dict]] = {d: [] for d in counts}
  for _ in range(args.repeats):
    for d in counts:  # alternate the cases
      env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(d)}
      out = subprocess.run([sys.executable, __file__, "--worker=1", f"--members={args.members}",
                            f"--steps={args.steps}", f"--data_dir={args.data_dir}"],
                           cwd=ROOT, env=env, capture_output=True, text=True, check=True)
      runs[d].append(json.loads(out.stdout.strip().splitlines()[-1]))
  base = statistics.median(r["ms_per_member_step"] for r in runs[counts[0]])
  print(f"{args.members} members, {args.steps} steps, medians of {args.repeats}")
  print("| devices | mesh | ms per member-step | speed-up | compile s |\n|---|---|---|---|---|")
  for d in counts:
    ms = statistics.median(r["ms_per_member_step"] for r in runs[d])
    cs = statistics.median(r["compile_s"] for r in runs[d])
    spread = [round(r["ms_per_member_step"], 3) for r in runs[d]]
    print(f"| {d} | {runs[d][0]['mesh']} | {ms:.3f} {spread} | {base / ms:.2f} | {cs:.1f} |")


if __name__ == "__main__":
  main()
