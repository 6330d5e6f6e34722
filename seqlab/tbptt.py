"""Truncated backpropagation through time, BPTT(k1, k2) of Williams & Peng (1990).

Every k1 steps an update is made from the losses of those k1 steps, and their
gradient flows back through at most k2 steps: the state entering the last k2 steps
is treated as a constant (`stop_gradient` at the window boundary).

    k2 >= k1: window = the k2 - k1 steps before the chunk (no loss) + the k1 chunk steps
    k2 <  k1: window = the chunk; the state entering each of its first k1 - k2 steps
              is cut, so each loss there flows back through its own step only

With k2 >= T and one update this is full BPTT; with k1 = k2 = 1 each loss L_t sees
h_{t-1} as a constant. The state (`TBPTTState`) carries the last carry and the last
k2 - k1 inputs across chunks and across batches of a long stream, without gradient.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqlab import unroll

Array = jax.Array
StepLoss = Callable[[Any, Any, Any], Array]  # (params, y_t, target_t) -> scalar
Sequence = Callable[[Any, Any, Any], tuple[Any, Any]]  # (params, carry, xs) -> (carry, ys)


class TBPTTState(NamedTuple):
  """What a truncated window needs from the past; no gradient flows into it."""

  carry: Any  # the state entering the first history step
  history: Any  # the last max(0, k2 - k1) inputs, leaves [B, P, ...]
  history_real: Array  # [P] bool: False until the stream has produced those steps


def _check(k1: int, k2: int) -> None:
  if k1 < 1 or k2 < 1:
    raise ValueError(f"truncated BPTT needs k1 >= 1 and k2 >= 1, got k1={k1}, k2={k2}")


def init_state(carry: Any, xs: Any, k1: int, k2: int) -> TBPTTState:
  """The state at the start of a stream: `carry`, and an empty history shaped like xs."""
  _check(k1, k2)
  P = max(0, k2 - k1)
  history = jax.tree.map(lambda a: jnp.zeros((a.shape[0], P, *a.shape[2:]), a.dtype), xs)
  return TBPTTState(carry, history, jnp.zeros((P,), bool))


def chunk_loss(
    step: unroll.Step,
    step_loss: StepLoss,
    params: Any,
    state: TBPTTState,
    xs: Any,
    targets: Any,
    k1: int,
    k2: int,
    sequence: Sequence | None = None,
) -> tuple[Array, TBPTTState]:
  """Sum of the k1 chunk losses with gradients truncated at k2 steps, and the next state.

  xs and targets are batch-major [B, k1, ...]; the result is differentiable in params.
  `sequence(params, carry, xs) -> (carry, ys [B, k1, ...])`, optional, runs `step` over the
  whole chunk at once (a model's recurrent layer through its backend, oneDNN's included).
  It is used where that is exact, k2 = k1: the window is the chunk and only the state
  entering it is cut. k2 > k1 (a history before the chunk, masked at a stream's start) and
  k2 < k1 (cuts inside the chunk) run `step` by step.
  """
  _check(k1, k2)
  if unroll.num_steps(xs) != k1:
    raise ValueError(f"a truncated-BPTT chunk has k1={k1} steps, got {unroll.num_steps(xs)}")
  if sequence is not None and k2 == k1:
    carry, ys = sequence(params, jax.lax.stop_gradient(state.carry), xs)
    losses = jax.vmap(step_loss, in_axes=(None, 0, 0))(
        params, unroll.time_major(ys), unroll.time_major(targets))
    return losses.sum(), state._replace(carry=jax.lax.stop_gradient(carry))
  P = max(0, k2 - k1)
  window = jax.tree.map(lambda h, x: jnp.concatenate([h, x], axis=1), state.history, xs)
  real = jnp.concatenate([state.history_real, jnp.ones((k1,), bool)])
  cut = jnp.asarray(np.arange(P + k1) <= k1 - k2)  # steps whose entering state is a constant

  def body(h, inputs):
    x_t, real_t, cut_t = inputs
    h = jax.tree.map(lambda a: jnp.where(cut_t, jax.lax.stop_gradient(a), a), h)
    h_new, y = step(params, h, x_t)
    h = jax.tree.map(lambda n, o: jnp.where(real_t, n, o), h_new, h)
    return h, (y, h)

  start = jax.lax.stop_gradient(state.carry)
  _, (ys, carries) = jax.lax.scan(body, start, (unroll.time_major(window), real, cut))
  chunk_ys = jax.tree.map(lambda a: a[P:], ys)
  losses = jax.vmap(step_loss, in_axes=(None, 0, 0))(params, chunk_ys, unroll.time_major(targets))
  next_state = TBPTTState(
      carry=jax.lax.stop_gradient(jax.tree.map(lambda a: a[k1 - 1], carries)),
      history=jax.tree.map(lambda a: a[:, k1:], window),
      history_real=real[k1:],
  )
  return losses.sum(), next_state


def _chunks(tree: Any, k1: int) -> Any:
  """[B, n*k1, ...] -> [n, B, k1, ...] (the scan axis first)."""
  T = unroll.num_steps(tree)
  if T % k1:
    raise ValueError(
        f"truncated BPTT splits a batch of {T} steps into updates every k1={k1} steps; "
        "choose a batch length that is a multiple of k1"
    )

  def split(a):
    a = a.reshape(a.shape[0], T // k1, k1, *a.shape[2:])
    return jnp.swapaxes(a, 0, 1)

  return jax.tree.map(split, tree)


def truncated_grads(
    step: unroll.Step,
    step_loss: StepLoss,
    params: Any,
    state: TBPTTState,
    xs: Any,
    targets: Any,
    k1: int,
    k2: int,
) -> tuple[Array, Any, TBPTTState]:
  """Per-update losses [n] and gradients (leaves [n, ...]) at fixed params, and the next state.

  n = T / k1 updates; the sum of the gradients is the truncated gradient of the summed loss.
  """
  grad_fn = jax.value_and_grad(chunk_loss, argnums=2, has_aux=True)

  def body(state, chunk):
    (loss, state), grads = grad_fn(step, step_loss, params, state, *chunk, k1, k2)
    return state, (loss, grads)

  state, (losses, grads) = jax.lax.scan(body, state, (_chunks(xs, k1), _chunks(targets, k1)))
  return losses, grads, state


def truncated_train(
    step: unroll.Step,
    step_loss: StepLoss,
    params: Any,
    update_state: Any,
    state: TBPTTState,
    xs: Any,
    targets: Any,
    k1: int,
    k2: int,
    update: Callable[[Any, Any, Any], tuple[Any, Any]],
) -> tuple[Any, Any, TBPTTState, Array]:
  """Williams & Peng's online form: params change after every chunk of k1 steps.

  `update(params, update_state, grads) -> (params, update_state)`, e.g. an optax step.
  Returns the new params, update state, truncation state and the per-update losses.
  """
  grad_fn = jax.value_and_grad(chunk_loss, argnums=2, has_aux=True)

  def body(carry, chunk):
    params, update_state, state = carry
    (loss, state), grads = grad_fn(step, step_loss, params, state, *chunk, k1, k2)
    params, update_state = update(params, update_state, grads)
    return (params, update_state, state), loss

  (params, update_state, state), losses = jax.lax.scan(
      body, (params, update_state, state), (_chunks(xs, k1), _chunks(targets, k1))
  )
  return params, update_state, state, losses


class Stream:
  """Stateful truncated BPTT over a long stream: each batch continues where the last ended.

  The final state of one batch (carry and history, without gradient) is the start of
  the next, as in character language modelling where batch row r continues row r.
  """

  def __init__(
      self,
      step: unroll.Step,
      step_loss: StepLoss,
      k1: int,
      k2: int,
      update: Callable[[Any, Any, Any], tuple[Any, Any]] | None = None,
  ):
    _check(k1, k2)
    self.k1, self.k2 = k1, k2
    self.state: TBPTTState | None = None
    self._grads = jax.jit(
        lambda p, s, x, y: truncated_grads(step, step_loss, p, s, x, y, k1, k2)
    )
    self._train = None
    if update is not None:
      self._train = jax.jit(
          lambda p, u, s, x, y: truncated_train(step, step_loss, p, u, s, x, y, k1, k2, update)
      )

  def reset(self, carry: Any, xs: Any) -> None:
    """Start a new stream from `carry` (history shaped like the batches xs)."""
    self.state = init_state(carry, xs, self.k1, self.k2)

  def _require_state(self) -> TBPTTState:
    if self.state is None:
      raise RuntimeError("call Stream.reset(carry, xs) before the first batch")
    return self.state

  def grads(self, params: Any, xs: Any, targets: Any) -> tuple[Array, Any]:
    """Per-update losses and gradients for this batch; the state moves on."""
    losses, grads, self.state = self._grads(params, self._require_state(), xs, targets)
    return losses, grads

  def train(self, params: Any, update_state: Any, xs: Any, targets: Any):
    """Update params after every k1 steps of this batch; returns (params, update_state, losses)."""
    if self._train is None:
      raise ValueError("Stream.train needs the `update` function given to Stream(...)")
    params, update_state, self.state, losses = self._train(
        params, update_state, self._require_state(), xs, targets
    )
    return params, update_state, losses
