"""Set up the local virtual environment and run the demo or the tests in it.

    python3 scripts/dev.py demo [flags...]   # the default experiment (char LM, Shakespeare)
    python3 scripts/dev.py test [pytest args...]

Needs only Python >= 3.11 with venv and pip. The venv (.venv) is created on first use
and reinstalled whenever pyproject.toml changes.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".seqlab-installed"

COMMANDS = {
    "demo": ["-m", "seqlab.main", "--config=configs/char_lstm.py", "--workdir=runs/char_lstm"],
    "test": ["-m", "pytest", "-q", "-n", "2", "--durations=15"],
}


def ensure_venv() -> None:
  """Create .venv and install seqlab[test] unless it matches pyproject.toml already."""
  digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
  if PYTHON.exists() and STAMP.exists() and STAMP.read_text() == digest:
    return
  if not PYTHON.exists():
    print(f"creating virtual environment {VENV}", flush=True)
    venv.create(VENV, with_pip=True)
  print("installing seqlab and its dependencies into .venv (first time: a few minutes)",
        flush=True)
  pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
  subprocess.run([*pip, "--upgrade", "pip"], check=True)
  subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
  # Compile oneDNN's RNN handler once now; without a compiler the scan runs, and this says why.
  subprocess.run([str(PYTHON), "-m", "seqlab.unroll"], cwd=ROOT, check=False)
  STAMP.write_text(digest)


def main() -> int:
  if sys.version_info < (3, 11):  # noqa: UP036 (dev.py may run under an older python3)
    sys.exit(f"seqlab needs Python >= 3.11; this is {sys.version.split()[0]}")
  if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
    sys.exit(f"usage: python3 scripts/dev.py {{{'|'.join(COMMANDS)}}} [extra args]")
  ensure_venv()
  command = [str(PYTHON), *COMMANDS[sys.argv[1]], *sys.argv[2:]]
  return subprocess.run(command, cwd=ROOT, env=os.environ.copy()).returncode


if __name__ == "__main__":
  sys.exit(main())
