"""Config variants trained at their defaults: runtime and validation result, one markdown row each.

Two tables: `--table=variants` (RUNS, the variants beyond each config's default) goes to
`docs/figures/config_table.md`; `--table=front_page` (FRONT_PAGE_RUNS, each config at its
defaults and the variants the front page quotes) to `docs/figures/front_page_table.md`.

Each run is `python -m seqlab.main --config=configs/<file>:<variant>` in its own workdir,
`--jobs` at a time (runtimes are wall clock with that many runs sharing the machine).
A run whose workdir already holds a result is not trained again, so an interrupted table
resumes; `--only` picks runs by substring.

    python experiments/config_table.py --workdir=runs/config_table            # ~30 min, 2 cores
    python experiments/config_table.py --table=front_page --workdir=runs/front_page  # ~20 min
    python experiments/config_table.py --only=copy.py:cell=clockwork
"""

import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

from seqlab import config as base

_WORKDIR = flags.DEFINE_string("workdir", "runs/config_table", "Where runs and results go.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Prepared datasets are cached here.")
_JOBS = flags.DEFINE_integer("jobs", 2, "Runs at a time.")
_ONLY = flags.DEFINE_string("only", "", "Only the runs whose name contains this.")
_TABLE = flags.DEFINE_enum("table", "variants", ["variants", "front_page"], "Which runs: "
                           "the variants beyond the defaults, or the front page's table.")
_OUT = flags.DEFINE_string("out", "", "The markdown table (default: docs/figures/"
                           "config_table.md, or front_page_table.md for --table=front_page).")

ROOT = Path(__file__).resolve().parent.parent
# The variants beyond each config's default; the defaults' rows are measured in the configs'
# docstrings already.
RUNS = ([f"copy.py:cell={cell}" for cell in base.CELL_PRESETS]
        + [f"copy.py:model={m}" for m in ("jordan", "bidirectional", "deep", "tdnn")]
        + [f"char_lstm.py:model={m}" for m in ("nplm", "tdnn", "transformer_lm")]
        + ["char_lstm.py:cell=lstm", "esn.py:series=narma10", "esn.py:series=sine_mixture",
           "classify.py:task=parity,cell=gru", "translation.py:cell=gru"])
# The front page's config table: each config at its defaults, and the variants it quotes.
FRONT_PAGE_RUNS = ["char_lstm.py", "word_lm.py", "copy.py:cell=lstm", "copy.py:cell=gru",
               "copy.py:cell=lstm,delay=100", "copy.py:cell=gru,delay=200",
               "adding.py:cell=irnn", "adding.py:cell=gru", "classify.py:task=parity",
               "classify.py:task=bracket_depth", "classify.py:task=digits,model=deep",
               "classify.py:task=digits,model=grid", "translation.py", "esn.py", "tree.py",
               "caption.py"]
METRICS = ("loss_vs_baseline", "accuracy", "bits_per_char", "perplexity", "nrmse", "bleu_beam",
           "exact_match", "loss")


def slug(run: str) -> str:
  return run.replace(".py:", "-").replace(",", "-").replace("=", "_")


def train(run: str) -> dict:
  """Train one run (or read its stored result): wall seconds and the last validation metrics."""
  workdir = Path(_WORKDIR.value) / slug(run)
  result_file = workdir / "result.json"
  if result_file.exists():
    return {**json.loads(result_file.read_text()), **last_validation(workdir)}
  start = time.perf_counter()
  proc = subprocess.run(
      [sys.executable, "-m", "seqlab.main", f"--config=configs/{run}", f"--workdir={workdir}",
       f"--config.task.data_dir={_DATA_DIR.value}"],
      cwd=ROOT, capture_output=True, text=True, check=False)
  seconds = time.perf_counter() - start
  if proc.returncode != 0:
    return {"run": run, "error": proc.stderr.strip().splitlines()[-1][:200]}
  result_file.write_text(json.dumps({"run": run, "seconds": seconds}))
  return {"run": run, "seconds": seconds, **last_validation(workdir)}


def last_validation(workdir: Path) -> dict:
  """The step and the METRICS of the run's last validation record."""
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  last = [r for r in records if r["split"] == "validation"][-1]
  return {"step": last["step"], "metrics": {k: last[k] for k in METRICS if k in last}}


def row(r: dict) -> str:
  """One markdown row: the run, its steps, runtime and last validation metrics (dated)."""
  if "error" in r:
    return f"| `{r['run']}` | - | failed | {r['error']} | {time.strftime('%Y-%m-%d')} |"
  shown = ", ".join(f"{k} {v:.3g}" for k, v in r["metrics"].items())
  return (f"| `{r['run']}` | {r['step']} | {r['seconds'] / 60:.1f} min | {shown} | "
          f"{time.strftime('%Y-%m-%d')} |")


def table(results: list[dict], runs: list[str], out: Path) -> str:
  """The table of `runs` in order: the rows measured now, and for the others (a run with
  --only) the row `out` holds already."""
  kept = {}
  if out.exists():
    for line in out.read_text().splitlines():
      if line.startswith("| `"):
        kept[line.split("`")[1]] = line
  fresh = {r["run"]: row(r) for r in results}
  lines = ["| config:variant | steps | runtime | validation | measured |", "|---|---|---|---|---|"]
  lines += [fresh.get(run) or kept[run] for run in runs if run in fresh or run in kept]
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  front_page = _TABLE.value == "front_page"
  every = FRONT_PAGE_RUNS if front_page else RUNS
  runs = [r for r in every if _ONLY.value in r]
  with concurrent.futures.ThreadPoolExecutor(_JOBS.value) as pool:
    results = list(pool.map(train, runs))
  for r in results:
    print(json.dumps(r), flush=True)
  out = Path(_OUT.value or f"docs/figures/{'front_page' if front_page else 'config'}_table.md")
  text = table(results, every, out)
  command = "python experiments/config_table.py" + (" --table=front_page" if front_page else "")
  out.write_text(f"`{command}` (each row: `python -m seqlab.main --config=configs/"
                 f"<config:variant>` at its config's defaults; runtimes with {_JOBS.value} runs "
                 "at a time on 2 shared CPU cores, data preparation included; `--only=...` "
                 "reruns the rows it names):\n\n" + text)
  print(text)


if __name__ == "__main__":
  app.run(main)
