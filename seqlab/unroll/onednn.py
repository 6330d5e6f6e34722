"""Whole sequences of the standard cells through oneDNN's fused RNN primitives on CPU: the
CPU twin of `seqlab.unroll.cudnn`. One FFI call runs all T steps forward, one runs them
backward (under a `jax.custom_vjp`), as PyTorch's CPU LSTM does.

seqlab's params map onto oneDNN's weights (ldigo: Wx [I, G, H], Wh [H, G, H]) by gate blocks:

    lstm (standard)    oneDNN LSTM          gates i, f, g, o  = seqlab's i, f, g, o
    gru variant=cho    oneDNN GRU           gates u, r, o     = seqlab's z, r, n
        n_t = tanh(x_t U_n + (r_t * h_{t-1}) W_n + b_n),  h_t = u_t h_{t-1} + (1 - u_t) n_t
    gru variant=torch  oneDNN linear-before-reset GRU, bias [b_z, b_r, b_n, b_hn]
        n_t = tanh(x_t U_n + b_n + r_t * (h_{t-1} W_n + b_hn))
    elman tanh, relu   oneDNN vanilla RNN   h_t = f(x_t U + h_{t-1} W + b)

Float32 and bfloat16 (bias, the LSTM cell state and every gradient in float32, as oneDNN
computes them). Under `jax.vmap` the members of a population run one after another inside
one call. What oneDNN does not have takes the scan (`support` says why): padding
(lengths), every step's carry, layer norm, peephole and coupled LSTMs, other activations,
the other cell families, float64.

The handler (`onednn_rnn.cc`) is compiled on first use by the system C++ compiler (CXX, or
g++ / c++ / clang++ on PATH) against the oneDNN wheels (`onednn-cpu-gomp`,
`onednn-devel-cpu-gomp`) and JAX's FFI headers, and cached in $SEQLAB_CACHE (default
~/.cache/seqlab) under a name that hashes the source, JAX, oneDNN and the compiler.
`unavailable()` says in one line why it cannot run here.
"""

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqlab.cells import elman, gru, lstm

Array = jax.Array
SOURCE = Path(__file__).with_name("onednn_rnn.cc")
LSTM, GRU, LBR_GRU, RNN_TANH, RNN_RELU = range(5)  # the handler's `cell` attribute
CELL_NAMES = {LSTM: "LSTM", GRU: "GRU (cho)", LBR_GRU: "linear-before-reset GRU (torch)",
              RNN_TANH: "Elman RNN (tanh)", RNN_RELU: "Elman RNN (relu)"}
DTYPES = (jnp.float32, jnp.bfloat16)
_FORWARD, _BACKWARD = "seqlab_onednn_rnn_forward", "seqlab_onednn_rnn_backward"


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
def _library() -> Any:
  """The loaded handler library with its FFI targets registered (raises UnavailableError)."""
  import ctypes

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
  jax.ffi.register_ffi_target(_FORWARD, jax.ffi.pycapsule(lib.SeqlabRnnForward), platform="cpu")
  jax.ffi.register_ffi_target(_BACKWARD, jax.ffi.pycapsule(lib.SeqlabRnnBackward),
                              platform="cpu")
  return lib


def unavailable() -> str | None:
  """None where the oneDNN path can run here, else the reason in one line."""
  try:
    _library()
  except UnavailableError as e:
    return str(e)
  return None


