"""The analysis studies run end to end with --quick and write what they promise."""

import math
import subprocess
import sys
from pathlib import Path

from seqlab.analysis import report

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, out: Path) -> None:
  result = subprocess.run(
      [sys.executable, f"experiments/{script}", "--quick", f"--output_dir={out}"],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
  )
  assert result.returncode == 0, result.stderr


def _table(path: Path) -> list[dict[str, str]]:
  assert path.exists() and path.stat().st_size > 0
  return report.parse_markdown_table(path.read_text())


def _png(path: Path) -> None:
  assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study1_slopes_are_log_rho(tmp_path):
  _run("study1_linear_rnn.py", tmp_path)
  _png(tmp_path / "study1_linear_rnn.png")
  rows = _table(tmp_path / "study1_linear_rnn.md")
  assert [float(r["rho"]) for r in rows] == [0.5, 0.9, 1.0, 1.1, 1.5]
  for r in rows:
    log_rho = math.log(float(r["rho"]))
    assert abs(float(r["slope log||dh_t/dh_0|| (orthogonal)"]) - log_rho) < 1e-5
    assert abs(float(r["slope log||dh_t/dh_0|| (symmetric)"]) - log_rho) < 1e-5
    assert abs(float(r["Lyapunov lambda_1 (orth.)"]) - log_rho) < 1e-5
    assert math.isclose(float(r["||h_T||/||h_0|| (orth., T=20)"]), float(r["rho^T"]), rel_tol=1e-4)
    assert float(r["max rel. err. cell h_t vs Q Lambda^t Q^T h_0 (float32)"]) < 1e-5


def test_study2_bound_holds_and_both_regimes_appear(tmp_path):
  _run("study2_gradient_bound.py", tmp_path)
  _png(tmp_path / "study2_gradient_bound.png")
  rows = _table(tmp_path / "study2_gradient_bound.md")
  for activation in ("tanh", "sigmoid"):
    mine = [r for r in rows if r["activation"] == activation]
    assert {r["regime"] for r in mine} == {"vanishing", "exploding"}
  for r in rows:
    assert float(r["max over (t,k) of log(measured/bound)"]) < 1e-5  # float32 rounding
    assert float(r["measured rate"]) < float(r["bound rate log(gamma ||W||)"])


def test_study6_smaller_leak_rate_remembers_longer(tmp_path):
  _run("study6_leaky_units.py", tmp_path)
  _png(tmp_path / "study6_leaky_units.png")
  rows = _table(tmp_path / "study6_leaky_units.md")
  assert [r["rate a"] for r in rows] == ["1", "0.5", "0.2", "0.05", "0.02"]
  slopes = [float(r["slope of log ||dL_t/dh_k|| per lag"]) for r in rows]
  assert all(s < 0 for s in slopes) and slopes == sorted(slopes)  # decay slows as a falls
  efold = [float(r["e-folding lag"]) for r in rows[1:]]
  assert efold == sorted(efold)


def test_unfolded_graph_figure_and_table(tmp_path):
  _run("unfolded_graph.py", tmp_path)
  _png(tmp_path / "unfolded_graph_elman.png")
  (row,) = _table(tmp_path / "unfolded_graph.md")
  assert row["cell"] == "elman" and row["ops per step"] == "7 / 7"
  assert row["shared parameters (steps using each)"] == (
      "U (2 steps), V (2 steps), W (2 steps), b (2 steps), c (2 steps)")
