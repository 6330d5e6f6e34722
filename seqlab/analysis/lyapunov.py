"""Lyapunov exponents of a recurrent map along a trajectory (Benettin's QR method).

The nonlinear counterpart of the eigenvalue picture: for s_t = F(s_{t-1}, x_t) the
exponents are the average log growth rates of ds_t/ds_0 = J_t ... J_1 along
orthogonal directions,

    Q_0 = I;   J_t Q_{t-1} = Q_t R_t  (QR);   lambda_i = 1/T sum_t log |R_t[i, i]|

For a linear map s_t = A s_{t-1} they are log |eigenvalues of A|, sorted descending
(notes 000: h_t = Q Lambda^t Q^T h_0); lambda_1 > 0 means gradients explode along the
trajectory, lambda_1 < 0 that they vanish at the rate e^(lambda_1 (t - k)).
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqlab.analysis import jacobians, state

Array = jax.Array


class Lyapunov(NamedTuple):
  """The k largest exponents [..., k] (descending) and their running estimates [..., T', k]."""

  exponents: Array
  running: Array


def _qr_step(Q: Array, Z: Array) -> tuple[Array, Array]:
  """Re-orthonormalise Z = J Q: (Q', log |diag R|)."""
  Q, R = jnp.linalg.qr(Z)
  return Q, jnp.log(jnp.abs(jnp.diagonal(R)))


def _finish(logs: Array, warmup: int) -> Lyapunov:
  """Average the per-step log |R_ii| after `warmup` steps; sort descending."""
  logs = logs[warmup:]
  running = jnp.cumsum(logs, axis=0) / jnp.arange(1, logs.shape[0] + 1)[:, None]
  exponents = -jnp.sort(-running[-1])
  return Lyapunov(exponents, running)


@functools.partial(jax.jit, static_argnames=("num", "warmup"))
def from_jacobians(J: Array, num: int | None = None, warmup: int = 0) -> Lyapunov:
  """The `num` largest exponents (default all n) of the product of J [..., T, n, n]."""
  n = J.shape[-1]
  num = n if num is None else num

  def one(J1):
    def body(Q, Jt):
      return _qr_step(Q, Jt @ Q)

    _, logs = jax.lax.scan(body, jnp.eye(n, num, dtype=J1.dtype), J1)
    return _finish(logs, warmup)

  flat = J.reshape(-1, *J.shape[-3:])
  out = jax.vmap(one)(flat)
  return jax.tree.map(lambda a: a.reshape(*J.shape[:-3], *a.shape[1:]), out)


@functools.partial(jax.jit, static_argnames=("step", "num", "warmup"))
def exponents(
    step: Callable[..., tuple[Any, Any]],
    params: Any,
    carry: Any,
    xs: Any,
    num: int | None = None,
    warmup: int = 0,
) -> Lyapunov:
  """Lyapunov exponents of `step` along each sequence of xs [B, T, ...]: [B, num].

  Computes J_t Q_{t-1} by forward-mode products of the step (jax.linearize) inside one
  scan, without storing the T Jacobians. The first `warmup` steps orient Q but are not
  counted.
  """

  def one(c0, seq):
    layout = state.layout(c0)
    F = jacobians.state_step(step, params, layout)
    k = layout.size if num is None else num

    def body(inputs, x):
      c, Q = inputs
      _, jvp = jax.linearize(lambda s: F(s, c, x), layout.flatten(c))
      Q, logs = _qr_step(Q, jax.vmap(jvp, in_axes=1, out_axes=1)(Q))  # J_t Q_{t-1}
      return (step(params, c, x)[0], Q), logs

    Q0 = jnp.eye(layout.size, k, dtype=layout.flatten(c0).dtype)
    _, logs = jax.lax.scan(body, (c0, Q0), seq)
    return _finish(logs, warmup)

  return jax.vmap(one)(carry, xs)
