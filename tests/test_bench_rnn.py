"""scripts/bench_rnn.py --quick: the benchmark command prints its table (a smoke run)."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_rnn.py"


def test_quick_benchmark_prints_the_table():
  result = subprocess.run(
      [sys.executable, str(SCRIPT), "--quick", "--cells=lstm"],
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.splitlines()
  assert lines[0].startswith("| case | cell | implementation | fwd k tok/s")
  rows = [line for line in lines if line.startswith("| quick")]
  impls = {row.split(" | ")[2] for row in rows}
  assert {"seqlab", "seqlab plain scan", "flax OptimizedLSTMCell"} <= impls
  assert "load average" in result.stdout


def test_unknown_case_is_an_error_naming_it():
  result = subprocess.run([sys.executable, str(SCRIPT), "--cases=T9 H9"],
                          capture_output=True, text=True, check=False)
  assert result.returncode != 0 and "unknown case(s) ['T9 H9']" in result.stderr
