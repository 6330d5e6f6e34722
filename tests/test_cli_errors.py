"""User errors at `python -m seqlab.main`: one line naming the culprit, exit status 2, and
the traceback only with --verbosity=1."""

import subprocess
import sys
from pathlib import Path

import pytest

from seqlab import errors

ROOT = Path(__file__).resolve().parent.parent


def _main(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "seqlab.main", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def _assert_one_line(result: subprocess.CompletedProcess, *expected: str) -> str:
  assert result.returncode == errors.EXIT_USER_ERROR, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  for text in expected:
    assert text in lines[0]
  return lines[0]


@pytest.fixture
def bad_tsv(tmp_path) -> Path:
  path = tmp_path / "pairs.tsv"
  path.write_text("one\tun\ntwo deux\nthree\ttrois\n", "utf-8")
  return path


CASES = {
    "bad_variant": (("--config=configs/copy.py:cell=lstmm",),
                    ("unknown cell 'lstmm'", "'clockwork', 'coupled_lstm'", "'torch_gru'")),
    "unknown_variant_key": (("--config=configs/copy.py:celll=gru",),
                            ("'celll'", "['cell', 'delay', 'model', 'recipe']")),
    "misspelt_field": (("--config=configs/copy.py", "--config.model.hiden_size=8"),
                       ("--config.model.hiden_size=8", "no field 'hiden_size'",
                        '"hidden_size"')),
    "missing_config_file": (("--config=configs/nowhere.py",), ("configs/nowhere.py",)),
    "missing_data_file": (("--config=configs/char_lstm.py",
                           "--config.task.options.path=/nowhere/plays.txt"),
                          ("/nowhere/plays.txt: no such file or folder", "fix:")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_errors_end_in_one_line_and_status_2(case, tmp_path):
  args, expected = CASES[case]
  _assert_one_line(_main(*args, f"--workdir={tmp_path / 'run'}",
                         f"--config.task.data_dir={tmp_path / 'data'}"), *expected)


def test_a_malformed_tsv_names_its_line(tmp_path, bad_tsv):
  result = _main("--config=configs/translation.py", f"--workdir={tmp_path / 'run'}",
                 f"--config.task.data_dir={tmp_path / 'data'}",
                 f"--config.task.options.path={bad_tsv}")
  _assert_one_line(result, f"{bad_tsv}:2:", "tab-separated columns", "fix:")


def test_verbosity_1_shows_the_traceback(tmp_path):
  result = _main("--config=configs/copy.py:cell=lstmm", f"--workdir={tmp_path}",
                 "--verbosity=1")
  assert result.returncode == errors.EXIT_USER_ERROR
  assert "Traceback (most recent call last)" in result.stderr
  assert "unknown cell 'lstmm'" in result.stderr


@pytest.mark.parametrize("argv,verbose", [
    (["--verbosity=1"], True), (["--verbosity", "2"], True), (["-v", "1"], True),
    (["--verbosity=0"], False), (["--verbosity=-1"], False), ([], False),
])
def test_verbosity_is_read_before_the_flags_parse(argv, verbose):
  assert errors.verbose_in(["prog", *argv]) == verbose
