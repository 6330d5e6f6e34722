"""Shared pytest setup: float32 on CPU, one JAX compilation cache per test run, and
`--runslow` for long studies."""

import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Two xdist workers share the two cores: one OpenMP thread each for oneDNN's RNN primitives
# (seqlab.unroll.onednn). With two each, a worker whose thread is descheduled stalls the
# other's per-step barriers: calls ran 20-400x slower and the suite took twice as long.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Many tests start `python -m seqlab.main` (or a study) several times with one config (train,
# then kill and resume, complete, sample): a compilation cache shared by the xdist workers and
# the subprocesses they start compiles each program once per run (the runner and char-LM
# tests: 117 -> 79 s). Fresh for every run, so nothing is reused across runs.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
  _run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
  os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(
      tempfile.gettempdir(), f"seqlab-tests-jax-cache-{_run}")
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"

import pytest  # noqa: E402


def pytest_unconfigure(config):
  """The process that made the cache (pytest itself, not an xdist worker) removes it."""
  if _OWN_CACHE and "PYTEST_XDIST_WORKER" not in os.environ:
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def pytest_addoption(parser):
  parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
  if config.getoption("--runslow"):
    return
  skip = pytest.mark.skip(reason="slow: run with --runslow")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)
