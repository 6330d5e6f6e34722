"""The char-LM problem: the carried stream state is exact, and the runner trains, completes
and samples end to end."""

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


def _config(data_dir, **train):
  c = base.base_config()
  c.problem = base.problem("language_model")
  c.task.name, c.task.data_dir = "char_corpus", str(data_dir)
  c.task.options.max_chars = 30_000
  c.model.name, c.model.cell, c.model.hidden_size, c.model.embed_size = "rnn", "gru", 16, 8
  c.train.batch_size, c.train.seq_len = 4, 8
  c.train.update(train)
  return c


def test_stream_batches_with_the_carried_state_equal_one_long_sequence(data_dir):
  """Two consecutive windows, state carried (k2 = k1), score exactly the 2T-step sequence."""
  problem = LanguageModel(_config(data_dir))
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
  # The carried state has no gradient: the second window's gradient ignores the first.
  g = jax.grad(lambda p: problem.loss(p, second, None, extra, 1)[0])(params)
  assert all(jnp.isfinite(x).all() for x in jax.tree.leaves(g))


def test_char_lm_trains_completes_and_samples(tmp_path, data_dir):
  workdir = tmp_path / "char"
  common = [sys.executable, "-m", "seqlab.main", "--config=configs/char_lstm.py:cell=gru",
            f"--workdir={workdir}", f"--config.task.data_dir={data_dir}",
            "--config.task.options.max_chars=30000", "--config.model.hidden_size=32",
            "--config.train.batch_size=8", "--config.train.seq_len=16",
            "--config.train.tbptt_k2=24", "--config.train.num_steps=60",
            "--config.train.eval_every=30", "--config.train.log_every=30",
            "--config.train.checkpoint_every=30", "--config.decode.max_len=12"]
  run = lambda *extra: subprocess.run([*common, *extra], cwd=ROOT, capture_output=True,
                                      text=True, timeout=300)
  out = run()
  assert out.returncode == 0, out.stderr[-2000:]
  assert "bits_per_char" in out.stdout and "completions:" in out.stdout
  done = run("--mode=complete", "--prefix=Romeo:", "--prefix=the ")
  assert done.returncode == 0, done.stderr[-2000:]
  lines = [line for line in done.stdout.splitlines() if "->" in line]
  assert len(lines) == 2 and lines[0].startswith("'Romeo:' -> ")
  sampled = run("--mode=sample")
  assert sampled.returncode == 0 and sampled.stdout.strip()
  translate = run("--mode=translate", "--sentence=hello")
  assert translate.returncode != 0
  assert "--mode=translate is not available for task 'char_corpus'" in translate.stderr
