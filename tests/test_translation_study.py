"""The BLEU-by-length study: sources bucketed by words (data=long), and its --quick run."""

import subprocess
import sys
from pathlib import Path

import pytest
from config_testing import load_experiment

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "experiments" / "translation_bleu_by_length.py"


@pytest.fixture(scope="module")
def study():
  return load_experiment("translation_bleu_by_length")


def test_long_sources_are_bucketed_by_words(study):
  assert study.bucket_names("long") == ["1-10", "11-20", "21-30", "31-40", "41-50", "51-60",
                                        ">60"]
  rows = [{"source": " ".join(["one"] * n), "reference": "un deux", "beam": hyp}
          for n, hyp in ((10, "un deux"), (11, "un"), (61, "un deux"), (61, "trois"))]
  out = study.score(rows, "beam", "long")
  assert [out[f"n {b}"] for b in study.bucket_names("long")] == [1, 1, 0, 0, 0, 0, 2]
  assert out["exact 1-10"] == 100 and out["exact 11-20"] == 0 and out["exact >60"] == 50
  assert out["n overall"] == 4
  # "twenty-one;" is four words ("twenty", "-", "one", ";"), as the word vocabulary splits it.
  assert study.source_length("twenty-one; two", "long") == 5
  assert study.source_length("twenty-one; two", "items") == 15


def test_quick_long_run_writes_the_word_buckets(tmp_path):
  result = subprocess.run(
      [sys.executable, str(SCRIPT), "--quick", "--data=long", "--models=noattention",
       f"--workdir={tmp_path}", f"--data_dir={tmp_path / 'data'}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert (tmp_path / "bleu_by_length_long.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  lines = (tmp_path / "bleu_by_length_long.md").read_text().splitlines()
  header = next(line for line in lines if line.startswith("| model | steps | BLEU beam"))
  assert "| 1-10 (n=" in header and "| >60 (n=" in header
  row = next(line for line in lines if line.startswith("| LSTM encoder-decoder (no attention)"))
  steps, bleu = int(row.split("|")[2]), float(row.split("|")[3])
  assert steps == 20 and 0.0 <= bleu <= 100.0
