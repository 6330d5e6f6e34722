"""The char-LM problem: the carried stream state is exact, and the runner trains, completes
and samples end to end."""

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqlab import config as base
from seqlab.problems.language_model import LanguageModel

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def _config(data_dir, model="rnn", **train):
  """A tiny char LM: one GRU layer (rnn), or two stacked ones of different sizes (deep)."""
  c = base.base_config()
  c.problem = base.problem("language_model")
  c.task.name, c.task.data_dir = "char_corpus", str(data_dir)
  c.task.options.max_chars = 30_000
  if model == "rnn":
    c.model.name, c.model.cell, c.model.hidden_size, c.model.embed_size = "rnn", "gru", 16, 8
  else:
    c.model.name, c.model.cell, c.model.hidden_sizes, c.model.embed_size = (
        "deep", "gru", (16, 12), 8)
  c.train.batch_size, c.train.seq_len = 4, 8
  c.train.update(train)
  return c


MODELS = pytest.mark.parametrize("model", ["rnn", "deep"])


@MODELS
def test_stream_batches_with_the_carried_state_equal_one_long_sequence(data_dir, model):
  """Two consecutive windows, state carried (k2 = k1), score exactly the 2T-step sequence."""
  problem = LanguageModel(_config(data_dir, model))
  batches = problem.train_batches(seed=0, start_step=0)
  first, second = next(batches), next(batches)
  np.testing.assert_array_equal(first["targets"][:, -1], second["inputs"][:, 0])
  params = problem.init(jax.random.key(0), first)
  extra = problem.init_extra(params, first)
  (l1, (m1, extra)) = problem.loss(params, first, None, extra, 0)
  (l2, _) = problem.loss(params, second, None, extra, 1)
  inputs = np.concatenate([first["inputs"], second["inputs"]], 1)
  targets = np.concatenate([first["targets"], second["targets"]], 1)
  logits = problem.model.apply(params, inputs)
  whole = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
  np.testing.assert_allclose((l1 + l2) / 2, whole, rtol=1e-5)
  np.testing.assert_allclose(m1["bits_per_char"], l1 / math.log(2), rtol=1e-6)


@pytest.mark.parametrize("k2", [8, 12])
def test_the_second_windows_gradient_ignores_the_first(data_dir, k2):
  """The carried state enters the next window as a constant: differentiating through the
  window that produced it gives the same gradient as treating it as given."""
  problem = LanguageModel(_config(data_dir, tbptt_k2=k2))
  batches = problem.train_batches(seed=0, start_step=0)
  first, second = next(batches), next(batches)
  params = problem.init(jax.random.key(0), first)

  def second_loss(p, through_first):
    extra = problem.init_extra(params, first)
    _, (_, extra) = problem.loss(p if through_first else params, first, None, extra, 0)
    return problem.loss(p, second, None, extra, 1)[0]

  through = jax.grad(second_loss)(params, True)
  given = jax.grad(second_loss)(params, False)
  for a, b in zip(jax.tree.leaves(through), jax.tree.leaves(given), strict=True):
    np.testing.assert_array_equal(a, b)
  assert any(np.abs(g).max() > 0 for g in jax.tree.leaves(given))


def _char_lm_runner(workdir, data_dir, variant, size, k2, steps, every):
  """run(*extra flags): a tiny `configs/char_lstm.py:<variant>` run of seqlab.main."""
  common = [sys.executable, "-m", "seqlab.main", f"--config=configs/char_lstm.py:{variant}",
            f"--workdir={workdir}", f"--config.task.data_dir={data_dir}",
            "--config.task.options.max_chars=30000", size,
            "--config.train.batch_size=8", "--config.train.seq_len=16",
            f"--config.train.tbptt_k2={k2}", f"--config.train.num_steps={steps}",
            f"--config.train.eval_every={every}", f"--config.train.log_every={every}",
            f"--config.train.checkpoint_every={every}", "--config.decode.max_len=12"]
  return lambda *extra: subprocess.run([*common, *extra], cwd=ROOT, capture_output=True,
                                       text=True, timeout=300)


