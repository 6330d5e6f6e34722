"""Unrolling a cell in parallel over time: Newton's method on the whole trajectory (DEER).

The T steps h_t = f(h_{t-1}, x_t) (h_0 the initial carry, fixed) are T equations in the
unknowns h_1..h_T. Each iteration linearises every step at the current guess h^(k),

    A_t = df/dh (h_{t-1}^(k), x_t)                       [D, D], or its diagonal
    b_t = f(h_{t-1}^(k), x_t) - A_t h_{t-1}^(k)

and solves the linear recurrence h_t = A_t h_{t-1} + b_t for every t at once with a
parallel prefix scan (`jax.lax.associative_scan`), element i before element j:

    (A_i, b_i) . (A_j, b_j) = (A_j A_i, A_j b_i + b_j)

Solvers (`SOLVERS`):
    newton     DEER (Lim et al. 2024, arXiv 2309.12252): dense Jacobians, exact Newton.
               After k iterations h_1..h_k are exact, so it converges in at most T.
    quasi      quasi-DEER (Gonzalez et al. 2024, arXiv 2407.19115): diag(A_t) only,
               elementwise combine, O(T D) scan memory. Also exact after T iterations.
    elk        damped Newton with fixed lambda = `damping`, dense Jacobians:
                   (1 + lambda) h_t - A_t h_{t-1} = b_t + lambda h_t^(k)
               i.e. (J + lambda I) dh = -r for the residual r_t = h_t - f(h_{t-1}, x_t),
               a Levenberg-style trust region that shortens steps where Newton overshoots.
               Not the paper's ELK (Gauss-Newton (J^T J + lambda I), a Kalman smoother):
               this one keeps the forward bidiagonal structure, so one scan solves it.
               Its fixed points are those of f: h^(k+1) = h^(k) gives (1 + lambda) h_t =
               A_t h_{t-1} + f_t - A_t h_{t-1} + lambda h_t, so h_t = f(h_{t-1}, x_t).
               Converges linearly, not in T iterations, and damps only where it makes
               the linear recurrence contract (||A_t|| < 1 + lambda): no cure for chaos.
    quasi_elk  the same damping on the diagonal Jacobians.

The diagonal Jacobians are the diagonal of jax.jacfwd: O(T D^2) work and transient
memory; only the scan and what it keeps between iterations are O(T D).
Gradients are implicit (`jax.custom_vjp`): at the solution the adjoint is the reverse
linear recurrence lambda_t = g_t + A_{t+1}^T lambda_{t+1} with the exact dense Jacobians
whatever the solver (the fixed point is the same), then the step's VJP at every t: equal
to backpropagation through `seqlab.unroll.scan`. No lengths, no reverse.
"""

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from seqlab.unroll.plain import Array, Step

SOLVERS = {"newton": (False, False), "quasi": (True, False), "elk": (False, True),
           "quasi_elk": (True, True)}  # name -> (diagonal Jacobians, damped)
INITS = ("zeros", "carry")


@dataclasses.dataclass(frozen=True)
class Diagnostics:
  """Per sequence [B]: Newton iterations used, the final residual max_t ||h_t -
  f(h_{t-1}, x_t)||_inf, and converged = residual finite and <= tol; plus the settings."""

  iterations: Array
  residual: Array
  converged: Array
  solver: str = "newton"
  tol: float = 0.0
  max_iters: int = 0


jax.tree_util.register_dataclass(
    Diagnostics, data_fields=["iterations", "residual", "converged"],
    meta_fields=["solver", "tol", "max_iters"])


def check_converged(diagnostics: Diagnostics, what: str = "parallel unroll") -> None:
  """Raise ValueError naming `what`, the solver, iterations, residual and tolerance unless
  every sequence converged (concrete diagnostics: call it outside jit)."""
  d = diagnostics
  if np.all(d.converged):
    return
  bad = ~np.asarray(d.converged)
  residual = np.asarray(d.residual)[bad]
  worst = np.nan if np.isnan(residual).any() else residual.max()
  raise ValueError(
      f"{what}: the parallel unroll (solver={d.solver!r}) did not converge for "
      f"{bad.sum()} of {bad.size} sequences: after up to {np.max(d.iterations)} iterations "
      f"(max_iters={d.max_iters}) the residual max_t ||h_t - f(h_{{t-1}}, x_t)||_inf is "
      f"{worst:g}{'' if np.isfinite(worst) else ' (diverged)'} > tolerance {d.tol:g}; unroll "
      "it sequentially (seqlab.unroll.scan), or raise max_iters")


def _combine(diagonal: bool):
  """The prefix-scan operator on elements (A, b) of h_t = A h_{t-1} + b; i before j."""
  def combine(i, j):
    (A_i, b_i), (A_j, b_j) = i, j
    if diagonal:
      return A_j * A_i, A_j * b_i + b_j                   # elementwise
    return A_j @ A_i, jnp.einsum("...de,...e->...d", A_j, b_i) + b_j
  return combine


