"""Optimizers from config: schedules by value, clipping, weight decay, named errors."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqlab import config as base
from seqlab.train import optim


def _cfg(**kw):
  c = base.base_config().optimizer.to_dict()
  c.update(kw)
  return c


def test_schedules_by_value():
  s = optim.make_schedule(_cfg(learning_rate=1.0, schedule="linear", decay_steps=10,
                               end_learning_rate=0.0, warmup_steps=5))
  np.testing.assert_allclose([s(0), s(5), s(10), s(15)], [0.0, 1.0, 0.5, 0.0], atol=1e-6)
  s = optim.make_schedule(_cfg(learning_rate=1.0, schedule="cosine", decay_steps=10))
  np.testing.assert_allclose([s(0), s(5), s(10)], [1.0, 0.5, 0.0], atol=1e-6)
  s = optim.make_schedule(_cfg(learning_rate=1.0, schedule="exponential", decay_steps=10,
                               end_learning_rate=0.01))
  np.testing.assert_allclose([s(0), s(10), s(20)], [1.0, 0.01, 0.01], rtol=1e-5)


def test_global_norm_clipping_rescales_to_the_threshold():
  opt = optim.make_optimizer(_cfg(name="sgd", learning_rate=1.0, clip_norm=1.0))
  params = {"w": jnp.zeros(2)}
  g = {"w": jnp.array([3.0, 4.0])}  # ||g|| = 5 -> g / 5
  updates, _ = opt.update(g, opt.init(params), params)
  np.testing.assert_allclose(updates["w"], [-0.6, -0.8], rtol=1e-6)
  opt = optim.make_optimizer(_cfg(name="sgd", learning_rate=1.0, clip_value=1.0))
  updates, _ = opt.update(g, opt.init(params), params)
  np.testing.assert_allclose(updates["w"], [-1.0, -1.0])


def test_weight_decay_l2_for_sgd_and_decoupled_for_adamw():
  params, zero = {"w": jnp.array([2.0])}, {"w": jnp.array([0.0])}
  sgd = optim.make_optimizer(_cfg(name="sgd", learning_rate=0.1, weight_decay=0.5))
  updates, _ = sgd.update(zero, sgd.init(params), params)
  np.testing.assert_allclose(updates["w"], [-0.1 * 0.5 * 2.0], rtol=1e-6)
  adamw = optim.make_optimizer(_cfg(name="adamw", learning_rate=0.1, weight_decay=0.5))
  updates, _ = adamw.update(zero, adamw.init(params), params)
  np.testing.assert_allclose(updates["w"], [-0.1 * 0.5 * 2.0], rtol=1e-6)
  assert isinstance(adamw, optax.GradientTransformation)


def test_errors_name_the_field():
  with pytest.raises(ValueError, match="unknown optimizer 'adamm'.*'adam'"):
    optim.make_optimizer(_cfg(name="adamm"))
  with pytest.raises(ValueError, match="unknown schedule 'step'.*'cosine'"):
    optim.make_optimizer(_cfg(schedule="step"))
  with pytest.raises(ValueError, match="clip_norm or clip_value"):
    optim.make_optimizer(_cfg(clip_norm=1.0, clip_value=1.0))
