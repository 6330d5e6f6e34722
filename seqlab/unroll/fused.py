"""The whole-sequence fast path of `unroll.scan` for the elman, lstm and gru cells.

The same forward math as scanning `cell.step`; a different gradient schedule, written as
one `jax.custom_vjp` over the whole sequence:

    forward   ux_t = project(x_t),  h_t = recur(h_{t-1}, ux_t)   (the cell's own functions),
              saving every product P_t^k = v_t^k @ W_k that recur forms with a block
              W_k of the recurrent weights, and its input v_t^k (h_{t-1}, or r_t * h_{t-1})
    backward  a reverse scan of recur's vjp step by step: d ux_t, d P_t^k and
              d h_{t-1} (through d P_t^k @ W_k^T); no [H, G]-sized work per step
    after it  dW_k = sum_t (v_t^k)^T d P_t^k   one GEMM over all B*T rows per block,
              dU, db, dx = the vjp of project over all steps at once (one GEMM each)

Plain autodiff of the scan instead forms one small [H, G] weight-gradient GEMM per step.
Cells take part by routing every product with W through their `matmul` argument
(`common.matmul`); `unroll.scan` uses this path whenever `runner(step)` finds the
step's family is in AUTOMATIC (`fused=True` forces it for every family here, `fused=False`
is the plain scan). Forward-mode autodiff (jax.jvp, jacfwd) is not defined through a
custom_vjp: use fused=False.
"""

import dataclasses
import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp

from seqlab.cells import common, elman, gru, lstm
from seqlab.unroll import plain

Array = jax.Array

FAMILIES: dict[Callable, ModuleType] = {elman.step: elman, lstm.step: lstm, gru.step: gru}
# The families `unroll.scan` sends here unless told otherwise: only where the fast path won
# on the 2-core CPU this was measured on (scripts/bench_rnn.py and profile_rnn.py, B=32
# I=128, 2026-11-30). LSTM training: plain scan ahead or equal in all 7 readings at H=256
# (fast / plain 0.92-1.00), equal at H=512; GRU training (torch variant): fast 0.88-0.91x
# plain; elman: within +-10% either way, ahead in 3 of 5. The fast path saves GEMM time
# (LSTM T128 H256: 41 vs 62 ms) but spends it on extra once-per-call work and launch (see
# README "Where the time goes"). In bfloat16 it ran 0.65x the plain scan (lstm), so
# `unroll.scan` takes it by default only for other dtypes.
AUTOMATIC = frozenset({elman.step})
_PROJECTED = ("U", "W")  # weights whose gradients come from the whole-sequence GEMMs


class _Recorder:
  """A `matmul` v @ W_k + e_k that keeps its inputs v; e_k = 0 are inputs whose
  cotangents are d P_k, the gradients of the products. Given `blocks` (the W_k sliced
  once, outside the loop), it multiplies by those, so that the step's vjp closes over them
  instead of saving per-step slices of W."""

  def __init__(self, es=None, blocks=None):
    self.es, self.blocks, self.inputs, self.products = es, blocks, [], []

  def __call__(self, v: Array, W: Array) -> Array:
    product = v @ (W if self.blocks is None else self.blocks[len(self.inputs)])
    if self.es is not None:
      product = product + self.es[len(self.inputs)]
    self.inputs.append(v)
    self.products.append(product)
    return product


class _Blocks:
  """A `matmul` that keeps the weight blocks W_k it is called with (dW by their vjp)."""

  def __init__(self):
    self.blocks = []

  def __call__(self, v: Array, W: Array) -> Array:
    self.blocks.append(W)
    return jnp.zeros(v.shape[:-1] + W.shape[-1:], W.dtype)


def _where(real: Array | None, new: Any, old: Any) -> Any:
  """Per batch row: new on real steps, old on padding."""
  if real is None:
    return new
  return jax.tree.map(lambda n, o: jnp.where(real.reshape(real.shape + (1,) * (n.ndim - 1)), n, o),
                      new, old)


@dataclasses.dataclass(frozen=True)
class _Spec:
  """What the custom_vjp treats as static: the cell family, its step options, unroll."""

  family: ModuleType
  options: tuple[tuple[str, Any], ...]
  unroll: int

  def recur(self, params, carry, ux, real, matmul):
    """One masked step: padding keeps the carry and outputs zeros."""
    new, y = self.family.recur(params, carry, ux, matmul=matmul, **dict(self.options))
    return _where(real, new, carry), _where(real, y, jax.tree.map(jnp.zeros_like, y))


def _weight_blocks(spec: "_Spec", params, carry, xs) -> list[Array]:
  """The blocks W_k of W that recur multiplies by (W itself, or GRU's slices of it)."""
  x = jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype)
  ux = jax.eval_shape(spec.family.project, params, x)
  blocks = _Blocks()
  spec.recur(params, carry, jnp.zeros(ux.shape, ux.dtype), None, blocks)
  return blocks.blocks


def _block_of(leaf: Any, blocks: list[Array]) -> int:
  """k where `leaf` is the weight block W_k itself, else -1 (a per-step residual)."""
  return next((k for k, block in enumerate(blocks) if leaf is block), -1)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class _VJPLayout:
  """How to rebuild a step's vjp function from its saved leaves (no W_k is saved per step:
  block_of[i] = k puts W_k at leaf i, -1 the next saved leaf)."""

  treedef: Any
  block_of: tuple[int, ...]


