"""Decoding from any autoregressive model: greedy, sampling, beam search.

Sampling draws y_t ~ softmax(logits / temperature) restricted (`truncate`) to the top_k
most probable tokens and/or the nucleus: the fewest most probable tokens whose mass
reaches top_p (Holtzman et al. 2020), renormalised.

Every decoder model exposes the same pair, in the cells' order (docs/ARCHITECTURE.md):

    carry = model.start(...)                           # conditioning: source, image, batch
    carry, logits = model.step(carry, tokens [N])      # logits [N, V] of the next token

`step` consumes the previous token of N running sequences; the carry is any pytree whose
leaves have N as their leading axis (a cell's carry, an attention memory, a Transformer's
cache). The decoders below take `step` itself (a bound model's method, `model.bind(params)
.step`). Everything is a `lax.scan` of fixed length, so all three run under `jax.jit`.

Sequences stop at `eos_id` (when given): afterwards they emit `eos_id` with log
probability 0, so their scores stay the log-probability of the sequence up to eos.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
StepFn = Callable[[Any, Array], tuple[Any, Array]]  # (carry, tokens) -> (carry, logits)


class Decoded(NamedTuple):
  """tokens [B, L] (or [B, K, L] for beams), their log-probabilities, and lengths."""

  tokens: Array
  log_probs: Array
  lengths: Array


def _after_eos(log_probs: Array, finished: Array, eos_id: int | None) -> Array:
  """A finished sequence can only continue with eos, at log-probability 0."""
  if eos_id is None:
    return log_probs
  only_eos = jnp.full_like(log_probs, -jnp.inf).at[..., eos_id].set(0.0)
  return jnp.where(finished[..., None], only_eos, log_probs)


def _length(tokens: Array, eos_id: int | None) -> Array:
  """Tokens up to and including the first eos (all of them without one)."""
  L = tokens.shape[-1]
  if eos_id is None:
    return jnp.full(tokens.shape[:-1], L, jnp.int32)
  is_eos = tokens == eos_id
  first = jnp.argmax(is_eos, axis=-1)
  return jnp.where(is_eos.any(-1), first + 1, L).astype(jnp.int32)


def _decode(step_fn, state, bos_id, max_len, eos_id, choose, rng):
  """Shared loop of greedy and sampling: choose(log_probs, key) picks the next tokens."""
  batch = jax.tree.leaves(state)[0].shape[0]
  keys = jax.random.split(rng, max_len)

  def body(carry, key):
    state, prev, finished, total = carry
    state, logits = step_fn(state, prev)
    log_probs = _after_eos(jax.nn.log_softmax(logits.astype(jnp.float32)), finished, eos_id)
    token = choose(log_probs, key)
    total = total + jnp.take_along_axis(log_probs, token[:, None], -1)[:, 0]
    if eos_id is not None:
      finished = finished | (token == eos_id)
    return (state, token, finished, total), token

  start = (state, jnp.full((batch,), bos_id, jnp.int32), jnp.zeros(batch, bool),
           jnp.zeros(batch))
  (_, _, _, total), tokens = jax.lax.scan(body, start, keys)
  tokens = tokens.T
  return Decoded(tokens, total, _length(tokens, eos_id))


def greedy(step_fn: StepFn, state: Any, bos_id: int, max_len: int,
           eos_id: int | None = None) -> Decoded:
  """y_t = argmax_y p(y | y_<t): the locally most probable token at every step."""
  choose = lambda log_probs, key: jnp.argmax(log_probs, -1).astype(jnp.int32)
  return _decode(step_fn, state, bos_id, max_len, eos_id, choose, jax.random.key(0))


def truncate(log_probs: Array, top_k: int = 0, top_p: float = 1.0) -> Array:
  """log_probs [..., V] with -inf outside the top_k (0: all) and outside the nucleus.

  The nucleus is the fewest most probable tokens whose probabilities sum to >= top_p
  (1.0: all); a token tied with the last one kept is kept too. The result is not
  renormalised (`jax.random.categorical` does not need it).
  """
  if top_k > 0:
    kth = jax.lax.top_k(log_probs, top_k)[0][..., -1:]
    log_probs = jnp.where(log_probs < kth, -jnp.inf, log_probs)
  if top_p < 1.0:
    ranked = -jnp.sort(-log_probs, axis=-1)  # most probable first
    p = jnp.exp(ranked - jax.nn.logsumexp(ranked, axis=-1, keepdims=True))
    mass_before = jnp.cumsum(p, axis=-1) - p
    smallest_kept = jnp.min(jnp.where(mass_before < top_p, ranked, jnp.inf), -1, keepdims=True)
    log_probs = jnp.where(log_probs < smallest_kept, -jnp.inf, log_probs)
  return log_probs


def sample(step_fn: StepFn, state: Any, bos_id: int, max_len: int, rng: Array,
           temperature: float = 1.0, eos_id: int | None = None, top_k: int = 0,
           top_p: float = 1.0) -> Decoded:
  """y_t ~ softmax(logits / temperature) within the top_k and the top_p nucleus.

  log_probs are those of the model (temperature 1, no truncation).
  """
  if temperature <= 0 or not 0 < top_p <= 1 or top_k < 0:
    raise ValueError(f"sampling needs temperature > 0, 0 < top_p <= 1 and top_k >= 0; got "
                     f"temperature={temperature}, top_p={top_p}, top_k={top_k}")

  def choose(log_probs, key):
    tempered = truncate(jax.nn.log_softmax(log_probs / temperature), top_k, top_p)
    return jax.random.categorical(key, tempered).astype(jnp.int32)
  return _decode(step_fn, state, bos_id, max_len, eos_id, choose, rng)


def beam_search(step_fn: StepFn, state: Any, bos_id: int, max_len: int, beam_width: int,
                eos_id: int | None = None, length_penalty: float = 0.0) -> Decoded:
  """The beam_width most probable sequences, best first, for each of the B inputs.

  At every step each beam extends by every token and the beam_width best of the
  K * V candidates (by total log-probability) survive. Finished beams carry on with
  eos at log-probability 0. The survivors are ranked at the end by
  log p(y) / length(y)^length_penalty (0: plain log-probability; 1: per token).
  Returns tokens [B, K, L], log_probs [B, K] (unnormalised), lengths [B, K].
  """
  B = jax.tree.leaves(state)[0].shape[0]
  K = beam_width
  tile = lambda a: jnp.repeat(a, K, axis=0)  # [B, ...] -> [B*K, ...], beams of b together
  state = jax.tree.map(tile, state)
  scores = jnp.tile(jnp.array([0.0] + [-jnp.inf] * (K - 1)), (B, 1))  # one live beam at start

  def body(carry, t):
    state, prev, finished, scores, tokens = carry
    state, logits = step_fn(state, prev.reshape(B * K))
    V = logits.shape[-1]
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(B, K, V)
    log_probs = _after_eos(log_probs, finished, eos_id)
    candidates = (scores[..., None] + log_probs).reshape(B, K * V)
    scores, index = jax.lax.top_k(candidates, K)
    parent, token = index // V, (index % V).astype(jnp.int32)
    pick = lambda a: jnp.take_along_axis(a, parent.reshape(B, K, *([1] * (a.ndim - 2))), 1)
    tokens = pick(tokens).at[:, :, t].set(token)
    finished = pick(finished)
    if eos_id is not None:
      finished = finished | (token == eos_id)
    flat_parent = (jnp.arange(B)[:, None] * K + parent).reshape(B * K)
    state = jax.tree.map(lambda a: a[flat_parent], state)
    return (state, token, finished, scores, tokens), None

  start = (state, jnp.full((B, K), bos_id, jnp.int32), jnp.zeros((B, K), bool), scores,
           jnp.zeros((B, K, max_len), jnp.int32))
  (_, _, _, scores, tokens), _ = jax.lax.scan(body, start, jnp.arange(max_len))
  lengths = _length(tokens, eos_id)
  ranked = scores / lengths.astype(jnp.float32) ** length_penalty
  order = jnp.argsort(-ranked, axis=1)
  take = lambda a: jnp.take_along_axis(a, order.reshape(B, K, *([1] * (a.ndim - 2))), 1)
  return Decoded(take(tokens), take(scores), take(lengths))
