"""The task families' problems by value: losses against hand computations on tiny batches,
metrics from known sums, padding invariance, the ESN's closed-form readout, the tree
builder's labels (one tiny CLI run per config family: test_configs_end_to_end.py)."""

import ast
import math
import operator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqlab import config as base
from seqlab import data, teacher_forcing
from seqlab.models.recursive import node_levels
from seqlab.problems.captioning import Captioning
from seqlab.problems.classification import Classification, pool
from seqlab.problems.regression import Regression
from seqlab.problems.series import SeriesPrediction
from seqlab.problems.tagging import Tagging
from seqlab.problems.tree import TreeClassification
from seqlab.train import loop

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"num_train": 64, "num_validation": 32, "num_test": 32}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


PROBLEM_OF = {"adding": "regression", "parity": "classification", "mackey_glass": "series",
              "sequential_digits": "classification", "trees": "tree",
              "digits_caption": "captioning", "copy": "tagging"}


def _config(data_dir, task, options, model, **problem):
  c = base.base_config()
  c.problem = base.problem(PROBLEM_OF[task], **problem)
  c.task.name, c.task.data_dir = task, str(data_dir)
  c.task.options.update(options)
  c.model.update(model)
  c.train.batch_size = 8
  return c


def _evaluate(problem, params, split="validation"):
  return loop.evaluate(problem, jax.jit(problem.eval_sums), params, split, None)


# ---------------------------------------------------------------------------
# Adding (regression).
# ---------------------------------------------------------------------------


def _adding(data_dir):
  model = {"name": "rnn", "cell": "gru", "hidden_size": 4, "pattern": "many_to_one"}
  return Regression(_config(data_dir, "adding", {**SMALL, "length": 10}, model))


def test_adding_loss_of_the_constant_predictor_is_its_mse(data_dir):
  """With V = 0 and c = 1 the net predicts 1: loss = mean (1 - y)^2, by hand."""
  problem = _adding(data_dir)
  batch = next(problem.train_batches(0, 0))
  params = problem.init(jax.random.key(0), batch)
  params["params"]["V"] = {"kernel": jnp.zeros_like(params["params"]["V"]["kernel"]),
                           "bias": jnp.ones((1,))}
  loss, _ = problem.loss(params, batch, None, {}, 0)
  np.testing.assert_allclose(loss, np.mean((1.0 - batch["targets"]) ** 2), rtol=1e-6)
  targets = np.array([ex["target"] for ex in problem.task.source("validation")])
  metrics = _evaluate(problem, params)  # every validation example, the last batch partial
  assert metrics["loss"] == pytest.approx(np.mean((1.0 - targets) ** 2), rel=1e-5)
  assert metrics["loss_vs_baseline"] == pytest.approx(metrics["loss"] * 6, rel=1e-5)
  assert metrics["close_fraction"] == pytest.approx(np.mean(np.abs(1.0 - targets) < 0.04))


def test_adding_summarize_by_value(data_dir):
  got = _adding(data_dir).summarize({"squared_error": 1.0, "count": 4.0, "close": 1.0})
  assert got == pytest.approx({"loss": 0.25, "close_fraction": 0.25, "loss_vs_baseline": 1.5})


# ---------------------------------------------------------------------------
# Many-to-one classification.
# ---------------------------------------------------------------------------


def test_pooling_by_value():
  o = jnp.arange(2 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 1)  # o[b, t] = 4 b + t
  lengths = jnp.array([3, 1])
  np.testing.assert_array_equal(pool(o, lengths, "last")[:, 0], [2, 4])
  np.testing.assert_array_equal(pool(o, lengths, "mean")[:, 0], [1, 4])
  np.testing.assert_array_equal(pool(o, lengths, "first_last")[:, 0], [0 + 2, 4 + 4])
  with pytest.raises(ValueError, match="unknown config.problem.pooling 'max'"):
    pool(o, lengths, "max")


