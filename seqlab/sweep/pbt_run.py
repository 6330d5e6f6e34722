"""Population-based training from a config: resumable, its lineage written out, replayable.

`python -m seqlab.sweep --search=pbt` runs it; `--replay=N` replays one member's schedule.

    output_dir/
      checkpoints/<step>     the whole population's state after each round (orbax, digested)
      pbt_records/<step>.npz the record beside it (scores, parents, values, seeds, history)
      lineage.jsonl          one line per member and exploit: step, member, parent, scores,
                             old and new values, the copy's random seed
      pbt.md                 the members' final values and scores, the winner's schedule
      winner.json            the winner's schedule: chunk by chunk its row, seed and values
      pbt_schedules.png      each hyperparameter over the steps, every member (winner bold)
      pbt_family.png         the family tree: who copied whom at each round
      replay_<m>.json/.png   --replay=<m>: member m's schedule trained again, against its curve

A rerun of the same command resumes from the newest intact checkpoint and ends bit-identical
to an uninterrupted run.
"""

import dataclasses
import io
import json
from pathlib import Path

import matplotlib.pyplot as plt
import ml_collections
import numpy as np

from seqlab.analysis import report
from seqlab.sweep import pbt, pbt_space, population, space
from seqlab.train import checkpoint
from seqlab.train import mesh as mesh_lib

RECORDS = "pbt_records"


def build(config: ml_collections.ConfigDict) -> tuple[population.Population, pbt_space.Options]:
  """The population config.pbt describes and its checked options."""
  opts = pbt_space.options(config)
  return pbt.build(config, opts.names, pbt_space.initial_members(config, opts)), opts


def run(config: ml_collections.ConfigDict, output_dir: str) -> pbt.Result:
  """Train (or resume) config.pbt's population to config.train.num_steps, checkpointing the
  state and the record after every round; write the lineage, tables and figures."""
  pop, opts = build(config)
  if mesh_lib.is_primary():
    print(mesh_lib.describe(pop.mesh) + f"; {pop.size} members in {pop.rows} rows", flush=True)
  ckpt = checkpoint.Checkpoints(output_dir, max_to_keep=2)
  ckpt.check_config(config.to_dict())
  state, record = None, None
  if ckpt.latest_step() is not None:
    step, state = ckpt.restore_intact(population.initial_state(pop))
    record = load_record(output_dir, step)
    print(f"resuming population-based training from step {step}", flush=True)

  def on_round(state, record):
    save_record(output_dir, record)  # first: a checkpoint never lacks its record
    ckpt.save(record.step, state)
    prune_records(output_dir, set(ckpt.steps()))
    best = int(np.argmin(signed(record.scores[-1], opts)))
    moved = sum(p != i for i, p in enumerate(record.parents[-1]))
    print(f"step {record.step:6d}  {opts.metric} best {record.scores[-1][best]:.4g} (member "
          f"{best}), median {np.median(record.scores[-1]):.4g}; {moved} members copied",
          flush=True)

  result = pbt.train(pop, config.train.num_steps, opts, state, record, on_round)
  ckpt.close()
  if mesh_lib.is_primary():
    write_outputs(output_dir, result.record, opts)
  return result


def signed(scores, opts: pbt_space.Options) -> np.ndarray:
  """Scores where lower is better (NaN last)."""
  s = np.asarray(scores, np.float64) * (-1.0 if opts.maximize else 1.0)
  return np.where(np.isnan(s), np.inf, s)


def winner(record: pbt.Record, opts: pbt_space.Options) -> int:
  """The member with the best last validation score."""
  return int(np.argmin(signed(record.scores[-1], opts)))


