"""Population-based training in one program: injected hyperparameters reach each member's own
update, exploit copies a parent's whole state bit for bit, explore stays in bounds, and PBT
with exploit off is plain population training."""

import jax
import numpy as np
import pytest
import scale_worker
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab.sweep import pbt, pbt_space, population

NAMES = ("clip_norm", "learning_rate", "weight_decay")
BOUNDS = {"learning_rate": (1e-3, 0.3), "clip_norm": (1e-2, 10.0), "weight_decay": (1e-5, 1e-1)}
N = 4


def _config(data_dir):
  """scale_worker's tiny copy task (a GRU of 8), plain SGD at 0.1 with clipping at 1 and an
  L2 term; 4 seeds."""
  c = scale_worker.tiny_config(data_dir, (("seed", tuple(range(N))),), "sgd").unlock()
  c.optimizer.clip_norm, c.optimizer.weight_decay = 1.0, 1e-3
  return c.lock()


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


def _opts(exploit=True, **fields) -> pbt_space.Options:
  """PBT over BOUNDS (log-uniform), evaluated every 2 steps on one validation batch."""
  hypers = tuple(pbt_space.Hyper(f"optimizer.{n}", "log_uniform", b) for n, b in BOUNDS.items())
  base_fields = dict(size=N, hypers=hypers, ready=2, burn_in=0, quantile=0.25,
                     method="truncation", factors=(0.8, 1.2), resample_probability=0.25,
                     exploit=exploit, metric="loss", maximize=False, eval_batches=1, seed=3)
  return pbt_space.Options(**{**base_fields, **fields})


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6), st.data())
def test_explore_stays_in_bounds_and_moves_only_copies(fractions, data):
  n = len(fractions)
  parents = np.asarray(data.draw(st.lists(st.integers(0, n - 1), min_size=n, max_size=n)))
  seed = data.draw(st.integers(0, 2**16))
  resample = data.draw(st.sampled_from([0.0, 0.25, 1.0]))
  values = {name: np.clip(np.exp(np.log(lo) + np.asarray(fractions) * np.log(hi / lo)), lo, hi)
            for name, (lo, hi) in BOUNDS.items()}
  new = pbt.explore(values, parents, jax.random.key(seed), _opts(resample_probability=resample))
  moved = parents != np.arange(n)
  for name, (lo, hi) in BOUNDS.items():
    v, w = values[name], new[name]
    assert w.shape == v.shape
    np.testing.assert_array_equal(w[~moved], v[~moved])
    assert np.all((w >= lo) & (w <= hi)), (name, w)
    if resample == 0.0:  # a copy's value steps by 0.8 or 1.2, clipped
      steps = [np.clip(v * f, lo, hi)[moved] for f in (0.8, 1.2)]
      assert np.all(np.isclose(w[moved], steps[0], rtol=1e-12)
                    | np.isclose(w[moved], steps[1], rtol=1e-12))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=6), st.integers(0, 2**16),
       st.sampled_from([0.0, 1.0]))
def test_a_choice_moves_to_a_neighbour_or_is_drawn_afresh(index, seed, resample):
  choices = (0.25, 0.5, 1.0, 2.0)
  hyper = pbt_space.Hyper("optimizer.clip_norm", "choice", (choices,))
  values = np.asarray(choices)[index]
  moved = np.arange(len(index)) % 2 == 0
  new = hyper.explore(values, moved, jax.random.key(seed), (0.8, 1.2), resample)
  np.testing.assert_array_equal(new[~moved], values[~moved])
  assert set(new.tolist()) <= set(choices)
  if resample == 0.0:  # one place down or up, clipped at the ends
    got = [choices.index(v) for v in new[moved]]
    want = np.asarray(index)[moved]
    assert all(g in (max(w - 1, 0), min(w + 1, 3)) for g, w in zip(got, want, strict=True))
  draws = hyper.draw(jax.random.key(seed), 400)
  assert set(draws.tolist()) == set(choices)


def test_pbt_without_exploit_is_population_training(pop):
  plain = population.train(pop, 6, state=population.initial_state(pop))
  off = pbt.train(pop, 6, _opts(exploit=False))
  for a, b in zip(jax.tree.leaves(off.state), jax.tree.leaves(plain.state), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  for name, h in plain.history.items():
    np.testing.assert_array_equal(off.record.history[name], h)
  record = off.record
  assert record.ends == [2, 4, 6] and np.shape(record.scores) == (3, N)
  assert record.lineage == [] and all(p == list(range(N)) for p in record.parents)
  assert len([k for k in pop.compiled if k != "eval"]) == 1  # one train program, chunks reuse it


def _lineage_run(pop):
  start = pbt.with_hyperparameters(pop, population.initial_state(pop),
                                   {"learning_rate": np.array([0.01, 0.02, 0.05, 0.1])})
  return pbt.train(pop, 6, _opts(resample_probability=0.0), state=start)


def test_pbt_lineage_records_each_copy_and_perturbation(pop):
  result = _lineage_run(pop)
  record = result.record
  assert record.ends == [2, 4, 6] and len(record.lineage) == 2 * N
  assert len([k for k in pop.compiled if k != "eval"]) == 1
  for r, step in enumerate(record.ends[:2]):
    rows = [e for e in record.lineage if e["step"] == step]
    assert [e["member"] for e in rows] == list(range(N))
    copied = [e for e in rows if e["parent"] != e["member"]]
    assert len(copied) == 1  # floor(0.25 * 4): the worst copies the best
    (e,) = copied
    assert e["score"] == max(record.scores[r]) and e["parent_score"] == min(record.scores[r])
    assert e["rng_seed"] != record.rng_seeds[r][e["parent"]]  # a fresh random stream
    for e in rows:
      for name, (lo, hi) in BOUNDS.items():
        assert record.values[r + 1][name][e["member"]] == e["new"][name]
        if e["parent"] == e["member"]:
          assert e["new"][name] == e["old"][name]
        else:  # the parent's value (it came with the optimizer state), stepped and clipped
          parent = rows[e["parent"]]["old"][name]
          assert any(np.isclose(e["new"][name], np.clip(parent * f, lo, hi), rtol=1e-12)
                     for f in (0.8, 1.2)), (name, e, parent)
  final = pbt.hyperparameters(pop, result.state)
  for name in BOUNDS:
    np.testing.assert_allclose(final[name], record.values[-1][name], rtol=1e-7)


def test_a_replay_of_a_members_schedule_follows_its_curve(pop):
  """The member that copied in both rounds: its line crosses rows, seeds and values."""
  record = _lineage_run(pop).record
  movers = [m for m in range(N) if len(set(pbt.line_of(record, m))) > 1]
  assert movers
  for member in movers:
    plan = pbt.schedule(record, member)
    assert [c["row"] for c in plan][-1] == member and plan[0]["start"] == 0
    got = pbt.replay(pop, record, member)
    want = pbt.curve(record, member)
    assert got["loss"].shape == want.shape == (6,)
    np.testing.assert_array_equal(got["loss"], want)
    np.testing.assert_array_equal(got["grad_norm"], pbt.curve(record, member, "grad_norm"))


def test_no_member_copies_before_the_burn_in(pop):
  """burn_in 4, ready 2: the round at step 2 keeps every state, the one at step 4 copies."""
  record = pbt.train(pop, 6, _opts(burn_in=4)).record
  assert record.parents[0] == list(range(N)) and record.parents[1] != list(range(N))
  assert {e["step"] for e in record.lineage} == {4}
  assert record.values[1] == record.values[0] and record.rng_seeds[1] == record.rng_seeds[0]