def test_classification_loss_by_hand_and_padding_invariance(data_dir):
  """loss = mean -log softmax(o)[y]; each padded row's logits == the sequence alone; a
  bidirectional net (no embedding) reads one-hot bits, pooled as o_1 + o_T."""
  model = {"name": "bidirectional", "cell": "gru", "hidden_size": 4}
  problem = Classification(_config(data_dir, "parity", {**SMALL, "max_length": 9}, model,
                                   pooling="first_last"))
  batch = next(problem.train_batches(0, 0))
  assert batch["inputs"].shape[1] == problem.max_length == 9  # one padded length
  params = problem.init(jax.random.key(1), batch)
  logits = np.asarray(problem.logits(params, batch), np.float64)
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  by_hand = -np.mean(log_p[np.arange(len(logits)), batch["targets"]])
  loss, (metrics, _) = problem.loss(params, batch, None, {}, 0)
  assert float(loss) == pytest.approx(by_hand, rel=1e-5)
  assert float(metrics["accuracy"]) == np.mean(logits.argmax(-1) == batch["targets"])
  for b in range(2):
    n = int(batch["lengths"][b])
    alone = {"inputs": batch["inputs"][b:b + 1, :n], "lengths": batch["lengths"][b:b + 1]}
    np.testing.assert_allclose(problem.logits(params, alone)[0], logits[b], atol=1e-5)
  inputs, _ = problem.model_inputs(batch)
  np.testing.assert_array_equal(inputs, np.eye(3)[batch["inputs"]])


def test_classification_summarize_and_config_errors(data_dir):
  model = {"name": "rnn", "cell": "gru", "hidden_size": 4, "pattern": "many_to_one"}
  problem = Classification(_config(data_dir, "parity", {**SMALL, "max_length": 9}, model))
  got = problem.summarize({"xent": 3.0, "correct": 2.0, "count": 4.0})
  assert got == pytest.approx({"loss": 0.75, "accuracy": 0.5})
  transformer = {"name": "transformer_classifier", "d_model": 8, "num_heads": 2,
                 "num_layers": 1, "d_ff": 8}
  with pytest.raises(ValueError, match="reads token ids, but task 'sequential_digits'"):
    Classification(_config(data_dir, "sequential_digits", {}, transformer))


# ---------------------------------------------------------------------------
# Time series and the ESN.
# ---------------------------------------------------------------------------

MG = {"num_samples": 3000, "window": 100, "stride": 20}


def _series(data_dir, model, **problem):
  return SeriesPrediction(_config(data_dir, "mackey_glass", MG, model, **problem))


def test_series_loss_leaves_out_the_washout(data_dir):
  problem = _series(data_dir, {"name": "tdnn", "features": (4,), "window": 3}, washout=7)
  batch = next(problem.train_batches(0, 0))
  params = problem.init(jax.random.key(0), batch)
  err = np.asarray(problem.predict(params, batch) - batch["targets"], np.float64)[..., 0]
  loss, _ = problem.loss(params, batch, None, {}, 0)
  assert float(loss) == pytest.approx(np.mean(err[:, 7:] ** 2), rel=1e-5)
  got = problem.summarize({"squared_error": 2.0, "count": 4.0, "y": 4.0, "y2": 8.0,
                           "persistence": 4.0})  # MSE 0.5, Var(y) = 2 - 1 = 1
  assert got == pytest.approx({"loss": 0.5, "nrmse": math.sqrt(0.5),
                               "loss_vs_persistence": 0.5})


ESN = {"name": "esn", "hidden_size": 100, "rho": 0.9}


