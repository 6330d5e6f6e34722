"""Weight initialisation schemes for input (U) and recurrent (W) matrices.

Matrices use the row-vector convention of batch-major code: a pre-activation is
`x @ U + h @ W + b`, so `U` is [input_size, hidden] and `W` is [hidden, hidden]
(the transposes of the column-vector `U x + W h` in the lecture notes).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def xavier(key: Array, shape: tuple[int, int], scale: float = 1.0, dtype=jnp.float32) -> Array:
  """Glorot/Xavier uniform: U(-a, a) with a = scale * sqrt(6 / (fan_in + fan_out))."""
  fan_in, fan_out = shape
  limit = scale * np.sqrt(6.0 / (fan_in + fan_out))
  return jax.random.uniform(key, shape, dtype, -limit, limit)


def orthogonal(key: Array, shape: tuple[int, int], scale: float = 1.0, dtype=jnp.float32) -> Array:
  """A (semi-)orthogonal matrix times `scale` (Saxe et al. 2014): all singular values = scale."""
  return (scale * jax.nn.initializers.orthogonal()(key, shape, jnp.float32)).astype(dtype)


def identity(key: Array, shape: tuple[int, int], scale: float = 1.0, dtype=jnp.float32) -> Array:
  """W = scale * I, the IRNN initialisation of Le, Jaitly & Hinton (2015)."""
  del key
  rows, cols = shape
  if rows != cols:
    raise ValueError(f"identity init needs a square matrix, got shape {shape}")
  return scale * jnp.eye(rows, dtype=dtype)


def spectral_radius(W: Array) -> Array:
  """rho(W) = max |lambda_i(W)|, the largest eigenvalue modulus (works under jit)."""

  def host_radius(w):
    w = np.asarray(w, np.float64)
    return np.abs(np.linalg.eigvals(w)).max(axis=-1).astype(np.float32)

  out = jax.ShapeDtypeStruct(W.shape[:-2], jnp.float32)
  return jax.pure_callback(host_radius, out, W, vmap_method="expand_dims")


def scale_to_spectral_radius(W: Array, rho: float) -> Array:
  """W * rho / rho(W): the same eigenvectors, largest |eigenvalue| exactly rho."""
  return W * (rho / spectral_radius(W)).astype(W.dtype)


def target_spectral_radius(
    key: Array, shape: tuple[int, int], scale: float = 1.0, dtype=jnp.float32
) -> Array:
  """Gaussian W rescaled so that its spectral radius equals `scale` (= rho)."""
  W = jax.random.normal(key, shape, jnp.float32) / np.sqrt(shape[0])
  return scale_to_spectral_radius(W, scale).astype(dtype)


INITIALIZERS: dict[str, Callable[..., Array]] = {
    "xavier": xavier,
    "orthogonal": orthogonal,
    "identity": identity,
    "spectral_radius": target_spectral_radius,
}


def get_initializer(name: str) -> Callable[..., Array]:
  """The init scheme called `name`; raises listing the known schemes."""
  try:
    return INITIALIZERS[name]
  except KeyError:
    raise ValueError(
        f"unknown init scheme {name!r}; known schemes: {sorted(INITIALIZERS)}"
    ) from None


def recurrent_blocks(
    key: Array, hidden_size: int, num_blocks: int, scheme: str, scale: float, dtype
) -> Array:
  """W = [W_1 | ... | W_k], each [hidden, hidden] block drawn by `scheme` (one per gate)."""
  init = get_initializer(scheme)
  keys = jax.random.split(key, num_blocks)
  blocks = [init(k, (hidden_size, hidden_size), scale, dtype) for k in keys]
  return jnp.concatenate(blocks, axis=1)


def chrono_bias(key: Array, hidden_size: int, max_lag: float, dtype=jnp.float32) -> Array:
  """Chrono initialisation (Tallec & Ollivier 2018): b = log(u), u ~ U[1, max_lag - 1] per unit.

  A gate sigma(a + b) that keeps the state (LSTM forget, GRU update) then starts with a
  characteristic memory of about u steps, spread over the lags up to max_lag.
  """
  if max_lag <= 2:
    raise ValueError(f"chrono initialisation needs max_lag > 2, got {max_lag}")
  u = jax.random.uniform(key, (hidden_size,), jnp.float32, 1.0, max_lag - 1.0)
  return jnp.log(u).astype(dtype)


def input_blocks(key: Array, input_size: int, hidden_size: int, num_blocks: int, dtype) -> Array:
  """U = [U_1 | ... | U_k], each [input, hidden] block Xavier-uniform (one per gate)."""
  keys = jax.random.split(key, num_blocks)
  blocks = [xavier(k, (input_size, hidden_size), 1.0, dtype) for k in keys]
  return jnp.concatenate(blocks, axis=1)