@functools.cache
def _workspace_bytes(cell: int, T: int, N: int, I: int, H: int, bf16: bool) -> int:
  """Bytes of one member's training workspace; raises UnavailableError where oneDNN has no
  implementation (bfloat16 on a CPU without it, say)."""
  lib = _library()
  size = lib.seqlab_onednn_workspace_bytes(cell, T, N, I, H, int(bf16))
  if size < 0:
    dtype = "bfloat16" if bf16 else "float32"
    raise UnavailableError(f"oneDNN has no {dtype} {CELL_NAMES[cell]} here: "
                      f"{lib.seqlab_onednn_error().decode()}")
  return -(-size // 64) * 64  # members' workspaces stay 64-byte aligned


# --- seqlab's cells as oneDNN's


def _blocks(a: Array, order: tuple[int, ...], H: int) -> Array:
  """The gate blocks of a fused [..., k*H] array, reordered."""
  return jnp.concatenate([a[..., g * H:(g + 1) * H] for g in order], axis=-1)


def _lstm_weights(params: dict) -> tuple[Array, Array, Array]:
  return params["U"], params["W"], params["b"]


def _gru_weights(params: dict) -> tuple[Array, Array, Array]:
  H = params["W"].shape[0]
  u_r_o = (1, 0, 2)  # seqlab's (r, z, n) -> oneDNN's (u = z, r, o = n)
  bias = _blocks(params["b"], u_r_o, H)
  if "b_hn" in params:
    bias = jnp.concatenate([bias, params["b_hn"]])
  return _blocks(params["U"], u_r_o, H), _blocks(params["W"], u_r_o, H), bias


def _elman_weights(params: dict) -> tuple[Array, Array, Array]:
  H = params["W"].shape[0]
  return params["U"], params["W"], params.get("b", jnp.zeros((H,), params["W"].dtype))


def _cell(step: Callable, params: Any) -> tuple[int, Callable] | str:
  """(oneDNN cell, weight converter) for a cell step and its params, or why there is none."""
  func, options = step, {}
  if isinstance(step, functools.partial) and not step.args:
    func, options = step.func, dict(step.keywords)
  if not isinstance(params, dict) or "W" not in params:
    return "not a cell of seqlab.cells"
  if func is lstm.step:
    extra = sorted(set(params) - {"U", "W", "b"})
    if extra:
      return f"the LSTM variant with {extra} (oneDNN runs the standard LSTM)"
    if lstm.num_gates(params) != 4:
      return "the coupled LSTM (oneDNN runs the standard LSTM)"
    return LSTM, _lstm_weights
  if func is gru.step:
    extra = sorted(set(params) - {"U", "W", "b", "b_hn"})
    if extra:
      return f"the GRU with {extra} (layer norm)"
    return (LBR_GRU if "b_hn" in params else GRU), _gru_weights
  if func is elman.step:
    activation = options.get("activation", "tanh")
    if activation not in ("tanh", "relu"):
      return f"the Elman cell with activation {activation!r} (oneDNN has tanh and relu)"
    return (RNN_TANH if activation == "tanh" else RNN_RELU), _elman_weights
  name = getattr(func, "__module__", "?").rsplit(".", 1)[-1]
  return f"the {name} cell (oneDNN runs lstm, gru and elman)"


def support(step: Callable, params: Any, carry: Any, xs: Any, lengths: Any = None,
            return_carries: bool = False) -> str | None:
  """None where `run` can take this sequence, else why not (one line)."""
  if lengths is not None:
    return "padded sequences (lengths) run on the scan"
  if return_carries:
    return "every step's carry (return_carries) comes from the scan"
  cell = _cell(step, params)
  if isinstance(cell, str):
    return cell
  leaves = jax.tree.leaves(xs)
  if len(leaves) != 1 or leaves[0].ndim != 3:
    return "inputs other than one [B, T, I] array"
  if leaves[0].shape[1] == 1:  # measured (B1 step H256): 397 us per call, the scan 66 us
    return "a single time step runs faster on the scan (one call costs more than one step)"
  dtype = leaves[0].dtype
  if dtype not in DTYPES:
    return f"{dtype} inputs (oneDNN runs float32 and bfloat16)"
  if any(a.dtype != dtype for a in jax.tree.leaves((params, carry))
         if jnp.issubdtype(a.dtype, jnp.floating)):
    return "params or carry in a dtype other than the inputs'"
  why = unavailable()
  if why is not None:
    return why
  B, T, I = leaves[0].shape
  try:
    _workspace_bytes(cell[0], T, B, I, params["W"].shape[0], dtype == jnp.bfloat16)
  except UnavailableError as e:
    return str(e)
  return None


# --- the primitive calls and their custom_vjp


def _forward_call(cell: int, x, h0, c0, wx, wh, bias, training: bool):
  T, N, I = x.shape
  H = h0.shape[-1]
  ws = _workspace_bytes(cell, T, N, I, H, x.dtype == jnp.bfloat16) if training else 1
  out = (jax.ShapeDtypeStruct((T, N, H), x.dtype), jax.ShapeDtypeStruct(h0.shape, h0.dtype),
         jax.ShapeDtypeStruct(c0.shape, c0.dtype), jax.ShapeDtypeStruct((ws,), jnp.uint8))
  call = jax.ffi.ffi_call(_FORWARD, out, vmap_method="broadcast_all")
  return call(x, h0, c0, wx, wh, bias, cell=np.int64(cell), training=training)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _sequence(cell: int, x, h0, c0, wx, wh, bias):
  """(y [T, N, H], h_T, c_T) of oneDNN's cell over time-major x [T, N, I]."""
  y, hT, cT, _ = _forward_call(cell, x, h0, c0, wx, wh, bias, training=False)
  return y, hT, cT


def _sequence_fwd(cell, x, h0, c0, wx, wh, bias):
  y, hT, cT, ws = _forward_call(cell, x, h0, c0, wx, wh, bias, training=True)
  return (y, hT, cT), (x, h0, c0, wx, wh, bias, y, hT, cT, ws)


def _sequence_bwd(cell, residuals, cotangents):
  x, h0, c0, wx, wh, bias, y, hT, cT, ws = residuals
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  dy, dhT, dcT = map(f32, cotangents)
  like = lambda a: jax.ShapeDtypeStruct(a.shape, jnp.float32)
  out = tuple(map(like, (x, h0, c0, wx, wh, bias)))
  call = jax.ffi.ffi_call(_BACKWARD, out, vmap_method="broadcast_all")
  grads = call(x, h0, c0, wx, wh, bias, y, hT, cT, ws, dy, dhT, dcT, cell=np.int64(cell))
  return tuple(g.astype(a.dtype) for g, a in zip(grads, (x, h0, c0, wx, wh, bias), strict=True))


_sequence.defvjp(_sequence_fwd, _sequence_bwd)


def run(step: Callable, params: dict, carry: Any, xs_t: Array) -> tuple[Any, Array]:
  """(final carry, ys [T, B, H]) of the cell over time-major xs [T, B, I] through oneDNN.

  The same values and gradients as scanning `step` (call `support` first: it says where
  this cannot run).
  """
  cell, weights = _cell(step, params)
  dtype, H = xs_t.dtype, params["W"].shape[0]
  wx, wh, bias = weights(params)
  wx = wx.reshape(wx.shape[0], -1, H).astype(dtype)  # [I, G*H] -> ldigo [I, G, H]
  wh = wh.reshape(H, -1, H).astype(dtype)
  bias = bias.reshape(-1, H).astype(jnp.float32)
  if cell == LSTM:
    h0, c0 = carry.h, carry.c.astype(jnp.float32)
  else:
    h0, c0 = carry, jnp.zeros((1, 1), jnp.float32)  # unused by cells without a cell state
  ys, hT, cT = _sequence(cell, xs_t, h0, c0, wx, wh, bias)
  final = lstm.LSTMState(h=hT, c=cT.astype(carry.c.dtype)) if cell == LSTM else hT
  return final, ys


__all__ = ["UnavailableError", "build", "cache_dir", "run", "support", "unavailable"]


def main() -> int:
  """`python -m seqlab.unroll`: build the handler now (if needed) and say where it is."""
  why = unavailable()
  if why is not None:
    print(f"oneDNN backend unavailable: {why}")
    return 1
  print(f"oneDNN backend ready: {build()}")
  return 0