def test_char_lm_trains_completes_and_samples(tmp_path, data_dir):
  workdir = tmp_path / "char"
  run = _char_lm_runner(workdir, data_dir, "cell=gru", "--config.model.hidden_size=32",
                        k2=24, steps=60, every=30)
  out = run()
  assert out.returncode == 0, out.stderr[-2000:]
  assert "bits_per_char" in out.stdout and "completions (beam: width 4" in out.stdout
  # It learns: from ~log2(vocabulary) ~ 6 bits (the first steps) to ~4.4 after 60 steps.
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  bits = [r["bits_per_char"] for r in records if r["split"] == "validation"]
  assert bits[1] < bits[0] and bits[1] < 5.0, bits
  for method in ("greedy", "beam", "sample"):  # side by side for each prefix
    assert out.stdout.count(f"    {method:<6} -> ") == 2
  done = run("--mode=complete", "--prefix=Romeo:", "--prefix=the ")
  assert done.returncode == 0, done.stderr[-2000:]
  lines = [line for line in done.stdout.splitlines() if "->" in line]
  assert len(lines) == 2 and lines[0].startswith("'Romeo:' -> ")
  sampled = run("--mode=sample")
  assert sampled.returncode == 0 and sampled.stdout.strip()
  translate = run("--mode=translate", "--sentence=hello")
  assert translate.returncode == 2  # a user error: one line, exit status 2
  assert "--mode=translate is not available for task 'char_corpus'" in translate.stderr


def test_a_two_layer_char_lm_trains_through_truncated_bptt_and_completes(tmp_path, data_dir):
  """configs/char_lstm.py:model=deep from the command line: both layers' state carried."""
  workdir = tmp_path / "deep"
  run = _char_lm_runner(workdir, data_dir, "model=deep", "--config.model.hidden_sizes=(32, 32)",
                        k2=16, steps=40, every=20)
  out = run()
  assert out.returncode == 0, out.stderr[-2000:]
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  bits = [r["bits_per_char"] for r in records if r["split"] == "validation"]
  assert bits[1] < bits[0], bits
  assert out.stdout.count("    beam   -> ") == 2  # the two default prefixes, completed
  done = run("--mode=complete", "--prefix=Romeo:")
  assert done.returncode == 0 and done.stdout.count("'Romeo:' -> ") == 1, done.stderr[-2000:]


def test_a_new_epoch_starts_from_a_fresh_state(data_dir):
  """The first batch of epoch 2 (reset=True) scores as from the initial state, whatever was
  carried; mid-epoch batches (reset=False) score from the carried state."""
  problem = LanguageModel(_config(data_dir, tbptt_k2=12))
  batches = problem.train_batches(seed=0, start_step=0)
  first, second = next(batches), next(batches)
  assert first["reset"] and not second["reset"]
  epoch_start = next(b for b in itertools.islice(batches, 10_000) if b["reset"])  # epoch 2
  params = problem.init(jax.random.key(0), first)
  fresh = problem.init_extra(params, first)
  _, (_, carried) = problem.loss(params, first, None, fresh, 0)
  _, (_, carried) = problem.loss(params, second, None, carried, 1)
  loss = lambda batch, extra: float(problem.loss(params, batch, None, extra, 2)[0])
  assert loss(epoch_start, carried) == loss(epoch_start, fresh)
  continued = {**epoch_start, "reset": np.bool_(False)}
  assert abs(loss(continued, carried) - loss(continued, fresh)) > 1e-4


def _sharp_params(problem, batch, scale=4.0):
  """Random params scaled up, so the model's next-character distribution depends on its input."""
  params = problem.init(jax.random.key(1), batch)
  return jax.tree.map(lambda a: scale * a, params)