def _linear_solve(A: Array, b: Array, h0: Array, diagonal: bool) -> Array:
  """h_t = A_t h_{t-1} + b_t for t = 1..T given h_0: all h_t [T, D] by one prefix scan."""
  mv = (lambda M, v: M * v) if diagonal else (lambda M, v: M @ v)
  b = b.at[0].add(mv(A[0], h0))                # h_1 = A_1 h_0 + b_1: fold h_0 into b_1,
  A = A.at[0].set(0)                           # then h_t is the b part of the t-th prefix
  return jax.lax.associative_scan(_combine(diagonal), (A, b))[1]


def _previous(h0: Array, S: Array) -> Array:
  """[h_0, h_1, .., h_{T-1}]: the carry each step starts from."""
  return jnp.concatenate([h0[None], S[:-1]])


def _solver(step: Step, unravel, solver: str, tol: float, max_iters: int, damping: float):
  """The trajectory solve of one sequence, (params, h0 [D], xs [T, ..], S0 [T, D]) ->
  (S [T, D], (iterations, residual, converged)), with implicit gradients."""
  diagonal, damped = SOLVERS[solver]
  lam = damping if damped else 0.0

  def f(params, s, x):                         # the step on the flat state: h_{t-1} -> h_t
    return ravel_pytree(step(params, unravel(s), x)[0])[0].astype(s.dtype)

  def linearise(params, prev, xs, diag):       # f_t = f(h_{t-1}, x_t), A_t = df/dh there
    def one(s, x):
      A, F = jax.jacfwd(lambda s: (f(params, s, x),) * 2, has_aux=True)(s)
      return F, (jnp.diagonal(A) if diag else A)
    return jax.vmap(one)(prev, xs)

  def residual(params, h0, xs, S):             # max_t ||h_t - f(h_{t-1}, x_t)||_inf
    r = S - jax.vmap(f, (None, 0, 0))(params, _previous(h0, S), xs)
    # NaN explicitly: XLA's CPU max of a mostly-NaN array can come out -inf
    return jnp.where(jnp.any(jnp.isnan(r)), jnp.nan, jnp.max(jnp.abs(r)))

  def solve(params, h0, xs, S0):
    def newton(state):
      k, S, _ = state
      prev = _previous(h0, S)
      F, A = linearise(params, prev, xs, diagonal)
      mv = A * prev if diagonal else jnp.einsum("tde,te->td", A, prev)
      b = F - mv                               # b_t = f_t - A_t h_{t-1}^(k)
      c = 1.0 / (1.0 + lam)                    # damped (lambda > 0): A_t / (1 + lambda) and
      S = _linear_solve(c * A, c * (b + lam * S), h0, diagonal)  # (b_t + lambda h_t^(k)) / ..
      return k + 1, S, residual(params, h0, xs, S)

    def going(state):                          # stop at tol, at max_iters, or on NaN/inf
      k, _, r = state
      return (k < max_iters) & (r > tol) & jnp.isfinite(r)

    k, S, r = jax.lax.while_loop(going, newton, (jnp.int32(0), S0, residual(params, h0, xs, S0)))
    ok = jnp.isfinite(r) & (r <= tol)
    return S, (k, r, ok)

  @jax.custom_vjp
  def trajectory(params, h0, xs, S0):
    return solve(params, h0, xs, S0)

  def forward(params, h0, xs, S0):
    S, diag = solve(params, h0, xs, S0)
    return (S, diag), (params, h0, xs, S, diag[2])

  def backward(saved, cotangents):
    params, h0, xs, S, ok = saved
    g = cotangents[0]                          # g_t = dL/dh_t [T, D]
    prev = _previous(h0, S)
    _, A = linearise(params, prev, xs, False)  # exact Jacobians at the solution
    # lambda_t = g_t + A_{t+1}^T lambda_{t+1}, lambda_T = g_T: h_t = B_t h_{t+1} + g_t run
    # backwards with B_t = A_{t+1}^T (B_T = 0), the same combine on the reversed sequence
    B = jnp.concatenate([jnp.swapaxes(A[1:], -1, -2), jnp.zeros_like(A[:1])])
    adjoint = jax.lax.associative_scan(_combine(False), (B, g), reverse=True)[1]
    adjoint = jnp.where(ok, adjoint, jnp.nan)  # not converged: NaN, never a wrong gradient
    # d params = sum_t (df_t/dtheta)^T lambda_t, d x_t = (df_t/dx_t)^T lambda_t,
    # d h_{t-1} = A_t^T lambda_t: d h_0 is its first row
    _, vjp = jax.vjp(jax.vmap(f, (None, 0, 0)), params, prev, xs)
    d_params, d_prev, d_xs = vjp(adjoint)
    return d_params, d_prev[0], d_xs, jnp.zeros_like(S)

  trajectory.defvjp(forward, backward)
  return trajectory


