"""The demo and the experiment scripts run end to end and print what they promise."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> str:
  result = subprocess.run(
      [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
  )
  assert result.returncode == 0, result.stderr
  return result.stdout


def test_demo_loss_falls_below_the_memoryless_baseline():
  out = _run("-m", "seqlab.demo", "--config=configs/demo.py", "--config.train.num_steps=800",
             "--config.cell.hidden_size=32")
  first, last, baseline = map(float, re.search(
      r"loss fell from ([\d.]+) to ([\d.]+) nats per step \(memoryless baseline ([\d.]+)\)", out
  ).groups())
  assert last < baseline < first


def test_demo_rejects_an_unknown_cell_option():
  result = subprocess.run(
      [sys.executable, "-m", "seqlab.demo", "--config=configs/demo.py",
       "--config.cell.name=lstn", "--config.train.num_steps=1"],
      cwd=ROOT, capture_output=True, text=True, timeout=120,
  )
  assert result.returncode != 0
  assert "unknown cell 'lstn'" in result.stderr and "'lstm'" in result.stderr


def test_worked_example_prints_the_notes_update():
  out = _run("experiments/bptt_worked_example.py", "--epochs=1")
  assert "y(1) = 0.5037" in out and "w_new = 0.30309" in out and "g_new = 0.4120" in out
