"""scripts/bench_rnn.py --quick: the benchmark command prints its table (a smoke run)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_rnn.py"


def _rows(stdout: str, case: str) -> dict[str, list[str]]:
  """implementation -> the row's cells, for the rows of `case`."""
  rows = [line.strip("| ").split(" | ") for line in stdout.splitlines()
          if line.startswith(f"| {case} |")]
  return {row[2]: row for row in rows}


def test_quick_benchmark_prints_the_table():
  # One run for every check: each kind costs a JAX and a PyTorch process (~30-40 s in all)
  result = subprocess.run(
      [sys.executable, str(SCRIPT), "--quick", "--cells=lstm"],
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.splitlines()
  assert lines[0].startswith("| case | cell | implementation | fwd k tok/s")
  assert "load average" in result.stdout
  # Rows say which backend ran: oneDNN next to the scan, or the scan alone where
  # backend="auto" cannot take oneDNN (no C++ compiler or oneDNN wheels); the plain scan
  # is the LSTM's scan default, so it has no row of its own.
  for case in ("quick B4 T8 I4 H16", "quick pop2 B4 T8 I4 H16", "quick B1 step H16"):
    impls = set(_rows(result.stdout, case))
    assert {"seqlab (oneDNN)", "seqlab scan"} <= impls or "seqlab scan (default)" in impls, \
        (case, impls)
    assert "flax OptimizedLSTMCell" in impls and "seqlab plain scan" not in impls, impls
  # The population: training steps only, per member, against PyTorch's loop of modules
  population = _rows(result.stdout, "quick pop2 B4 T8 I4 H16")
  if importlib.util.find_spec("torch") is not None:  # optional (the bench extra)
    assert "PyTorch nn.* (CPU), 2 modules in a loop" in population, sorted(population)
  for impl, row in population.items():
    fwd, train, ratio = row[3], row[4], row[6]
    assert fwd == "-" and "ms/member-step" in train, row
    assert ratio.startswith("- / "), row
    assert not impl.startswith("PyTorch") or ratio == "- / 1.00x", row


def test_unknown_case_is_an_error_naming_it():
  result = subprocess.run([sys.executable, str(SCRIPT), "--cases=T9 H9"],
                          capture_output=True, text=True, check=False)
  assert result.returncode != 0 and "unknown case(s) ['T9 H9']" in result.stderr
