"""Population-based training in one program: injected hyperparameters reach each member's own
update, exploit copies a parent's whole state bit for bit, explore stays in bounds, and PBT
with exploit off is plain population training."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab import config as base
from seqlab.sweep import pbt, population

NAMES = ("clip_norm", "learning_rate", "weight_decay")
BOUNDS = {"learning_rate": (1e-3, 0.3), "clip_norm": (1e-2, 10.0), "weight_decay": (1e-5, 1e-1)}
N = 4


def _config(data_dir):
  """A tiny copy task (delay 3), an Elman net, SGD with clipping and an L2 term; 4 seeds."""
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
  c.model.hidden_size = 8
  c.model.embed_size = 4
  c.model.vocab_size = None
  c.model.output_size = None
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.1
  c.optimizer.clip_norm = 1.0
  c.optimizer.weight_decay = 1e-3
  c.train.batch_size = 8
  c.train.num_steps = 6
  c.sweep.axes = (("seed", tuple(range(N))),)
  c.lock()
  return c


@pytest.fixture(scope="module")
def pop(tmp_path_factory):
  """One population for every test here: they share its compiled train and eval programs."""
  return pbt.build(_config(tmp_path_factory.mktemp("data")), NAMES)


def _leaves(state, i):
  return [np.asarray(a) for a in jax.tree.leaves(population.member(state, i))]


def _fresh(state):
  """A copy of `state` that a (donating) train call may consume."""
  return pbt.copy_rows(state, np.arange(N))


def test_each_hyperparameter_reaches_only_its_members_update(pop):
  assert pop.inject == NAMES
  start = population.initial_state(pop)
  values = pbt.hyperparameters(pop, start)
  assert set(values) == set(NAMES)
  np.testing.assert_allclose(values["learning_rate"], [0.1] * N)
  reference = population.train(pop, 1, state=_fresh(start))
  assert np.all(reference.history["grad_norm"][0] > 0.05)  # so a clip_norm of 1e-2 clips
  for name, value in [("learning_rate", 0.03), ("clip_norm", 1e-2), ("weight_decay", 0.1)]:
    changed = {**values, name: np.where(np.arange(N) == 1, value, values[name])}
    state = pbt.with_hyperparameters(pop, _fresh(start), changed)
    np.testing.assert_allclose(pbt.hyperparameters(pop, state)[name], changed[name], rtol=1e-6)
    after = population.train(pop, 1, state=state)
    for i in range(N):
      new, old = _leaves(after.state["params"], i), _leaves(reference.state["params"], i)
      if i == 1:
        assert max(np.abs(a - b).max() for a, b in zip(new, old, strict=True)) > 1e-4, name
      else:  # the other members' steps are bit for bit the reference's
        for a, b in zip(new, old, strict=True):
          np.testing.assert_array_equal(a, b, err_msg=f"{name} leaked into member {i}")
  with pytest.raises(ValueError, match="not injected"):
    pbt.with_hyperparameters(pop, start, {"clip_value": np.ones(N)})


def test_exploit_copies_the_parents_whole_state(pop):
  state = pbt.with_hyperparameters(pop, population.initial_state(pop),
                                   {"learning_rate": np.array([0.01, 0.02, 0.05, 0.1])})
  state = population.train(pop, 2, state=state).state  # members differ in every leaf
  old = [_leaves(state, i) for i in range(N)]
  differ = [not np.array_equal(a, b) for a, b in zip(old[0], old[1], strict=True)]
  assert sum(differ) > len(differ) // 2  # params, momentum-free SGD state's hyperparameters...
  scores = np.array([3.0, 0.0, 2.0, 1.0])  # lower is better: member 1 best, member 0 worst
  new, parents = pbt.exploit(state, scores, jax.random.key(0), 0.25)
  assert parents.tolist() == [1, 1, 2, 3]
  for i in range(N):
    for a, b in zip(_leaves(new, i), old[parents[i]], strict=True):
      np.testing.assert_array_equal(a, b)
  assert pbt.hyperparameters(pop, new)["learning_rate"][0] == np.float32(0.02)
  for seed in range(5):  # half: members 0 and 2 copy one of members 1 and 3
    new, parents = pbt.exploit(state, scores, jax.random.key(seed), 0.5)
    assert parents[[1, 3]].tolist() == [1, 3] and set(parents[[0, 2]]) <= {1, 3}
    for i in range(N):
      for a, b in zip(_leaves(new, i), old[parents[i]], strict=True):
        np.testing.assert_array_equal(a, b)
  for seed in range(5):  # a tournament: copy only a strictly better member; the best keeps
    _, parents = pbt.exploit(state, scores, jax.random.key(seed), 0.0, "tournament")
    assert parents[1] == 1
    assert all(p == i or scores[p] < scores[i] for i, p in enumerate(parents))
  assert pbt.select([np.nan, 1.0, 2.0, 0.0], jax.random.key(0), 0.25).tolist() == [3, 1, 2, 3]
  assert pbt.select(scores, jax.random.key(0), 0.0).tolist() == [0, 1, 2, 3]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6), st.data())
def test_explore_stays_in_bounds_and_moves_only_copies(fractions, data):
  n = len(fractions)
  parents = np.asarray(data.draw(st.lists(st.integers(0, n - 1), min_size=n, max_size=n)))
  seed = data.draw(st.integers(0, 2**16))
  resample = data.draw(st.sampled_from([0.0, 0.25, 1.0]))
  values = {name: np.exp(np.log(lo) + np.asarray(fractions) * np.log(hi / lo)).astype(np.float32)
            for name, (lo, hi) in BOUNDS.items()}
  new = pbt.explore(values, parents, jax.random.key(seed), BOUNDS,
                    resample_probability=resample)
  moved = parents != np.arange(n)
  for name, (lo, hi) in BOUNDS.items():
    v, w = values[name], new[name]
    assert w.dtype == v.dtype and w.shape == v.shape
    np.testing.assert_array_equal(w[~moved], v[~moved])
    assert np.all((w >= np.float32(lo)) & (w <= np.float32(hi))), (name, w)
    if resample == 0.0:  # a copy's value steps by 0.8 or 1.2, clipped
      steps = [np.clip(v.astype(np.float64) * f, lo, hi)[moved] for f in (0.8, 1.2)]
      assert np.all(np.isclose(w[moved], steps[0], rtol=1e-6)
                    | np.isclose(w[moved], steps[1], rtol=1e-6))


def test_pbt_without_exploit_is_population_training(pop):
  plain = population.train(pop, 6, state=population.initial_state(pop))
  off = pbt.train(pop, 6, ready=2, quantile=0.0, bounds=BOUNDS, eval_batches=1)
  for a, b in zip(jax.tree.leaves(off.state), jax.tree.leaves(plain.state), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  for name, h in plain.history.items():
    np.testing.assert_array_equal(off.history[name], h)
  assert off.steps == [2, 4, 6] and off.scores.shape == (3, N) and off.lineage == []
  assert len([k for k in pop.compiled if k != "eval"]) == 1  # one train program, chunks reuse it


def test_pbt_lineage_records_each_copy_and_perturbation(pop):
  start = pbt.with_hyperparameters(pop, population.initial_state(pop),
                                   {"learning_rate": np.array([0.01, 0.02, 0.05, 0.1])})
  result = pbt.train(pop, 6, ready=2, quantile=0.25, bounds=BOUNDS, eval_batches=1,
                     resample_probability=0.0, state=start, seed=3)
  assert result.steps == [2, 4, 6] and len(result.lineage) == 2 * N
  assert len([k for k in pop.compiled if k != "eval"]) == 1
  for r, step in enumerate(result.steps[:2]):
    rows = [e for e in result.lineage if e["step"] == step]
    assert [e["member"] for e in rows] == list(range(N))
    copied = [e for e in rows if e["parent"] != e["member"]]
    assert len(copied) == 1  # floor(0.25 * 4): the worst copies the best
    (e,) = copied
    assert e["score"] == result.scores[r].max() and e["parent_score"] == result.scores[r].min()
    for e in rows:
      for name, (lo, hi) in BOUNDS.items():
        assert result.hyperparameters[r][name][e["member"]] == np.float32(e["new"][name])
        if e["parent"] == e["member"]:
          assert e["new"][name] == e["old"][name]
        else:  # the parent's value (it came with the optimizer state), stepped and clipped
          parent = rows[e["parent"]]["old"][name]
          assert any(np.isclose(e["new"][name], np.clip(parent * f, lo, hi), rtol=1e-6)
                     for f in (0.8, 1.2)), (name, e, parent)
  final = pbt.hyperparameters(pop, result.state)
  for name in BOUNDS:
    np.testing.assert_array_equal(final[name], result.hyperparameters[-1][name])