def test_esn_ridge_readout_is_the_float64_solution_and_reaches_a_small_nrmse(data_dir):
  """W_out = (Z^T Z + lambda I)^-1 Z^T Y over every scored training step (numpy, float64)
  predicts like the fitted readout; NRMSE on Mackey-Glass < 0.01; steps change nothing."""
  problem = _series(data_dir, ESN, readout_fit="ridge", washout=30, ridge=1e-6)
  batch = next(problem.train_batches(0, 0))
  params = problem.init(jax.random.key(0), batch)
  features = jax.jit(lambda b: problem.model.apply(params, b["inputs"], b["lengths"],
                                                   method="features"))
  zs, ys = [], []
  for b in problem.eval_batches("train"):
    zs.append(np.asarray(features(b), np.float64)[:, 30:].reshape(-1, 101))
    ys.append(np.asarray(b["targets"], np.float64)[:, 30:].reshape(-1, 1))
  Z, Y = np.concatenate(zs), np.concatenate(ys)
  W = np.linalg.solve(Z.T @ Z + 1e-6 * np.eye(101), Z.T @ Y)
  valid = next(problem.eval_batches("validation"))
  np.testing.assert_allclose(problem.predict(params, valid)[..., 0],
                             np.asarray(features(valid), np.float64) @ W[:, 0], atol=1e-4)
  metrics = _evaluate(problem, params)
  assert metrics["nrmse"] < 0.01 and metrics["loss_vs_persistence"] < 0.01
  # "ridge": the loss stops its gradient, so a training step leaves every param as it was.
  grads = jax.grad(lambda p: problem.loss(p, batch, None, {}, 0)[0])(params)
  assert all(np.all(g == 0) for g in jax.tree.leaves(grads))
  with pytest.raises(ValueError, match="readout_fit='ridge' needs config.model.name='esn'"):
    _series(data_dir, {"name": "tdnn", "features": (4,)}, readout_fit="ridge")


# ---------------------------------------------------------------------------
# Trees: the builder's labels by value, and the recursive net's problem.
# ---------------------------------------------------------------------------

OPS = {ast.Add: operator.add, ast.Mult: operator.mul}


def _value(node) -> int:
  """The integer value of a parsed expression of digits, + and * (no eval)."""
  if isinstance(node, ast.Constant):
    return node.value
  return OPS[type(node.op)](_value(node.left), _value(node.right))


def _node_values(tokens, children) -> list[int]:
  """Every node's value mod 10 from tokens and children, in the stored (post) order."""
  out = []
  for token, (a, b) in zip(tokens, children, strict=True):
    if a < 0:
      out.append(int(token))
    else:
      assert a < len(out) and b < len(out)  # children come before their parent
      out.append((out[a] + out[b]) % 10 if token == 10 else (out[a] * out[b]) % 10)
  return out


def test_tree_labels_are_the_expression_values_mod_10(data_dir):
  task = data.get_task("trees", str(data_dir), **SMALL, max_leaves=5)
  labels = []
  for ex in task.source("train"):
    tokens, children = ex["tokens"], ex["children"]
    text = ex["expression"].decode()
    leaves = int((children[:, 0] < 0).sum())
    assert 2 <= leaves <= 5 and len(tokens) == 2 * leaves - 1
    assert ex["label"] == _value(ast.parse(text, mode="eval").body) % 10
    np.testing.assert_array_equal(ex["values"], _node_values(tokens, children))
    assert ex["values"][-1] == ex["label"]  # the root is stored last
    np.testing.assert_array_equal(ex["levels"], node_levels(children))
    assert [t for t in tokens if t < 10] == [int(ch) for ch in text if ch.isdigit()]
    labels.append(ex["label"])
  assert task.metadata["baseline"] == np.bincount(labels).max() / len(labels)
  again = data.get_task("trees", str(data_dir / "again"), **SMALL, max_leaves=5)
  assert [e["expression"] for e in again.source("train")] == [
      e["expression"] for e in task.source("train")]  # deterministic from the seed


def test_tree_problem_loss_by_hand_and_padding_invariance(data_dir):
  model = {"name": "tree", "hidden_size": 8, "embed_size": 4}
  problem = TreeClassification(_config(data_dir, "trees", {**SMALL, "max_leaves": 5}, model))
  batch = next(problem.train_batches(0, 0))
  assert batch["inputs"].shape[1] == 9  # padded to 2 * 5 - 1 nodes
  params = problem.init(jax.random.key(0), batch)
  root, _ = problem.logits(params, batch)
  by_hand = optax.softmax_cross_entropy_with_integer_labels(root, batch["targets"]).mean()
  loss, _ = problem.loss(params, batch, None, {}, 0)
  assert float(loss) == pytest.approx(float(by_hand), rel=1e-6)
  for b in range(2):
    n = int(batch["lengths"][b])
    alone = problem.model.apply(params, batch["inputs"][b:b + 1, :n],
                                batch["children"][b:b + 1, :n], batch["levels"][b:b + 1, :n])
    np.testing.assert_allclose(alone[0][0], root[b], atol=1e-5)
  got = problem.summarize({"xent": 2.0, "correct": 1.0, "count": 2.0, "node_correct": 3.0,
                           "internal": 4.0})
  assert got == pytest.approx({"loss": 1.0, "accuracy": 0.5, "node_accuracy": 0.75})


