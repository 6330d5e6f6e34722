"""`ESN`: an echo-state network, a fixed random reservoir plus a linear readout.

Notes 000 ("Echo state networks"; Jaeger 2001): only the output weights learn.

    h_t = (1 - alpha) h_{t-1} + alpha tanh(U x_t + W h_{t-1} + b)   (`cells.esn`, fixed)
    z_t = [1; h_t]   or   [1; x_t; h_t]    (readout_input=True)
    y_t = W_out z_t                        (row-vector code: y_t = z_t @ W_out, W_out [D, O])

The readout is fitted in closed form by ridge regression over the steps after a washout
(the first steps, still coloured by the initial state):

    W_out = Y Z^T (Z Z^T + lambda I)^-1   (row-vector code: (Z^T Z + lambda I)^-1 Z^T Y)

or trained by gradient like any parameter. The reservoir's U, W, b live in the
non-trainable collection "reservoir" (variables["reservoir"]["reservoir"]["cell"]), so an
optimizer over "params" (which holds only W_out) never touches them; the cell also stops
their gradient.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqlab import cells, unroll
from seqlab.models.recurrent import cast_floats

Array = jax.Array


class Reservoir(nn.Module):
  """The fixed reservoir h_t = esn.step(h_{t-1}, x_t), its weights in collection "reservoir"."""

  hidden_size: int
  rho: float = 0.9
  density: float = 0.1
  input_scaling: float = 1.0
  bias_scaling: float = 0.0
  leak_rate: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, xs: Array, lengths: Array | None = None) -> Array:
    """The reservoir states h_1..h_T [B, T, H] from h_0 = 0 (zeros on padded steps)."""
    cell = cells.make(
        "esn",
        rho=self.rho,
        density=self.density,
        input_scaling=self.input_scaling,
        bias_scaling=self.bias_scaling,
        leak_rate=self.leak_rate,
    )
    params = self.variable(
        "reservoir",
        "cell",
        lambda: cell.init(self.make_rng("params"), xs.shape[-1], self.hidden_size),
    ).value
    params, xs = cast_floats(params, self.dtype), xs.astype(self.dtype)
    _, hs = unroll.scan(cell.step, params, cell.initial_carry(params, xs.shape[:1]), xs, lengths)
    return hs


class ESN(nn.Module):
  """Echo-state network y_t = W_out [1; (x_t;) h_t] over a fixed reservoir (`cells.esn`).

  Attributes:
    hidden_size: reservoir size H.
    output_size: O.
    rho, density, input_scaling, bias_scaling, leak_rate: the reservoir's (`cells.esn`).
    readout_input: also feed x_t to the readout, z_t = [1; x_t; h_t].
    dtype: computation dtype (params are stored in float32 and cast).
  """

  hidden_size: int
  output_size: int
  rho: float = 0.9
  density: float = 0.1
  input_scaling: float = 1.0
  bias_scaling: float = 0.0
  leak_rate: float = 1.0
  readout_input: bool = False
  dtype: Any = jnp.float32

  def setup(self):
    self.reservoir = Reservoir(
        self.hidden_size, self.rho, self.density, self.input_scaling, self.bias_scaling,
        self.leak_rate, self.dtype,
    )

  def features(self, xs: Array, lengths: Array | None = None) -> Array:
    """The readout's inputs z_t = [1; (x_t;) h_t], [B, T, D]; zero on padded steps."""
    xs = xs.astype(self.dtype)
    hs = self.reservoir(xs, lengths)
    parts = [jnp.ones(xs.shape[:2] + (1,), self.dtype)]
    parts += [xs, hs] if self.readout_input else [hs]
    z = jnp.concatenate(parts, axis=-1)
    if lengths is not None:
      z = jnp.where(unroll.length_mask(lengths, xs.shape[1])[..., None], z, 0)
    return z

  @nn.compact
  def __call__(self, xs: Array, lengths: Array | None = None) -> Array:
    """y_t = z_t @ W_out, [B, T, O] (zero on padded steps)."""
    z = self.features(xs, lengths)
    W_out = self.param("W_out", nn.initializers.zeros, (z.shape[-1], self.output_size))
    return z @ W_out.astype(self.dtype)


def ridge_regression(z: Array, y: Array, ridge: float, mask: Array | None = None) -> Array:
  """W_out = (Z^T Z + lambda I)^-1 Z^T Y over the rows where `mask`; z [..., D], y [..., O]."""
  z = z.reshape(-1, z.shape[-1]).astype(jnp.float32)
  y = y.reshape(-1, y.shape[-1]).astype(jnp.float32)
  if mask is not None:
    m = mask.reshape(-1, 1)
    z, y = jnp.where(m, z, 0), jnp.where(m, y, 0)  # a zero row adds nothing to Z^T Z, Z^T Y
  dot = lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)
  gram = dot(z.T, z) + ridge * jnp.eye(z.shape[-1], dtype=z.dtype)
  return jnp.linalg.solve(gram, dot(z.T, y))


def fit(
    model: ESN,
    variables: dict,
    xs: Array,
    ys: Array,
    *,
    ridge: float = 1e-6,
    washout: int = 0,
    lengths: Array | None = None,
) -> dict:
  """`variables` with W_out fitted to targets ys [B, T, O] by ridge regression.

  Steps t < washout of every sequence (and padded steps) are left out of the fit.
  """
  z = model.apply(variables, xs, lengths, method=ESN.features)
  T = xs.shape[1]
  mask = jnp.broadcast_to(jnp.arange(T) >= washout, xs.shape[:2])
  if lengths is not None:
    mask = mask & unroll.length_mask(lengths, T)
  W_out = ridge_regression(z, ys, ridge, mask)
  return {**variables, "params": {**variables["params"], "W_out": W_out}}