def _forward(spec: _Spec, params, carry, xs, real, save: bool):
  """The forward scan (time-major xs [T, B, I], real [T, B] or None).

  With `save`, each step also runs recur's vjp forward and keeps its residuals (the
  gate activations), leaving out the blocks W_k, which the backward pass closes over.
  """
  W = params["W"]
  small = {k: v for k, v in params.items() if k not in _PROJECTED}
  blocks = _weight_blocks(spec, params, carry, xs) if save else []
  layout = []

  def body(h, inputs):
    x_t, real_t = inputs
    ux = spec.family.project(params, x_t)
    if not save:
      return spec.recur(params, h, ux, real_t, common.matmul)
    shapes = jax.eval_shape(lambda h, ux: _products(spec, params, h, ux), h, ux)
    es = [jnp.zeros(s.shape, s.dtype) for s in shapes]

    def step(h, ux, small, es):
      record = _Recorder(es, blocks)
      return spec.recur({**small, "W": W}, h, ux, real_t, record), record.inputs

    (new, y), vjp_fn, v_inputs = jax.vjp(step, h, ux, small, es, has_aux=True)
    leaves, treedef = jax.tree.flatten(vjp_fn)
    block_of = tuple(_block_of(leaf, blocks) for leaf in leaves)
    layout[:] = [_VJPLayout(treedef, block_of)]
    kept = [leaf for leaf, k in zip(leaves, block_of, strict=True) if k < 0]
    return new, (y, (kept, v_inputs))

  carry, out = jax.lax.scan(body, carry, (xs, real), unroll=spec.unroll)
  return (carry, out) if not save else (carry, out, layout[0])


def _products(spec, params, h, ux):
  record = _Recorder()
  spec.recur(params, h, ux, None, record)
  return record.products


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _sequence(spec: _Spec, params, carry, xs, real):
  return _forward(spec, params, carry, xs, real, save=False)


def _sequence_fwd(spec, params, carry, xs, real):
  carry_T, (ys, saved), layout = _forward(spec, params, carry, xs, real, save=True)
  return (carry_T, ys), (params, xs, saved, layout)


def _sequence_bwd(spec, residuals, cotangents):
  params, xs, (kept, v_inputs), layout = residuals
  d_carry_T, d_ys = cotangents
  # The blocks W_k (as the forward pass multiplied by them) and their vjp, which places
  # each dW_k into dW.
  blocks, blocks_vjp = jax.vjp(
      lambda W: _weight_blocks(spec, {**params, "W": W}, d_carry_T, xs), params["W"])

  def body(d_carry, step_in):
    kept_t, dy = step_in
    kept_t = iter(kept_t)
    vjp_fn = layout.treedef.unflatten([blocks[k] if k >= 0 else next(kept_t)
                                       for k in layout.block_of])
    d_h, d_ux, d_small, d_products = vjp_fn((d_carry, dy))
    return d_h, (d_ux, d_small, d_products)

  d_carry0, (d_uxs, d_small, d_products) = jax.lax.scan(
      body, d_carry_T, (kept, d_ys), reverse=True, unroll=spec.unroll)

  # dW_k = sum over t and b of v^T dP: one GEMM per block, placed into W by the blocks' vjp.
  rows = lambda a: a.reshape(-1, a.shape[-1])  # [T, B, F] -> [T*B, F]: one 2-D GEMM
  (d_W,) = blocks_vjp([rows(v).T @ rows(dp) for v, dp in zip(v_inputs, d_products, strict=True)])
  _, project_vjp = jax.vjp(spec.family.project, params, rows(xs))
  d_params, d_xs = project_vjp(rows(d_uxs))
  d_xs = d_xs.reshape(xs.shape)
  d_params = {k: d + (d_W if k == "W" else 0) + (d_small[k].sum(0) if k in d_small else 0)
              for k, d in d_params.items()}
  return d_params, d_carry0, d_xs, None


_sequence.defvjp(_sequence_fwd, _sequence_bwd)


def runner(step: Callable, unroll: int = 1, automatic: bool = False) -> Callable | None:
  """`run(params, carry, xs, real) -> (carry, ys)` (time-major) for a cell step, or None.

  `step` is a family's `step`, bare or with options bound by `functools.partial` (as
  `cells.make` binds them); any other step has no fast path, nor (with `automatic`) a
  family outside AUTOMATIC.
  """
  func, options = step, {}
  if isinstance(step, functools.partial):
    if step.args:
      return None
    func, options = step.func, step.keywords
  family = FAMILIES.get(func) if callable(func) else None
  if family is None or (automatic and func not in AUTOMATIC):
    return None
  return functools.partial(_sequence, _Spec(family, tuple(sorted(options.items())), unroll))


def scan(run: Callable, params, carry, xs, lengths=None, reverse: bool = False):
  """`unroll.scan`'s (carry, ys) through `run = runner(step)`: batch-major xs, lengths and
  reverse handled as the plain scan handles them."""
  if lengths is not None and reverse:
    xs = plain.reverse_within_lengths(xs, lengths)
  real = None if lengths is None else plain.length_mask(lengths, plain.num_steps(xs)).T
  flip = (lambda t: jax.tree.map(lambda a: jnp.flip(a, 0), t)) if reverse and lengths is None \
      else (lambda t: t)
  carry, ys = run(params, carry, flip(plain.time_major(xs)), real)
  ys = plain.batch_major(flip(ys))
  if lengths is not None and reverse:
    ys = plain.reverse_within_lengths(ys, lengths)
  return carry, ys