# ---------------------------------------------------------------------------
# Captioning.
# ---------------------------------------------------------------------------


def test_captioning_loss_exact_match_and_scheduled_sampling(data_dir):
  model = {"name": "rnn", "cell": "gru", "hidden_size": 8, "embed_size": 4,
           "pattern": "one_to_many"}
  problem = Captioning(_config(data_dir, "digits_caption", {}, model))
  batch = next(problem.eval_batches("validation"))
  params = problem.init(jax.random.key(0), batch)
  logits = np.asarray(problem.logits(params, batch), np.float64)
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  nll = -np.take_along_axis(log_p, batch["targets"][..., None], -1)[..., 0]
  loss, (metrics, _) = problem.loss(params, batch, None, {}, 0)
  assert float(loss) == pytest.approx(nll[batch["mask"]].mean(), rel=1e-5)
  # The jitted exact-match count == the decoded greedy captions equal to the names.
  sums, _ = problem.eval_sums(params, batch, {})
  names = [problem.vocab.decode(row) for row in batch["targets"]]
  captions = problem.caption(params, batch["inputs"])
  assert float(sums["exact"]) == sum(c == n for c, n in zip(captions, names, strict=True))
  # Scheduled sampling with every coin on "teacher" is teacher forcing (on the real steps).
  model = problem.model.bind(params)
  mixed = teacher_forcing.feed(model.step, model.start(context=batch["inputs"]),
                               batch["decoder_inputs"], 1.0, jax.random.key(1))
  np.testing.assert_allclose(np.asarray(mixed)[batch["mask"]], logits[batch["mask"]], atol=1e-5)
  got = problem.summarize({"xent": 6.0, "correct": 3.0, "tokens": 4.0, "exact": 1.0,
                           "captions": 2.0})
  assert got == pytest.approx({"loss": 1.5, "token_accuracy": 0.75, "exact_match": 0.5})


# ---------------------------------------------------------------------------
# Copy (tagging every step).
# ---------------------------------------------------------------------------


def test_copy_loss_and_accuracy_by_hand(data_dir):
  """loss = sum mask * -log softmax(o_t)[y_t] / sum mask; accuracy counts the informative
  steps only (target != blank), so predicting blanks everywhere scores 0."""
  model = {"name": "rnn", "cell": "gru", "hidden_size": 8}
  problem = Tagging(_config(data_dir, "copy", {**SMALL, "delay": 3, "num_symbols": 2}, model))
  batch = dict(next(problem.train_batches(0, 0)))
  mask = np.array(batch["mask"], bool)
  mask[0, -3:] = mask[1, -1] = False  # as if those steps were padding
  batch["mask"] = mask
  assert (np.asarray(batch["targets"]) == 0).any()  # blanks are due somewhere
  params = jax.tree.map(lambda a: 3.0 * a, problem.init(jax.random.key(2), batch))
  logits = np.asarray(problem.logits(params, batch), np.float64)
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  targets = np.asarray(batch["targets"])
  nll = -np.take_along_axis(log_p, targets[..., None], -1)[..., 0]
  loss, _ = problem.loss(params, batch, None, {}, 0)
  assert float(loss) == pytest.approx(nll[mask].mean(), rel=1e-5)
  sums, _ = problem.eval_sums(params, batch, {})
  informative = mask & (targets != 0)
  right = (logits.argmax(-1) == targets) & informative
  assert float(sums["xent"]) == pytest.approx(nll[mask].sum(), rel=1e-5)
  assert (float(sums["steps"]), float(sums["informative"])) == (mask.sum(), informative.sum())
  assert float(sums["correct"]) == right.sum()
  got = problem.summarize({k: float(v) for k, v in sums.items()})
  assert got["accuracy"] == pytest.approx(right.sum() / informative.sum())
  baseline = problem.task.metadata["baseline"]
  assert got["loss_vs_baseline"] == pytest.approx(nll[mask].mean() / baseline, rel=1e-5)

