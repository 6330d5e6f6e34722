"""The standard LSTM layer through cuDNN (`jax.experimental.rnn.lstm`), for single runs on GPU.

seqlab's LSTM params map onto cuDNN's (and PyTorch's) LSTM with the same gate order i, f, g, o:

    W_ih = U^T [4H, I],   W_hh = W^T [4H, H],   b_ih = b,   b_hh = 0

packed into cuDNN's flat weight vector (W_ih, W_hh, b_ih, b_hh for one layer, one
direction). Limits, all from `jax.experimental.rnn`: CUDA GPUs only, float32, the
standard LSTM only (no peephole, coupled or layer-norm variant), forward direction,
and no batching rule, so it cannot run inside `jax.vmap`: vmapped sweeps keep the scan
path (`seqlab.unroll.scan`). `reference` runs the same packed weights through
`jax.experimental.rnn.lstm_ref` (a scan, any backend) so the layout is checked on CPU.
"""


import jax
import jax.numpy as jnp
from jax.experimental import rnn

from seqlab.cells import lstm as lstm_cell

Array = jax.Array


def check_params(params: dict) -> tuple[int, int]:
  """(I, H) of standard LSTM params; raises naming what cuDNN cannot run."""
  extra = sorted(set(params) - {"U", "W", "b"})
  if extra or lstm_cell.num_gates(params) != 4:
    variant = f"params {extra}" if extra else "the coupled variant (3 gate blocks)"
    raise ValueError(f"the cuDNN LSTM runs the standard LSTM only, not {variant}; "
                     "use the scan backend for LSTM variants")
  return params["U"].shape[0], params["W"].shape[0]


def pack_weights(params: dict) -> Array:
  """seqlab LSTM params -> cuDNN's flat float32 weight vector (one layer, one direction)."""
  I, H = check_params(params)
  parts = [params["U"].T, params["W"].T, params["b"], jnp.zeros((4 * H,), params["b"].dtype)]
  flat = jnp.concatenate([p.reshape(-1) for p in parts]).astype(jnp.float32)
  assert flat.shape[0] == rnn.get_num_params_in_lstm(I, H, 1, False)
  return flat


def _lengths(xs: Array, lengths: Array | None) -> Array:
  B, T = xs.shape[:2]
  return jnp.full((B,), T, jnp.int32) if lengths is None else jnp.asarray(lengths, jnp.int32)


def lstm(params: dict, carry: lstm_cell.LSTMState, xs: Array,
         lengths: Array | None = None) -> tuple[lstm_cell.LSTMState, Array]:
  """(final carry, ys [B, T, H]) of the LSTM over xs [B, T, I] through cuDNN.

  Same contract as `unroll.scan(lstm.step, ...)`: padded steps output zeros and the
  final carry is the state after each sequence's last real step.
  """
  I, H = check_params(params)
  if not available():
    raise ValueError(f"the cuDNN LSTM needs a CUDA GPU; JAX's backend here is "
                     f"{jax.default_backend()!r}: use the scan backend")
  ys, h_n, c_n = rnn.lstm(
      xs.astype(jnp.float32), carry.h[None].astype(jnp.float32),
      carry.c[None].astype(jnp.float32), pack_weights(params), _lengths(xs, lengths),
      input_size=I, hidden_size=H, num_layers=1, dropout=0.0, bidirectional=False)
  return lstm_cell.LSTMState(h=h_n[0], c=c_n[0]), ys


def reference(params: dict, carry: lstm_cell.LSTMState, xs: Array,
              lengths: Array | None = None) -> tuple[lstm_cell.LSTMState, Array]:
  """`lstm` computed by jax.experimental.rnn.lstm_ref from the packed weights (any backend)."""
  I, H = check_params(params)
  W_ih, W_hh, b_ih, b_hh = rnn.unpack_lstm_weights(pack_weights(params), I, H, 1, False)
  ys, h_n, c_n = rnn.lstm_ref(xs, carry.h[None], carry.c[None], W_ih, W_hh, b_ih, b_hh,
                              _lengths(xs, lengths), I, H, 1, 0.0, False)
  return lstm_cell.LSTMState(h=h_n[0], c=c_n[0]), ys


def available() -> bool:
  """Whether jax.experimental.rnn.lstm can run here (a CUDA GPU is the default backend)."""
  return jax.default_backend() == "gpu" and getattr(rnn, "gpu_rnn", None) is not None


__all__ = ["available", "check_params", "lstm", "pack_weights", "reference"]
