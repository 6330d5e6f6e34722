"""Pieces shared by the cell families: activations, gate splitting, layer norm."""

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
MatMul = Callable[[Array, Array], Array]


def matmul(v: Array, W: Array) -> Array:
  """v @ W. Cells compute every product with a recurrent weight through their `matmul`
  argument (this by default), so `seqlab.unroll.fused` can save the products of the forward
  pass and form dW as one GEMM over all steps."""
  return v @ W

LEAKY_SLOPE = 0.01  # leaky ReLU's slope for a < 0 (Maas et al. 2013)

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": lambda a: jnp.where(a >= 0, a, LEAKY_SLOPE * a),  # max(a, 0.01 a)
    "elu": lambda a: jnp.where(a > 0, a, jnp.expm1(jnp.minimum(a, 0))),  # a, or e^a - 1
    "sigmoid": jax.nn.sigmoid,  # the logistic function 1 / (1 + e^-a)
    "identity": lambda a: a,
    "softmax": jax.nn.softmax,  # over the last axis; an output activation
}

# f'(a) bound used by the vanishing-gradient bound ||dh_t/dh_k|| <= (gamma ||W||)^(t-k).
DERIVATIVE_BOUND = {
    "tanh": 1.0, "sigmoid": 0.25, "identity": 1.0, "relu": 1.0, "leaky_relu": 1.0, "elu": 1.0,
}


def get_activation(name: str) -> Callable[[Array], Array]:
  """The activation called `name`; raises listing the known ones."""
  try:
    return ACTIVATIONS[name]
  except KeyError:
    raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}") from None


def split_gates(a: Array, num_gates: int) -> list[Array]:
  """Split the fused pre-activation [..., k*H] into k blocks of [..., H]."""
  return jnp.split(a, num_gates, axis=-1)


def layer_norm(a: Array, gain: Array, bias: Array | None = None, eps: float = 1e-5) -> Array:
  """LN(a) = gain * (a - mean(a)) / sqrt(var(a) + eps) + bias, over the last axis."""
  a32 = a.astype(jnp.float32)
  mean = a32.mean(-1, keepdims=True)
  var = jnp.square(a32 - mean).mean(-1, keepdims=True)
  out = ((a32 - mean) * jax.lax.rsqrt(var + eps)).astype(a.dtype) * gain
  return out if bias is None else out + bias


def gate_layer_norm(a: Array, gains: Array) -> Array:
  """Normalise each gate block of a fused pre-activation on its own: gains is [k, H]."""
  num_gates = gains.shape[0]
  return jnp.concatenate(
      [layer_norm(block, g) for block, g in zip(split_gates(a, num_gates), gains, strict=True)],
      axis=-1,
  )


def leaky_integrate(h_prev: Array, h_new: Array, rate: Array | float) -> Array:
  """h_t = (1 - a) * h_{t-1} + a * h_new: a leaky integrator with rate a in (0, 1]."""
  return (1.0 - rate) * h_prev + rate * h_new


def zeros_carry(params: dict, batch_shape: tuple[int, ...], size: int) -> Array:
  """A zero state [*batch_shape, size] in the dtype of the recurrent weights."""
  return jnp.zeros((*batch_shape, size), params["W"].dtype)