def unroll(step: Step, params: Any, carry: Any, xs: Any, solver: str = "newton",
           tol: float | None = None, max_iters: int | None = None, damping: float = 1.0,
           init: Any = "zeros", return_carries: bool = False):
  """Run `step` over time by Newton's method on the trajectory, each sequence on its own.

  Args:
    step, params, carry, xs: as `seqlab.unroll.scan`: carry leaves [B, ...] (floating
      point, one dtype), xs [B, T, ...].
    solver: one of SOLVERS (see the module docstring).
    tol: converged when max_t ||h_t - f(h_{t-1}, x_t)||_inf <= tol on the flat carry;
      default eps ** 0.75 of the carry's dtype (1.8e-12 float64, 6.5e-6 float32).
    max_iters: the iteration cap; default T (newton and quasi are exact after T), 2 T + 100
      for the damped solvers.
    damping: lambda of elk and quasi_elk (unused by the others).
    init: the first guess h^(0): "zeros", "carry" (h_0 at every t), or a trajectory like
      return_carries gives (leaves [B, T, ...]).
    return_carries: also return h_1..h_T, leaves [B, T, ...].

  Returns:
    (final_carry, ys [B, T, ...], diagnostics) or (final_carry, ys, carries, diagnostics).
    Diagnostics are per sequence [B] (a batch is vmapped, so it runs as many iterations as
    its slowest sequence, each sequence stopping where it converges). Where one did not
    converge its trajectory is the last iterate and its gradients are NaN: check with
    `check_converged`. ys are the step's outputs recomputed from the solved trajectory.
  """
  if solver not in SOLVERS:
    raise ValueError(f"unknown parallel solver {solver!r}; known: {list(SOLVERS)}")
  leaves = jax.tree.leaves(carry)
  if not all(jnp.issubdtype(a.dtype, jnp.floating) for a in leaves) or \
      len({a.dtype for a in leaves}) != 1:
    raise ValueError("the parallel unroll needs a carry of floating-point leaves of one dtype, "
                     f"got {[str(a.dtype) for a in leaves]}")
  if isinstance(init, str) and init not in INITS:
    raise ValueError(f"unknown init {init!r}; known: {list(INITS)} or a trajectory")
  T = jax.tree.leaves(xs)[0].shape[1]
  tol = float(jnp.finfo(leaves[0].dtype).eps) ** 0.75 if tol is None else float(tol)
  if max_iters is None:
    max_iters = 2 * T + 100 if SOLVERS[solver][1] else T
  kind, guess = (init, None) if isinstance(init, str) else ("given", init)
  out, (k, r, ok) = _run(step, solver, tol, int(max_iters), float(damping), kind,
                         return_carries, params, carry, xs, guess)
  return *out, Diagnostics(k, r, ok, solver, tol, int(max_iters))


@functools.partial(jax.jit, static_argnums=range(7))
def _run(step, solver, tol, max_iters, damping, init, return_carries, params, carry, xs, guess):
  """`unroll` compiled once per step and settings (the loop is built anew in every trace)."""
  T = jax.tree.leaves(xs)[0].shape[1]
  _, unravel = ravel_pytree(jax.tree.map(lambda a: a[0], carry))
  flat = jax.vmap(lambda c: ravel_pytree(c)[0])              # [B, ...] leaves -> [B, D]
  h0 = flat(carry)
  if init == "zeros":
    S0 = jnp.zeros(h0.shape[:1] + (T,) + h0.shape[1:], h0.dtype)
  elif init == "carry":
    S0 = jnp.repeat(h0[:, None], T, axis=1)
  else:
    S0 = jax.lax.stop_gradient(jax.vmap(flat, in_axes=1, out_axes=1)(guess)).astype(h0.dtype)
  trajectory = _solver(step, unravel, solver, tol, max_iters, damping)
  S, diagnostics = jax.vmap(trajectory, (None, 0, 0, 0))(params, h0, xs, S0)
  carries = jax.vmap(jax.vmap(unravel))(S)                     # leaves [B, T, ...]
  prev = jax.vmap(jax.vmap(unravel))(jax.vmap(_previous)(h0, S))
  ys = jax.vmap(lambda c, x: step(params, c, x)[1], in_axes=1, out_axes=1)(prev, xs)
  final = jax.tree.map(lambda a: a[:, -1], carries)
  return ((final, ys, carries) if return_carries else (final, ys)), diagnostics


__all__ = ["INITS", "SOLVERS", "Diagnostics", "check_converged", "unroll"]
