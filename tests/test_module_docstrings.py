"""Module docstrings open with one summary line (PEP 257) and stand without the README.

The rule, for every git-tracked module of seqlab/, configs/, experiments/ and scripts/: the
docstring's first line is a complete sentence of at most 100 characters ending in '.', and
either is the whole docstring or is followed by a blank line (the rest, equations, references
and launch commands, goes below it). The guides link to modules, not the other way round, so
no module docstring mentions the README.
"""

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATTERNS = ("seqlab/*.py", "configs/*.py", "experiments/*.py", "scripts/*.py")
MAX_SUMMARY = 100


def _modules() -> list[str]:
  """The git-tracked modules in scope (git's `*` crosses `/`, so seqlab/ is searched whole)."""
  try:
    out = subprocess.run(["git", "ls-files", *PATTERNS], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file on disk
    return sorted(str(p.relative_to(ROOT)) for pattern in ("seqlab/**/*.py", *PATTERNS[1:])
                  for p in ROOT.glob(pattern))
  return sorted(out.split())


MODULES = _modules()


def test_the_scope_is_not_empty():
  assert len(MODULES) > 100, MODULES


@pytest.mark.parametrize("path", MODULES, ids=MODULES)
def test_module_docstring_opens_with_one_summary_line(path):
  doc = ast.get_docstring(ast.parse((ROOT / path).read_text(), filename=path))
  assert doc, f"{path}: no module docstring"
  lines = doc.splitlines()
  first = lines[0]
  assert first.endswith("."), f"{path}: the first line does not end in '.': {first!r}"
  assert len(first) <= MAX_SUMMARY, (
      f"{path}: the first line is {len(first)} > {MAX_SUMMARY} characters: {first!r}")
  assert len(lines) == 1 or not lines[1].strip(), (
      f"{path}: the first line runs on into the next; end it and leave a blank line: "
      f"{first!r} / {lines[1]!r}")
  assert "README" not in doc, (
      f"{path}: the docstring refers to the README (first line {first!r}): "
      + "; ".join(line.strip() for line in lines if "README" in line))
