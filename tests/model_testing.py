"""Helpers shared by the model tests: tiny overfitting runs, vmapped parameter stacks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax


def overfit(loss_fn, params, steps: int = 300, learning_rate: float = 1e-2) -> float:
  """Adam on loss_fn(params) for `steps` jitted steps; returns the final loss."""
  opt = optax.adam(learning_rate)

  @jax.jit
  def train(params, opt_state):
    def body(carry, _):
      params, opt_state = carry
      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, opt_state = opt.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss
    (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), None, length=steps)
    return params, losses

  _, losses = train(params, opt.init(params))
  return float(losses[-1])


def assert_vmap_over_params(model, inputs: tuple, members: int = 3, atol: float = 1e-5):
  """A stack of parameter sets through jax.vmap(model.apply) equals each set alone."""
  keys = jax.random.split(jax.random.key(42), members)
  stacked = jax.vmap(lambda k: model.init(k, *inputs))(keys)
  out = jax.jit(jax.vmap(lambda v: model.apply(v, *inputs)))(stacked)
  for m in range(members):
    alone = model.apply(jax.tree.map(lambda a, m=m: a[m], stacked), *inputs)
    np.testing.assert_allclose(out[m], alone, atol=atol, rtol=1e-5)
  assert not np.allclose(out[0], out[1])  # the members really differ


# bfloat16 keeps 8 significant bits (unit roundoff 2^-8 ~ 0.004); measured on the models
# tested here (GRU RNN, Jordan, bidirectional GRU; T = 6, outputs of median size ~0.24):
# max |bf16 - f32| ~ 0.007. The tolerance is ~3x that.
BF16_ATOL, BF16_RTOL = 2e-2, 1e-2


def assert_bfloat16_close(model_f32, model_bf16, variables, inputs: tuple,
                          atol: float = BF16_ATOL, rtol: float = BF16_RTOL):
  """The bfloat16 model on the same float32 params agrees with float32 to bf16 rounding."""
  out32 = model_f32.apply(variables, *inputs)
  out16 = model_bf16.apply(variables, *inputs)
  assert out16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out16, np.float32), out32, atol=atol, rtol=rtol)
