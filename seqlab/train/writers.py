"""What a run writes: metrics, a console progress line, and learning curves.

Metrics go to JSON lines and TensorBoard events; the progress line shows step, loss, steps/s
and ETA; the learning curves are PNG files."""

import json
import time
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboardX import SummaryWriter  # noqa: E402


class MetricsWriter:
  """workdir/metrics.jsonl + TensorBoard events in workdir/tensorboard; writes nothing when
  not `enabled` (the processes other than process 0 of a multi-process run)."""

  def __init__(self, workdir: str | Path, enabled: bool = True):
    self.workdir, self.enabled = Path(workdir), enabled
    self.path = self.workdir / "metrics.jsonl"
    self.tensorboard = SummaryWriter(str(self.workdir / "tensorboard")) if enabled else None

  def truncate_after(self, step: int) -> None:
    """Forget lines logged after `step` (written after the checkpoint a resume starts from)."""
    if not self.enabled or not self.path.exists():
      return
    keep = [line for line in self.path.read_text().splitlines()
            if line and json.loads(line)["step"] <= step]
    self.path.write_text("".join(line + "\n" for line in keep))

  def write(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
    """One JSON line {"step", "split", **metrics} and one scalar per metric."""
    if not self.enabled:
      return
    record = {"step": step, "split": split, **{k: float(v) for k, v in metrics.items()}}
    with self.path.open("a") as f:
      f.write(json.dumps(record) + "\n")
    for name, value in metrics.items():
      self.tensorboard.add_scalar(f"{split}/{name}", float(value), step)
    self.tensorboard.flush()

  def read(self) -> list[dict]:
    """All records written so far."""
    if not self.path.exists():
      return []
    return [json.loads(line) for line in self.path.read_text().splitlines() if line]

  def close(self) -> None:
    if self.enabled:
      self.tensorboard.close()


class Progress:
  """A console line per log step: step, loss, steps/s and the ETA."""

  def __init__(self, total_steps: int, start_step: int):
    self.total, self.start_step = total_steps, start_step
    self.started = time.perf_counter()

  def line(self, step: int, metrics: Mapping[str, float]) -> str:
    done = step - self.start_step
    rate = done / max(time.perf_counter() - self.started, 1e-9)
    eta = (self.total - step) / rate if rate > 0 else float("inf")
    shown = "  ".join(f"{k} {float(v):.4f}" for k, v in metrics.items())
    return f"step {step:6d}/{self.total}  {shown}  {rate:6.1f} steps/s  ETA {eta:5.0f}s"


def plot_learning_curves(records: list[dict], path: str | Path) -> None:
  """One panel per metric, a line per split, against step."""
  names = sorted({k for r in records for k in r if k not in ("step", "split")})
  if not names:
    return
  fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3), squeeze=False)
  for ax, name in zip(axes[0], names, strict=True):
    for split in sorted({r["split"] for r in records}):
      points = [(r["step"], r[name]) for r in records if r["split"] == split and name in r]
      if points:
        ax.plot(*zip(*points, strict=True), label=split, marker="." if len(points) < 30 else None)
    ax.set_title(name)
    ax.set_xlabel("step")
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
