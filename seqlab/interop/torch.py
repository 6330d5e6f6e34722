"""Import torch.nn.LSTM / GRU / RNN weights from a PyTorch state dict as seqlab params.

torch uses column vectors with separate input and hidden biases,

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh,   weight_ih [G*H, I], weight_hh [G*H, H],

and seqlab row vectors with one bias, a_t = x_t @ U + h_{t-1} @ W + b, so

    U = weight_ih.T [I, G*H],   W = weight_hh.T [H, G*H],   b = bias_ih + bias_hh.

The fused gate orders agree (LSTM i, f, g, o; GRU r, z, n). The GRU's candidate keeps
its hidden bias inside the reset, n_t = tanh(... + r_t * (W_hn h_{t-1} + b_hn)), so it
becomes the torch variant's `b_hn` rather than part of `b`.

`state_dict` maps names to arrays, e.g. `{k: v.detach().cpu().numpy() for k, v in
module.state_dict().items()}` (strip any submodule prefix such as "rnn." first).
`layer` is the torch layer index k of `weight_ih_l{k}`; `reverse=True` reads the
backward direction of a bidirectional module (`weight_ih_l{k}_reverse`), to be run
with `unroll.scan(..., reverse=True)`.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

Params = dict[str, jax.Array]


def _read_layer(
    state_dict: Mapping[str, Any], layer: int, reverse: bool, gates: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
  """A layer's (U, W, b_ih, b_hh) in seqlab layout; the biases are None for bias=False."""
  suffix = f"_l{layer}" + ("_reverse" if reverse else "")
  present = sorted(k for k in state_dict if k.endswith(suffix))
  where = f"layer {layer}{' reverse' if reverse else ''}"
  if f"weight_hr{suffix}" in state_dict:
    raise ValueError(
        f"weight_hr{suffix} found: LSTM projections (proj_size > 0) are not supported"
    )

  def get(name: str) -> np.ndarray:
    key = name + suffix
    if key not in state_dict:
      raise KeyError(
          f"missing {key!r} in the state dict; keys present for {where}: {present}"
          if present else f"missing {key!r}: no keys for {where}; keys: {sorted(state_dict)}"
      )
    return np.asarray(state_dict[key])

  def check(name: str, array: np.ndarray, expected: tuple[int | str, ...], why: str) -> None:
    # A str entry of `expected` ("H", "I") matches any size.
    if array.ndim != len(expected) or any(
        isinstance(e, int) and e != n for e, n in zip(expected, array.shape, strict=True)
    ):
      shape = "(" + ", ".join(map(str, expected)) + ")"
      raise ValueError(f"{name}{suffix} has shape {array.shape}, expected {shape}: {why}")

  w_ih, w_hh = get("weight_ih"), get("weight_hh")
  check("weight_hh", w_hh, (f"{gates}*H", "H"), f"{gates} gate(s) of hidden size H")
  H = w_hh.shape[1]
  why = f"{gates} gate(s) of hidden size H={H} (from weight_hh{suffix})"
  check("weight_hh", w_hh, (gates * H, H), why)
  check("weight_ih", w_ih, (gates * H, "I"), why)
  has_ih, has_hh = f"bias_ih{suffix}" in state_dict, f"bias_hh{suffix}" in state_dict
  if not (has_ih or has_hh):  # a bias=False module
    return w_ih.T, w_hh.T, None, None
  b_ih, b_hh = get("bias_ih"), get("bias_hh")  # raises naming the one that is missing
  check("bias_ih", b_ih, (gates * H,), why)
  check("bias_hh", b_hh, (gates * H,), why)
  return w_ih.T, w_hh.T, b_ih, b_hh


def _cast(params: dict[str, np.ndarray], dtype: DTypeLike) -> Params:
  """Every array as a jnp array of `dtype`."""
  return {name: jnp.asarray(value, dtype) for name, value in params.items()}


def lstm_params(
    state_dict: Mapping[str, Any],
    layer: int = 0,
    reverse: bool = False,
    *,
    dtype: DTypeLike = jnp.float32,
) -> Params:
  """Params for `seqlab.cells.lstm` from torch.nn.LSTM layer `layer`: U, W, b = b_ih + b_hh."""
  U, W, b_ih, b_hh = _read_layer(state_dict, layer, reverse, gates=4)
  b = np.zeros(W.shape[1], W.dtype) if b_ih is None else b_ih + b_hh
  return _cast({"U": U, "W": W, "b": b}, dtype)


def gru_params(
    state_dict: Mapping[str, Any],
    layer: int = 0,
    reverse: bool = False,
    *,
    dtype: DTypeLike = jnp.float32,
) -> Params:
  """Params for `seqlab.cells.gru` (torch variant) from torch.nn.GRU layer `layer`."""
  U, W, b_ih, b_hh = _read_layer(state_dict, layer, reverse, gates=3)
  H = W.shape[0]
  if b_ih is None:
    b_ih = b_hh = np.zeros(3 * H, W.dtype)
  # b = b_ih + [b_hr, b_hz, 0]; b_hn stays inside n_t = tanh(... + r_t * (h @ W_n + b_hn)).
  b = b_ih + np.concatenate([b_hh[: 2 * H], np.zeros(H, b_hh.dtype)])
  return _cast({"U": U, "W": W, "b": b, "b_hn": b_hh[2 * H :]}, dtype)


def elman_params(
    state_dict: Mapping[str, Any],
    layer: int = 0,
    reverse: bool = False,
    *,
    dtype: DTypeLike = jnp.float32,
) -> Params:
  """Params for `seqlab.cells.elman` from torch.nn.RNN layer `layer`: U, W, b = b_ih + b_hh.

  torch's `nonlinearity` is not in the state dict: pass it to the cell as a step option,
  `cells.make("elman", activation="relu")` (the default is tanh, as in torch). A
  bias=False module gives params without `b`.
  """
  U, W, b_ih, b_hh = _read_layer(state_dict, layer, reverse, gates=1)
  params = {"U": U, "W": W} if b_ih is None else {"U": U, "W": W, "b": b_ih + b_hh}
  return _cast(params, dtype)