def save_record(output_dir: str, record: pbt.Record) -> None:
  """pbt_records/<step>.npz: the history arrays and the rest as JSON, replaced whole."""
  folder = Path(output_dir) / RECORDS
  folder.mkdir(parents=True, exist_ok=True)
  fields = {k: v for k, v in dataclasses.asdict(record).items() if k != "history"}
  buffer = io.BytesIO()
  np.savez(buffer, record=np.asarray(json.dumps(fields)),
           **{f"history.{n}": v for n, v in record.history.items()})
  partial = folder / f"{record.step}.npz.tmp"
  partial.write_bytes(buffer.getvalue())
  partial.replace(folder / f"{record.step}.npz")


def prune_records(output_dir: str, keep: set[int]) -> None:
  """Remove the records whose checkpoints orbax no longer keeps."""
  for old in (Path(output_dir) / RECORDS).glob("*.npz"):
    if int(old.stem) not in keep:
      old.unlink()


def load_record(output_dir: str, step: int | None = None) -> pbt.Record:
  """The record saved at `step` (default: the newest)."""
  folder = Path(output_dir) / RECORDS
  saved = sorted(int(p.stem) for p in folder.glob("*.npz")) if folder.exists() else []
  step = saved[-1] if step is None and saved else step
  if step not in saved:
    raise ValueError(f"{output_dir} holds no PBT record of step {step} ({folder}: "
                     f"{saved or 'none'}); train it with --search=pbt first")
  with np.load(folder / f"{step}.npz") as f:
    fields = json.loads(str(f["record"]))
    history = {k.split(".", 1)[1]: f[k] for k in f.files if k.startswith("history.")}
  return pbt.Record(**fields, history=history)


def write_outputs(output_dir: str, record: pbt.Record, opts: pbt_space.Options) -> None:
  """lineage.jsonl, pbt.md, winner.json and the two figures."""
  out = Path(output_dir)
  report.write_text(output_dir, "lineage.jsonl",
                    "".join(json.dumps(e) + "\n" for e in record.lineage))
  best = winner(record, opts)
  plan = pbt.schedule(record, best)
  summary = {"member": best, opts.metric: record.scores[-1][best], "schedule": plan}
  report.write_text(output_dir, "winner.json", json.dumps(summary, indent=1))
  report.write_text(output_dir, "pbt.md", table(record, opts))
  report.save_figure(schedules_figure(record, opts), out, "pbt_schedules.png")
  report.save_figure(family_figure(record, opts), out, "pbt_family.png")


def table(record: pbt.Record, opts: pbt_space.Options) -> str:
  """Markdown: each member's final values and score, then the winner's schedule."""
  what = ("population-based training" if opts.exploit
          else "random search (exploit and explore off)")
  copies = sum(p != i for round_ in record.parents for i, p in enumerate(round_))
  head = (f"{what}: {len(record.scores[0])} members, {record.step} steps, evaluated every "
          f"{opts.ready} steps on validation {opts.metric}; {copies} copies\n\n")
  rows = [{opts.metric: record.scores[-1][i], "copies into it":
           sum(r[i] != i for r in record.parents)} for i in range(len(record.scores[-1]))]
  members = [{n: record.values[-1][n][i] for n in opts.names} for i in range(len(rows))]
  best = winner(record, opts)
  plan = pbt.schedule(record, best)
  steps = "\n".join(f"| {c['start']}-{c['end']} | {c['row']} | "
                    + " | ".join(f"{c[n]:.4g}" for n in opts.names) + " |" for c in plan)
  return (head + space.table(members, rows) + f"\n\nwinner: member {best}; its schedule "
          f"(the row it trained on in each chunk):\n\n| steps | row | "
          + " | ".join(opts.names) + " |\n|---|---|" + "---|" * len(opts.names) + "\n"
          + steps + "\n")


