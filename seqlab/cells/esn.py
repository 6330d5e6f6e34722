"""Echo-state network reservoir (Jaeger 2001): a fixed random recurrent net.

    h_t = (1 - alpha) * h_{t-1} + alpha * tanh(x_t @ U + h_{t-1} @ W + b)

W is sparse (each weight nonzero with probability `density`) and rescaled so that
its spectral radius is `rho` (< 1 for the echo-state property, in practice);
U ~ uniform(-input_scaling, input_scaling); alpha is the leak rate. The reservoir
is not trained by gradient: `step` stops gradients into U, W, b; only a readout
(fitted in closed form by the model) learns. Gradients w.r.t. the state still flow,
so Jacobian studies work on reservoirs as on any cell.
"""

import jax
import jax.numpy as jnp

from seqlab.cells import elman, initializers, leaky

Array = jax.Array


def init(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    rho: float = 0.9,
    density: float = 0.1,
    input_scaling: float = 1.0,
    bias_scaling: float = 0.0,
    dtype=jnp.float32,
) -> dict:
  """A sparse reservoir W with spectral radius rho, dense uniform U and b."""
  if not 0.0 < density <= 1.0:
    raise ValueError(f"esn density must lie in (0, 1], got {density}")
  k_u, k_w, k_mask, k_b = jax.random.split(key, 4)
  W = jax.random.normal(k_w, (hidden_size, hidden_size), jnp.float32)
  W = W * jax.random.bernoulli(k_mask, density, W.shape)
  return {
      "U": jax.random.uniform(
          k_u, (input_size, hidden_size), dtype, -input_scaling, input_scaling
      ),
      "W": initializers.scale_to_spectral_radius(W, rho).astype(dtype),
      "b": jax.random.uniform(k_b, (hidden_size,), dtype, -bias_scaling, bias_scaling),
  }


initial_carry = elman.initial_carry


def step(params: dict, carry: Array, x: Array, *, leak_rate: float = 1.0) -> tuple[Array, Array]:
  """One reservoir step (h_{t-1}, x_t) -> (h_t, h_t); no gradient reaches U, W, b."""
  fixed = jax.lax.stop_gradient(params)
  return leaky.step(fixed, carry, x, rate=leak_rate)
