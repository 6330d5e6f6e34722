"""A throwaway PostgreSQL server in a temporary directory, for the Optuna storage tests.

Uses Debian's server binaries (/usr/lib/postgresql/*/bin; `.ci/run` installs the package).
PostgreSQL refuses to run as root, so as root the server runs as the unprivileged user
`nobody` (runuser). `server()` yields a URL, or skips the test with the reason it cannot.
"""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

USER = "nobody"


def _binaries() -> Path | None:
  found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
  return Path(found[-1]).parent if found else None


def _as_server_user(argv: list[str]) -> list[str]:
  if os.geteuid() != 0:
    return argv
  if shutil.which("runuser") is None:
    pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
  return ["runuser", "-u", USER, "--", *argv]


@contextlib.contextmanager
def server():
  """Start a server on a free localhost port; yield its URL; stop it and delete its files."""
  bin_dir = _binaries()
  if bin_dir is None:
    pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                "(Debian package postgresql; .ci/run installs it where apt-get works)")
  root = Path(tempfile.mkdtemp(prefix="seqlab-pg-"))
  data, sockets = root / "data", root / "sockets"
  sockets.mkdir()
  if os.geteuid() == 0:
    shutil.chown(root, USER)
    shutil.chown(sockets, USER)
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  run = lambda argv: subprocess.run(_as_server_user(argv), capture_output=True, text=True,
                                    timeout=120)
  init = run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
              "--no-sync"])
  if init.returncode:
    shutil.rmtree(root, ignore_errors=True)
    pytest.skip(f"initdb failed: {init.stderr[-500:]}")
  start = run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
               f"-p {port} -k {sockets} -c listen_addresses=localhost -c fsync=off", "start"])
  try:
    assert start.returncode == 0, start.stderr + (root / "log").read_text()
    _wait_for(port)
    yield f"postgresql://postgres@localhost:{port}/postgres"
  finally:
    run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
    shutil.rmtree(root, ignore_errors=True)


def _wait_for(port: int, timeout: float = 30) -> None:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    with contextlib.suppress(OSError), socket.create_connection(("localhost", port), 1):
      return
    time.sleep(0.2)
  raise TimeoutError(f"PostgreSQL did not accept connections on port {port}")