def schedules_figure(record: pbt.Record, opts: pbt_space.Options):
  """One panel per hyperparameter: every member's value over the steps, the winner's line
  of ancestors in black."""
  fig, axes = plt.subplots(len(opts.names) + 1, 1, figsize=(7, 2.4 * (len(opts.names) + 1)),
                           sharex=True, squeeze=False)
  starts = [s for s, _ in record.chunks()] + [record.step]
  size, best = len(record.scores[0]), winner(record, opts)
  line = pbt.line_of(record, best)
  for ax, name in zip(axes[:, 0], opts.names, strict=False):
    for i in range(size):
      v = [record.values[k][name][i] for k in range(len(starts) - 1)]
      ax.step(starts, v + v[-1:], where="post", lw=0.7, alpha=0.6)
    v = [record.values[k][name][r] for k, r in enumerate(line)]
    ax.step(starts, v + v[-1:], where="post", lw=2, color="black", label=f"winner {best}")
    ax.set_yscale("log")
    ax.set_ylabel(name)
    ax.legend(fontsize=7)
  ax = axes[-1, 0]
  ax.plot(record.ends, record.scores, lw=0.7, alpha=0.6)
  ax.plot(record.ends, [record.scores[k][r] for k, r in enumerate(line)], lw=2, color="black")
  ax.set_ylabel(f"validation {opts.metric}")
  ax.set_yscale("log" if np.nanmin(record.scores) > 0 else "linear")
  ax.set_xlabel("step")
  fig.tight_layout()
  return fig


def family_figure(record: pbt.Record, opts: pbt_space.Options):
  """Rounds left to right, members top to bottom: a line from parent to child at each copy,
  the winner's line of ancestors in black."""
  size, rounds = len(record.scores[0]), len(record.ends)
  fig, ax = plt.subplots(figsize=(max(5, 0.5 * rounds + 2), max(3, 0.35 * size + 1)))
  for k, parents in enumerate(record.parents[:-1]):
    for i, p in enumerate(parents):
      ax.plot([k, k + 1], [p, i], color="C0" if p != i else "0.8",
              lw=1.2 if p != i else 0.6)
  line = pbt.line_of(record, winner(record, opts))
  ax.plot(range(rounds), line, color="black", lw=2.5, label="winner's ancestors")
  scores = signed(record.scores, opts)
  ax.scatter(np.repeat(np.arange(rounds), size), np.tile(np.arange(size), rounds),
             c=np.argsort(np.argsort(scores, axis=1), axis=1).ravel(), cmap="viridis_r", s=18,
             zorder=3)
  ax.set_xlabel("round (evaluation point)")
  ax.set_ylabel("member")
  ax.invert_yaxis()
  ax.legend(fontsize=7)
  ax.set_title("who copied whom (colour: rank, bright = best)", fontsize=9)
  fig.tight_layout()
  return fig


def replay(config: ml_collections.ConfigDict, output_dir: str, member: int) -> dict:
  """Member `member`'s schedule from output_dir's newest record trained again from scratch;
  writes replay_<member>.json and .png and returns the comparison with the recorded curve."""
  pop, opts = build(config)
  record = load_record(output_dir)
  if not 0 <= member < pop.size:
    raise ValueError(f"--replay={member}: the population has members 0..{pop.size - 1}")
  got = pbt.replay(pop, record, member)["loss"]
  want = pbt.curve(record, member)
  scale = np.maximum(np.abs(want), 1e-12)
  summary = {"member": member, "steps": len(got), "schedule": pbt.schedule(record, member),
             "max_relative_difference": float(np.max(np.abs(got - want) / scale)),
             "replay_loss": got.tolist(), "recorded_loss": want.tolist()}
  if mesh_lib.is_primary():
    report.write_text(output_dir, f"replay_{member}.json", json.dumps(summary))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(np.arange(1, len(want) + 1), want, lw=2, label=f"member {member} in the population")
    ax.plot(np.arange(1, len(got) + 1), got, lw=0.8, ls="--", label="replayed")
    for c in summary["schedule"][1:]:
      ax.axvline(c["start"], color="0.85", lw=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    report.save_figure(fig, Path(output_dir), f"replay_{member}.png")
  return summary
