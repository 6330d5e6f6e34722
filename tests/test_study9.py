"""Study 9 (parallel unrolling against lambda_1) runs end to end with --quick: a contracting
map unrolls in a few Newton iterations, a chaotic one needs many more (or none converge)."""

import json
import subprocess
import sys
from pathlib import Path

from seqlab.analysis import report

ROOT = Path(__file__).resolve().parent.parent
NAME = "study9_parallel_unroll"


def _iterations(text: str) -> tuple[int, bool]:
  """(iterations, converged) of a table cell: '7', '> 200' (hit the cap) or 'overflow'."""
  if text == "overflow":
    return 10**9, False
  if text.startswith("> "):
    assert int(text[2:]) > 0
    return int(text[2:]) + 1, False
  assert text.isdigit() and int(text) > 0, text  # a positive integer
  return int(text), True


def test_study9_iterations_follow_the_lyapunov_exponent(tmp_path):
  result = subprocess.run(
      [sys.executable, f"experiments/{NAME}.py", "--quick", f"--output_dir={tmp_path}",
       f"--data_dir={tmp_path / 'data'}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert (tmp_path / f"{NAME}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  text = (tmp_path / f"{NAME}.md").read_text()
  rows = {float(r["g"]): r for r in report.parse_markdown_table(text)}
  assert sorted(rows) == [0.5, 2.0]
  lengths = (50, 200)
  for r in rows.values():
    assert r["D"] == "32" and r["seeds"] == "1"
    for T in lengths:
      for column in (f"newton T={T} median", f"newton T={T} max", f"quasi T={T} median"):
        _iterations(r[column])
  contracting, chaotic = rows[0.5], rows[2.0]
  assert float(contracting["lambda_1 (median)"]) < -0.3   # ~ ln 0.5 plus saturation
  assert float(chaotic["lambda_1 (median)"]) > 0
  for T in lengths:
    its, ok = _iterations(contracting[f"newton T={T} median"])
    assert ok and its <= 10 and its < T / 4                # few, and flat in T
    assert contracting[f"newton T={T} converged"] == "1/1"
    chaos, chaos_ok = _iterations(chaotic[f"newton T={T} median"])
    assert not chaos_ok or chaos >= 3 * its + 10           # many more, or not converged
  # flat in T for the contracting map, growing with T for the chaotic one
  assert _iterations(contracting["newton T=200 median"])[0] <= (
      _iterations(contracting["newton T=50 median"])[0] + 1)
  assert _iterations(chaotic["newton T=200 median"])[0] > (
      _iterations(chaotic["newton T=50 median"])[0])
  # converged parallel trajectories agree with the sequential scan
  assert float(contracting["max abs(h - h_seq)"]) < 1e-9
  # the trained cell's rows: the second table
  cells = report.parse_markdown_table(text[text.index("## Cells"):])
  assert [(r["cell"], r["stage"], r["T"]) for r in cells] == [
      ("elman", "init", "50"), ("elman", "trained", "50")]
  for r in cells:
    its, ok = _iterations(r["newton median"])
    assert ok and float(r["lambda_1 (median)"]) < 0 and its < 50
  saved = json.loads((tmp_path / f"{NAME}.json").read_text())["results"]
  assert sorted(saved) == ["cell elman", "map g=0.5 D=32 seed=0", "map g=2 D=32 seed=0"]
