"""Whole sequences of the standard cells through oneDNN's fused RNN primitives on CPU.

The CPU twin of `seqlab.unroll.cudnn`. One FFI call runs all T steps forward, one runs them
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

The handler (`onednn_rnn.cc`) is built on first use (`onednn_build.py`); `unavailable()`
says in one line why it cannot run here.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqlab.cells import elman, gru, lstm
from seqlab.unroll.onednn_build import (
    BACKWARD,
    CELL_NAMES,
    FORWARD,
    GRU,
    LBR_GRU,
    LSTM,
    RNN_RELU,
    RNN_TANH,
    UnavailableError,
    build,
    cache_dir,
    unavailable,
    workspace_bytes,
)

Array = jax.Array
DTYPES = (jnp.float32, jnp.bfloat16)


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
    workspace_bytes(cell[0], T, B, I, params["W"].shape[0], dtype == jnp.bfloat16)
  except UnavailableError as e:
    return str(e)
  return None


# --- the primitive calls and their custom_vjp


def _forward_call(cell: int, x, h0, c0, wx, wh, bias, training: bool):
  T, N, I = x.shape
  H = h0.shape[-1]
  ws = workspace_bytes(cell, T, N, I, H, x.dtype == jnp.bfloat16) if training else 1
  out = (jax.ShapeDtypeStruct((T, N, H), x.dtype), jax.ShapeDtypeStruct(h0.shape, h0.dtype),
         jax.ShapeDtypeStruct(c0.shape, c0.dtype), jax.ShapeDtypeStruct((ws,), jnp.uint8))
  call = jax.ffi.ffi_call(FORWARD, out, vmap_method="broadcast_all")
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
  call = jax.ffi.ffi_call(BACKWARD, out, vmap_method="broadcast_all")
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


__all__ = ["CELL_NAMES", "UnavailableError", "build", "cache_dir", "run", "support",
           "unavailable"]
