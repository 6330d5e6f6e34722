"""Study 10 (PBT against random search at equal compute) runs end to end with --quick: both
setups, both arms, two seeds; PBT copied and random search never did, and the table and
figure come from the JSON alone with --report_only."""

import json
import subprocess
import sys
from pathlib import Path

from seqlab.analysis import report

ROOT = Path(__file__).resolve().parent.parent
NAME = "study10_pbt"


def _study(tmp_path, *flags):
  result = subprocess.run(
      [sys.executable, f"experiments/{NAME}.py", "--quick", f"--output_dir={tmp_path}",
       f"--runs_dir={tmp_path / 'runs'}", f"--data_dir={tmp_path / 'data'}", *flags],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def test_study10_compares_pbt_with_random_search(tmp_path):
  _study(tmp_path)
  text = (tmp_path / f"{NAME}.md").read_text()
  rows = report.parse_markdown_table(text)
  for task in ("copy", "char"):
    assert f"- {task}: PBT ahead of random search in " in text and " of 2 seeds" in text
  assert [(r["setup"], r["arm"]) for r in rows] == [
      ("copy", "pbt"), ("copy", "random"), ("char", "pbt"), ("char", "random")]
  for r in rows:
    assert r["seeds"] == "2"
    assert 0 < float(r["min"]) <= float(r["median best"]) <= float(r["max"])
    assert (float(r["copies (median)"]) > 0) == (r["arm"] == "pbt")
  results = json.loads((tmp_path / f"{NAME}.json").read_text())
  for key, run in results.items():
    task, arm, seed = key.split("/")
    config = json.loads(run["config"])
    assert config["pbt"]["exploit"] == (arm == "pbt") and config["pbt"]["seed"] == int(seed)
    assert run["final"] == run["best"][-1] and len(run["best"]) == len(run["steps"])
  # random search and PBT start from the same members: equal scores until the first copy
  for task in ("copy", "char"):
    a, b = results[f"{task}/pbt/0"], results[f"{task}/random/0"]
    assert a["best"][0] == b["best"][0]
  (tmp_path / f"{NAME}.md").unlink()
  _study(tmp_path, "--report_only")
  assert report.parse_markdown_table((tmp_path / f"{NAME}.md").read_text()) == rows
  assert (tmp_path / f"{NAME}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