def _teacher_forced_log_probs(problem, params, text):
  """log p(c_{t+1} | c_<=t) for every position of `text`, the whole sequence at once."""
  ids = jnp.asarray(problem.vocab.encode(text))[None]
  return np.asarray(jax.nn.log_softmax(problem.model.apply(params, ids)[0]))


@MODELS
def test_completions_are_the_teacher_forced_argmax(data_dir, model):
  """complete(prefix) = c_1..c_n with c_i = argmax p(c | prime + prefix + c_<i)."""
  config = _config(data_dir, model)
  problem = LanguageModel(config)
  batch = next(problem.train_batches(seed=0, start_step=0))
  params = _sharp_params(problem, batch)
  prefixes = ["Romeo:", "the k"]
  got = problem.complete(params, prefixes, length=10)
  for prefix, completion in zip(prefixes, got, strict=True):
    text, expected = config.decode.prime + prefix, []
    for _ in range(10):
      log_p = _teacher_forced_log_probs(problem, params, text + "".join(expected))[-1]
      expected.append(problem.vocab.decode([int(np.argmax(log_p))]))
    assert completion == "".join(expected), (prefix, completion, expected)
  assert len(set(got)) == 2


def test_samples_follow_the_model_after_a_newline(data_dir):
  """Cold samples are the teacher-forced argmax path from "\\n"; at temperature 1 the first
  character's frequencies are p(c | "\\n") from the initial state."""
  config = _config(data_dir)
  config.decode.max_len = 6
  problem = LanguageModel(config)
  batch = next(problem.train_batches(seed=0, start_step=0))
  params = _sharp_params(problem, batch, scale=2.0)
  config.decode.temperature = 1e-4
  cold = problem.sample(params, jax.random.key(0), num=2)
  text = "\n"
  for _ in range(6):
    log_p = _teacher_forced_log_probs(problem, params, text)[-1]
    text += problem.vocab.decode([int(np.argmax(log_p))])
  assert cold == [text[1:]] * 2
  config.decode.temperature, config.decode.max_len = 1.0, 1
  draws = problem.sample(params, jax.random.key(1), num=3000)
  p = np.exp(_teacher_forced_log_probs(problem, params, "\n")[-1])
  expected = {}  # by decoded text: the special tokens all read as ""
  for i, p_i in enumerate(p):
    text = problem.vocab.decode([i])
    expected[text] = expected.get(text, 0.0) + p_i
  for text, p_text in expected.items():
    assert abs(draws.count(text) / 3000 - p_text) < 0.03, (text, p_text)


def test_char_lstm_large_variant_is_the_two_layer_model():
  path = ROOT / "configs" / "char_lstm.py"
  large = base.load_file(path, "size=large")
  assert large.model.name == "deep" and large.model.hidden_sizes == (384, 384)
  assert large.model.embed_size == 64
  assert large.optimizer.decay_steps == large.train.num_steps == 6000
  assert large.optimizer.end_learning_rate == pytest.approx(large.optimizer.learning_rate / 10)
  one_layer = base.load_file(path, "size=large,model=rnn,cell=lstm")
  assert (one_layer.model.name, one_layer.model.hidden_size) == ("rnn", 384)
  assert one_layer.model.cell == "lstm"
  demo = base.load_file(path)
  assert (demo.model.name, demo.model.cell, demo.model.hidden_size) == ("rnn", "gru", 256)
  assert demo.train.num_steps == demo.optimizer.decay_steps == 2500
  window = base.load_file(path, "model=transformer_lm")  # keeps its own measured schedule
  assert (window.optimizer.learning_rate, window.train.num_steps) == (3e-3, 1500)
  with pytest.raises(ValueError, match="size variant 'huge'"):
    base.load_file(path, "size=huge")
  with pytest.raises(ValueError, match="size=large sizes the recurrent models"):
    base.load_file(path, "size=large,model=nplm")
