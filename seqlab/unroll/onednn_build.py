"""Building, loading and asking oneDNN's RNN handler (`onednn_rnn.cc`), for `onednn.py`.

The handler is compiled on first use by the system C++ compiler (CXX, or g++ / c++ /
clang++ on PATH) against the oneDNN wheels (`onednn-cpu-gomp`, `onednn-devel-cpu-gomp`)
and JAX's FFI headers, and cached in $SEQLAB_CACHE (default ~/.cache/seqlab) under a name
that hashes the source, JAX, oneDNN and the compiler. `unavailable()` says in one line why
it cannot run here; `python -m seqlab.unroll` builds it now.
"""

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import jax

SOURCE = Path(__file__).with_name("onednn_rnn.cc")
LSTM, GRU, LBR_GRU, RNN_TANH, RNN_RELU = range(5)  # the handler's `cell` attribute
CELL_NAMES = {LSTM: "LSTM", GRU: "GRU (cho)", LBR_GRU: "linear-before-reset GRU (torch)",
              RNN_TANH: "Elman RNN (tanh)", RNN_RELU: "Elman RNN (relu)"}
FORWARD, BACKWARD = "seqlab_onednn_rnn_forward", "seqlab_onednn_rnn_backward"


class UnavailableError(RuntimeError):
  """oneDNN's RNN path cannot run on this machine; the message says why in one line."""


# --- building and loading the handler


def _onednn_prefix() -> Path | None:
  """The prefix holding lib/libdnnl.so.3 and include/oneapi/dnnl/dnnl.hpp (the wheels'
  data directory), or None."""
  candidates = [os.environ.get("SEQLAB_ONEDNN_PREFIX"), sysconfig.get_paths()["data"],
                sys.prefix, sys.base_prefix]
  for prefix in filter(None, candidates):
    prefix = Path(prefix)
    if (prefix / "lib" / "libdnnl.so.3").exists() and \
        (prefix / "include" / "oneapi" / "dnnl" / "dnnl.hpp").exists():
      return prefix
  return None


def _compiler() -> str | None:
  if os.environ.get("CXX"):
    return shutil.which(os.environ["CXX"])
  return next(filter(None, map(shutil.which, ("g++", "c++", "clang++"))), None)


def cache_dir() -> Path:
  """Where built handlers are kept: $SEQLAB_CACHE, default ~/.cache/seqlab."""
  return Path(os.environ.get("SEQLAB_CACHE") or Path.home() / ".cache" / "seqlab")


def build() -> Path:
  """The compiled handler library (built now if this machine has none cached)."""
  prefix = _onednn_prefix()
  if prefix is None:
    raise UnavailableError("oneDNN is not installed (pip install onednn-cpu-gomp==2023.2.0 "
                      "onednn-devel-cpu-gomp==2023.2.0)")
  cxx = _compiler()
  if cxx is None:
    raise UnavailableError("no C++ compiler found to build the oneDNN handler (install g++, or set "
                      "CXX)")
  command = [cxx, "-O2", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-w", str(SOURCE),
             f"-I{jax.ffi.include_dir()}", f"-I{prefix / 'include'}", f"-L{prefix / 'lib'}",
             "-l:libdnnl.so.3", f"-Wl,-rpath,{prefix / 'lib'}"]
  key = "\n".join([SOURCE.read_text(), jax.__version__, str(prefix), *command])
  target = cache_dir() / f"onednn_rnn-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"
  if target.exists():
    return target
  target.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
    built = Path(tmp) / target.name
    result = subprocess.run([*command, "-o", str(built)], capture_output=True, text=True)
    if result.returncode != 0:
      first = next((line for line in result.stderr.splitlines() if "error" in line),
                   result.stderr.strip()[:200])
      raise UnavailableError(f"building the oneDNN handler with {cxx} failed: {first}")
    os.replace(built, target)  # atomic: concurrent builders each leave a whole file
  return target


@functools.cache
def library() -> Any:
  """The loaded handler library with its FFI targets registered (raises UnavailableError)."""
  if jax.default_backend() != "cpu":
    raise UnavailableError(f"oneDNN runs on CPU; JAX's default backend here is "
                      f"{jax.default_backend()!r}")
  try:
    lib = ctypes.CDLL(str(build()))
  except OSError as e:
    raise UnavailableError(f"the oneDNN handler does not load: {e}") from None
  lib.seqlab_onednn_workspace_bytes.restype = ctypes.c_int64
  lib.seqlab_onednn_workspace_bytes.argtypes = [ctypes.c_int64] * 5 + [ctypes.c_int]
  lib.seqlab_onednn_error.restype = ctypes.c_char_p
  jax.ffi.register_ffi_target(FORWARD, jax.ffi.pycapsule(lib.SeqlabRnnForward), platform="cpu")
  jax.ffi.register_ffi_target(BACKWARD, jax.ffi.pycapsule(lib.SeqlabRnnBackward),
                              platform="cpu")
  return lib


def unavailable() -> str | None:
  """None where the oneDNN path can run here, else the reason in one line."""
  try:
    library()
  except UnavailableError as e:
    return str(e)
  return None


@functools.cache
def workspace_bytes(cell: int, T: int, N: int, I: int, H: int, bf16: bool) -> int:
  """Bytes of one member's training workspace; raises UnavailableError where oneDNN has no
  implementation (bfloat16 on a CPU without it, say)."""
  lib = library()
  size = lib.seqlab_onednn_workspace_bytes(cell, T, N, I, H, int(bf16))
  if size < 0:
    dtype = "bfloat16" if bf16 else "float32"
    raise UnavailableError(f"oneDNN has no {dtype} {CELL_NAMES[cell]} here: "
                      f"{lib.seqlab_onednn_error().decode()}")
  return -(-size // 64) * 64  # members' workspaces stay 64-byte aligned



def main() -> int:
  """`python -m seqlab.unroll`: build the handler now (if needed) and say where it is."""
  why = unavailable()
  if why is not None:
    print(f"oneDNN backend unavailable: {why}")
    return 1
  print(f"oneDNN backend ready: {build()}")
  return 0
