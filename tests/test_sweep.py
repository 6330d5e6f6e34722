"""Sweeps in one program: members of config.sweep, injected optimizer numbers, and a vmapped
sweep of N members equal to N separate runs of the runner's un-vmapped train step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqlab import config as base
from seqlab import problems, sweep
from seqlab.train import loop, optim


def _copy_config(data_dir, axes=(), mode="zip"):
  """A tiny copy task (delay 3) with an Elman net whose W has spectral radius recurrent_scale."""
  c = base.base_config()
  c.problem = base.problem("tagging")
  c.task.name = "copy"
  c.task.data_dir = str(data_dir)
  c.task.options.alphabet_size = 4
  c.task.options.num_symbols = 3
  c.task.options.delay = 3
  c.task.options.num_train = 64
  c.task.options.num_validation = 16
  c.task.options.num_test = 16
  c.model.name = "rnn"
  c.model.cell = "elman"
  c.model.cell_options = {"activation": "tanh", "recurrent_init": "spectral_radius",
                          "recurrent_scale": 1.0}
  c.model.hidden_size = 8
  c.model.embed_size = 4
  c.model.vocab_size = None
  c.model.output_size = None
  c.optimizer.learning_rate = 1e-2
  c.train.batch_size = 8
  c.train.num_steps = 12
  c.sweep.axes = axes
  c.sweep.mode = mode
  c.lock()
  return c


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def test_grid_and_zip_members_and_their_configs(data_dir):
  axes = (("optimizer.learning_rate", (1e-3, 3e-3)), ("seed", (0, 1, 2)))
  grid = sweep.members(_copy_config(data_dir, axes, "grid"))
  assert grid == [{"optimizer.learning_rate": lr, "seed": s}
                  for lr in (1e-3, 3e-3) for s in (0, 1, 2)]  # first axis slowest
  zipped = (("seed", (4, 5)), ("model.cell_options.recurrent_scale", (0.5, 1.5)))
  config = _copy_config(data_dir, zipped)
  assert sweep.members(config) == [{"seed": 4, "model.cell_options.recurrent_scale": 0.5},
                                   {"seed": 5, "model.cell_options.recurrent_scale": 1.5}]
  member = sweep.member_config(config, sweep.members(config)[1])
  assert (member.seed, member.model.cell_options.recurrent_scale, member.sweep.axes) == (5, 1.5, ())
  assert (config.seed, config.model.cell_options.recurrent_scale) == (0, 1.0)  # untouched
  assert sweep.members(_copy_config(data_dir)) == [{}]  # no axes: the config itself
  for bad in [(("seed", 0),), (("model.cell_options.activation", "relu"),)]:
    with pytest.raises(ValueError, match="entries are"):
      sweep.members(_copy_config(data_dir, bad))
  with pytest.raises(ValueError, match="one length"):
    sweep.members(_copy_config(data_dir, (("seed", (0, 1)), ("optimizer.clip_norm", (1.0,)))))
  for path, why in [("task.options.delay", "it changes the data"), ("optimizer.name", "only"),
                    ("train.batch_size", "the loop or the batches"), ("decode.max_len", "")]:
    with pytest.raises(ValueError, match=f"cannot be swept in one program: {why}"):
      sweep.axis_kind(path)
  with pytest.raises(ValueError, match="declares no such field"):
    sweep.member_config(config, {"model.cell_options.forget_bias": 2.0})


def test_injected_optimizer_numbers_equal_static_ones():
  params = {"w": jnp.array([1.0, -2.0, 0.5])}
  grads = [{"w": jnp.array([3.0, 4.0, 12.0]) * s} for s in (1.0, 0.1, 2.0)]
  for name, kw in [("adam", {"clip_norm": 1.0}), ("sgd", {"clip_norm": 0.0}),
                   ("momentum", {"clip_value": 0.5}), ("sgd", {"weight_decay": 0.1})]:
    cfg = {**base.base_config().optimizer.to_dict(), "name": name, "learning_rate": 0.1, **kw}
    inject = tuple(kw) + ("learning_rate",)
    static, injected = optim.make_optimizer(cfg), optim.make_optimizer(cfg, inject)
    s1, s2, p1, p2 = static.init(params), injected.init(params), params, params
    assert set(s2.hyperparams) == set(inject)
    for g in grads:
      u1, s1 = static.update(g, s1, p1)
      u2, s2 = jax.jit(injected.update)(g, s2, p2)
      p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
      np.testing.assert_allclose(p2["w"], p1["w"], rtol=1e-6, err_msg=f"{name} {kw}")
  with pytest.raises(ValueError, match="cannot be injected"):
    optim.make_optimizer(cfg, ("b1",))


def test_vmapped_sweep_equals_separate_runs(data_dir):
  """N = 3 members differing in seed (init, rng, data order), learning rate, clipping (off,
  0.5, 1) and the initial spectral radius of W, in one program: params and every step's loss
  equal those of 3 runs of the un-vmapped `loop.make_train_step`, built here by hand."""
  members = {"seed": (0, 1, 2), "optimizer.learning_rate": (1e-2, 3e-2, 1e-1),
             "optimizer.clip_norm": (0.0, 0.5, 1.0),
             "model.cell_options.recurrent_scale": (0.5, 1.0, 1.5)}
  config = _copy_config(data_dir, tuple(members.items()))
  pop = sweep.build(config)
  assert pop.size == 3 and set(pop.inject) == {"learning_rate", "clip_norm"}
  steps = config.train.num_steps
  result = sweep.train(pop)
  assert result.history["loss"].shape == (steps, 3)
  for i in range(3):
    c = _copy_config(data_dir).unlock()
    c.seed = members["seed"][i]
    c.optimizer.learning_rate = members["optimizer.learning_rate"][i]
    c.optimizer.clip_norm = members["optimizer.clip_norm"][i]
    c.model.cell_options.recurrent_scale = members["model.cell_options.recurrent_scale"][i]
    problem = problems.build_problem(c)
    optimizer = optim.make_optimizer(c.optimizer)
    batches = problem.train_batches(c.seed, 0)
    batch = next(batches)
    state = loop.initial_state(problem, optimizer, c.seed, batch)
    W = np.asarray(state["params"]["params"]["recurrent"]["cell"]["W"])
    assert np.isclose(np.abs(np.linalg.eigvals(W)).max(), c.model.cell_options.recurrent_scale,
                      rtol=1e-4)
    step = jax.jit(loop.make_train_step(problem, optimizer, c.seed, False))
    losses, grad_norms = [], []
    for k in range(steps):
      state, metrics = step(state, batch if k == 0 else next(batches))
      losses.append(float(metrics["loss"]))
      grad_norms.append(float(metrics["grad_norm"]))
    np.testing.assert_allclose(result.history["loss"][:, i], losses, rtol=2e-5)
    np.testing.assert_allclose(result.history["grad_norm"][:, i], grad_norms, rtol=2e-4)
    swept = sweep.member(result.state["params"], i)
    for a, b in zip(jax.tree.leaves(swept), jax.tree.leaves(state["params"]), strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert int(sweep.member(result.state["step"], i)) == steps
  # The members really differ: their losses are not one curve.
  assert np.ptp(result.history["loss"][-1]) > 1e-3
  # The evaluation is vmapped too: one dict per member, the loss vs the memoryless baseline.
  finals = sweep.evaluate(pop, result.state["params"])
  assert len(finals) == 3 and all(f["loss_vs_baseline"] > 0 for f in finals)
  table = sweep.table(pop.members, finals)
  assert table.splitlines()[0].startswith("| seed | optimizer.learning_rate |")
  assert len(table.splitlines()) == 2 + 3


def test_an_axis_that_changes_the_program_is_refused(data_dir):
  with pytest.raises(ValueError, match="other parameter shapes"):
    sweep.initial_state(sweep.build(_copy_config(data_dir, (("model.hidden_size", (8, 9)),))))
  axes = (("model.cell_options.activation", ("tanh", "relu")),)
  with pytest.raises(ValueError, match="computes a different loss"):
    sweep.initial_state(sweep.build(_copy_config(data_dir, axes)))
