"""Unrolling a cell over time, and every way seqlab can run a sequence: one dispatch point.

    h_t = step(h_{t-1}, x_t; theta)   for t = 1..T, the same theta at every step

Public arrays are batch-major, xs: [batch, time, ...]. Differentiating through `scan` with
`jax.grad` is backpropagation through time; truncated BPTT lives in `seqlab.tbptt`.

The backends (`scan(..., backend=...)`, `--config.model.backend`), each in its own module:

    scan    `jax.lax.scan` of cell.step (plain.py): any cell, any device, lengths, reverse,
            every step's carry. For elman (fused.AUTOMATIC) the same scan with a
            whole-sequence custom_vjp that forms dW as one GEMM (fused.py; fused=True
            forces it for lstm and gru too).
    onednn  oneDNN's fused RNN primitive, one FFI call per sequence each way (onednn.py):
            CPU; standard lstm, gru (both variants), elman tanh/relu; float32, bfloat16;
            vmappable. No lengths, no return_carries.
    cudnn   cuDNN's LSTM (cudnn.py): CUDA GPU, standard lstm, float32, forward direction,
            no vmap.
    parallel  Newton's method on the whole trajectory, all steps at once by a prefix scan
            (parallel.py: DEER, quasi-DEER, damped): any cell with a floating-point carry,
            no lengths, no reverse; `parallel=` holds the solver's options. Where a sequence
            does not converge its outputs and final carry are NaN and one line says why.
    auto    (default) onednn on CPU wherever `onednn.support` allows, else the scan.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from seqlab.cells import lstm
from seqlab.unroll import cudnn, onednn, parallel, plain
from seqlab.unroll import fused as fused_path
from seqlab.unroll.plain import (
    Array,
    Step,
    batch_major,
    length_mask,
    num_steps,
    reverse_within_lengths,
    shift_right,
    time_major,
)

BACKENDS = ("auto", "scan", "onednn", "cudnn", "parallel")
_said: set[str] = set()


def say_once(message: str) -> None:
  """Print `message` the first time this process is told it (paths are chosen at trace time,
  which can happen many times)."""
  if message not in _said:
    _said.add(message)
    print(message, flush=True)


def choose(step: Step, params: Any, carry: Any, xs: Any, lengths: Array | None = None,
           reverse: bool = False, return_carries: bool = False, fused: bool | None = None,
           backend: str = "auto") -> tuple[str, str | None]:
  """(the backend that runs this sequence, why not oneDNN where auto did not take it).

  Raises ValueError naming the reason when a forced backend cannot run it.
  """
  if backend not in BACKENDS:
    raise ValueError(f"unknown recurrent backend {backend!r}; known: {list(BACKENDS)}")
  if backend == "scan" or (backend == "auto" and fused is not None):
    return "scan", None
  if backend == "parallel":
    if lengths is not None or reverse:
      raise ValueError("backend='parallel' runs whole sequences forwards (no lengths, no "
                       "reverse); use backend='scan' for padded or reversed layers")
    return "parallel", None
  if backend == "cudnn":
    func = step.func if isinstance(step, functools.partial) else step
    if func is not lstm.step or reverse or return_carries:
      raise ValueError("backend='cudnn' runs a forward LSTM layer only (cell='lstm', no "
                       "reverse, no return_carries)")
    return "cudnn", None
  why = onednn.support(step, params, carry, xs, lengths, return_carries)
  if backend == "onednn" and why is not None:
    raise ValueError(f"backend='onednn' cannot run this layer: {why}")
  if backend == "auto" and jax.default_backend() != "cpu":
    return "scan", f"JAX's backend is {jax.default_backend()!r}"
  return ("onednn", None) if why is None else ("scan", why)


def describe(name: str, step: Step, params: Any, carry: Any, xs: Any,
             lengths: Array | None = None, reverse: bool = False,
             return_carries: bool = False, backend: str = "auto") -> str:
  """One line saying which backend runs layer `name`, and why not oneDNN if not."""
  path, why = choose(step, params, carry, xs, lengths, reverse, return_carries, None, backend)
  if path == "onednn":
    cell, _ = onednn._cell(step, params)
    return f"{name}: oneDNN fused {onednn.CELL_NAMES[cell]} (backend={backend})"
  if path == "cudnn":
    return f"{name}: cuDNN LSTM (backend=cudnn)"
  if path == "parallel":
    return f"{name}: parallel unroll over time (Newton on the trajectory; backend=parallel)"
  return f"{name}: scan (backend={backend}" + (f"; not oneDNN: {why})" if why else ")")


def scan(
    step: Step,
    params: Any,
    carry: Any,
    xs: Any,
    lengths: Array | None = None,
    reverse: bool = False,
    unroll: int = 1,
    return_carries: bool = False,
    fused: bool | None = None,
    backend: str = "auto",
    parallel_options: dict | None = None,
):
  """Run `step` over time: returns (final_carry, ys) or (final_carry, ys, carries).

  Args:
    step: a pure cell step `(params, carry, x_t) -> (carry, y_t)`.
    params: the parameters, shared by every time step.
    carry: the initial state h_0, leaves [B, ...].
    xs: inputs [B, T, ...] (any pytree of such arrays).
    lengths: optional [B] int lengths. Steps t >= lengths[b] are padding: they leave
      the carry unchanged and output zeros, so each row gives exactly what its
      sequence gives alone.
    reverse: run from the last real step to the first (with lengths, each sequence
      is reversed within its own length); outputs stay at their original positions.
    unroll: how many steps `lax.scan` unrolls per loop iteration (scan backend).
    return_carries: also return every step's carry h_1..h_T, leaves [B, T, ...].
    fused: the scan's gradient schedule; giving it (True or False) selects the scan.
      None: the whole-sequence fast path (`fused`) where it is the default (elman;
      `fused.AUTOMATIC`) and the inputs are not bfloat16 (there it ran 0.65x the plain
      scan); True: wherever one exists (lstm, gru, bfloat16 too); False: the plain scan.
      Either way only when return_carries is False.
    backend: one of BACKENDS (see the module docstring); "auto" takes oneDNN on CPU wherever
      it can run the cell and its options.
    parallel_options: backend="parallel"'s keyword options of `parallel.unroll` (solver,
      tol, max_iters, damping; a 0 or None takes that option's default).

  Returns:
    The final carry, the outputs ys [B, T, ...], and the carries if asked.
  """
  path, why = choose(step, params, carry, xs, lengths, reverse, return_carries, fused, backend)
  if why is not None and why == onednn.unavailable():
    say_once(f"seqlab: oneDNN's RNN backend is unavailable ({why}); recurrent layers run on "
             "the scan")
  if path == "onednn":
    flip = (lambda a: a[::-1]) if reverse else (lambda a: a)
    carry, ys = onednn.run(step, params, carry, flip(time_major(xs)))
    return carry, batch_major(flip(ys))
  if path == "cudnn":
    return cudnn.lstm(params, carry, xs, lengths)
  if path == "parallel":
    return _parallel(step, params, carry, xs, return_carries, parallel_options or {})
  bf16 = any(leaf.dtype == jax.numpy.bfloat16 for leaf in jax.tree.leaves(xs))
  use = fused is True or (fused is None and not bf16)
  run = fused_path.runner(step, unroll, automatic=fused is None) if use and not return_carries \
      else None
  if run is None:
    return plain.scan(step, params, carry, xs, lengths, reverse, unroll, return_carries)
  return fused_path.scan(run, params, carry, xs, lengths, reverse)


def _parallel(step: Step, params: Any, carry: Any, xs: Any, return_carries: bool,
              options: dict):
  """backend="parallel": `parallel.unroll`, its outputs NaN where a sequence did not converge
  (a training step then stops as non-finite), with one printed line naming the solver and
  residual, never a silently wrong trajectory."""
  options = {k: v for k, v in dict(options).items() if v}  # 0 / None: the solver's default
  *out, diagnostics = parallel.unroll(step, params, carry, xs, return_carries=return_carries,
                                      **options)

  def report(converged, iterations, residual):
    d = parallel.Diagnostics(converged=converged, iterations=iterations, residual=residual,
                             solver=diagnostics.solver, tol=diagnostics.tol,
                             max_iters=diagnostics.max_iters)
    try:
      parallel.check_converged(d, "a recurrent layer")
    except ValueError as error:
      say_once(f"seqlab: {error}")

  jax.debug.callback(report, diagnostics.converged, diagnostics.iterations,
                     diagnostics.residual)
  ok = diagnostics.converged
  def poison(a):  # rows [B, ...] that did not converge -> NaN
    mask = ok.reshape(ok.shape + (1,) * (a.ndim - 1))
    return jnp.where(mask, a, jnp.nan) if jnp.issubdtype(a.dtype, jnp.floating) else a
  return tuple(jax.tree.map(poison, part) for part in out)


__all__ = [
    "BACKENDS", "batch_major", "choose", "cudnn", "describe", "fused_path", "length_mask",
    "num_steps", "onednn", "parallel", "plain", "reverse_within_lengths", "say_once", "scan",
    "shift_right", "time_major",
]
