"""Translation problem: the masked token loss by hand, scheduled-sampling probabilities by
value, BLEU statistics against sacrebleu, beam width 1 == greedy, and tiny end-to-end runs
(seq2seq with attention and scheduled sampling, Transformer then --mode=translate)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sacrebleu

from seqlab import config as base
from seqlab import losses, problems, teacher_forcing, unroll
from seqlab.data.vocab import BOS
from seqlab.problems import translation

ROOT = Path(__file__).resolve().parent.parent
TINY = {  # a few hundred pairs, tiny models, a few seconds of training
    "task.options.max_number": 99, "task.options.max_ordinal": 20, "task.options.num_dates": 0,
    "train.batch_size": 8, "train.num_steps": 30, "train.log_every": 1,
    "train.eval_every": 30, "train.eval_batches": 1, "train.checkpoint_every": 30,
    "train.pad_multiple": 32, "decode.max_len": 24, "decode.beam_width": 3,
}
TINY_MODEL = {"attention": {"model.hidden_size": 24, "model.embed_size": 8},
              "transformer": {"model.d_model": 16, "model.d_ff": 32, "model.num_layers": 1,
                              "optimizer.warmup_steps": 0}}


def _overrides(model: str, data_dir) -> dict:
  return {**TINY, **TINY_MODEL[model], "task.data_dir": str(data_dir)}


def _config(model: str, data_dir, **extra):
  """The config the CLI builds from configs/translation.py:model=... and the overrides."""
  config = base.load_file(ROOT / "configs" / "translation.py", f"model={model}")
  for key, value in {**_overrides(model, data_dir), **extra}.items():
    base.set_field(config, key, value)
  return config


def _main(model, workdir, data_dir, *flags) -> str:
  cmd = [sys.executable, "-m", "seqlab.main", f"--config=configs/translation.py:model={model}",
         f"--workdir={workdir}", *flags,
         *(f"--config.{k}={v}" for k, v in _overrides(model, data_dir).items())]
  result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def problem(data_dir):
  """The tiny attention problem in-process, with freshly initialised params."""
  problem = problems.build_problem(_config("attention", data_dir))
  params = problem.init(jax.random.key(0), next(problem.train_batches(0, 0)))
  return problem, params


def test_token_loss_is_the_masked_mean_cross_entropy_by_hand():
  logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]],
                              [[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.9, 0.05, 0.05]]]))
  targets = jnp.array([[0, 1, 1], [2, 2, 0]])
  mask = jnp.array([[True, True, True], [True, False, False]])  # 4 real steps
  xent, correct, count = losses.token_sums(logits, targets, mask)
  assert count == 4
  np.testing.assert_allclose(xent / count, -(math.log(0.5) + math.log(0.8) + math.log(0.2)
                                             + math.log(0.1)) / 4, rtol=1e-6)
  assert correct == 2  # argmax hits at (0, 0) and (0, 1); (0, 2) and (1, 0) miss


def test_problem_loss_equals_numpy_on_a_tiny_batch(problem):
  problem, params = problem
  batch = next(problem.eval_batches("validation"))
  loss_fn = jax.jit(problem.loss)
  loss, (metrics, _) = loss_fn(params, batch, jax.random.key(0), {}, jnp.int32(0))
  logits = np.asarray(problem.logits(params, batch), np.float64)
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  picked = np.take_along_axis(log_p, batch["targets"][..., None], -1)[..., 0]
  mask = batch["mask"]
  assert 0 < mask.sum() < mask.size  # padding is present and left out
  np.testing.assert_allclose(loss, -(picked * mask).sum() / mask.sum(), rtol=1e-5)
  hits = (logits.argmax(-1) == batch["targets"]) * mask
  np.testing.assert_allclose(metrics["token_accuracy"], hits.sum() / mask.sum(), rtol=1e-6)
  assert metrics["teacher_forcing"] == 1.0


@pytest.mark.parametrize("schedule,k,eps_min,expected", [
    ("always", 0.0, 0.0, [1.0, 1.0, 1.0, 1.0]),
    ("linear", 0.01, 0.1, [1.0, 0.5, 0.1, 0.1]),  # max(0.1, 1 - 0.01 i)
    ("exponential", 0.99, 0.0, [1.0, 0.99**50, 0.99**90, 0.99**1000]),
    ("inverse_sigmoid", 10.0, 0.0, [10 / (10 + math.exp(i / 10)) for i in (0, 50, 90, 1000)]),
])
def test_teacher_forcing_probability_by_value(schedule, k, eps_min, expected):
  got = [float(teacher_forcing.probability(schedule, k, eps_min, i))
         for i in (0, 50, 90, 1000)]
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("schedule,k,message", [
    ("linear", 0.0, "k > 0"), ("exponential", 1.0, "0 < k < 1"),
    ("inverse_sigmoid", 0.5, "k >= 1"), ("cosine", 1.0, "known"),
])
def test_bad_schedules_are_named(schedule, k, message):
  with pytest.raises(ValueError, match=message):
    teacher_forcing.check_schedule(schedule, k, 0.0)


def test_scheduled_sampling_with_eps_one_is_teacher_forcing(problem):
  problem, params = problem
  batch = next(problem.eval_batches("validation"))
  forced = jax.jit(problem.logits)(params, batch)

  @jax.jit
  def scheduled(params, batch, rng, eps):
    model = problem.model.bind(params)
    prev = unroll.shift_right(batch["targets"], BOS)  # what seq2seq's __call__ reads
    return teacher_forcing.feed(model.step, model.start(batch["inputs"], batch["source_lengths"]),
                                prev, eps, rng)

  rng = jax.random.key(3)
  np.testing.assert_allclose(scheduled(params, batch, rng, 1.0), forced, atol=1e-5)
  free = scheduled(params, batch, rng, 0.0)
  np.testing.assert_allclose(free[:, 0], forced[:, 0], atol=1e-5)  # step 1 reads <bos>
  assert not np.allclose(free, forced, atol=1e-3)  # later steps read the model's samples


def test_bleu_of_an_exact_copy_is_100_and_stats_match_sacrebleu():
  refs = ["quatre-vingt-dix-neuf", "le premier mai mille neuf cent", "sept cent douze"]
  assert translation.corpus_bleu(translation.bleu_stats(refs, refs)) == pytest.approx(100.0)
  hyps = ["quatre-vingt-dix-huit", "le premier mai mille huit cent", "sept cent"]
  expected = sacrebleu.corpus_bleu(hyps, [refs]).score
  assert 0 < expected < 100
  np.testing.assert_allclose(translation.corpus_bleu(translation.bleu_stats(hyps, refs)),
                             expected, rtol=1e-12)
  # One-word sentences have no 2- to 4-grams: the effective order scores their unigrams.
  stats = translation.bleu_stats(["cinquante", "dix", "trois"], ["cinquante", "onze", "trois"])
  assert translation.corpus_bleu(stats) == pytest.approx(100 * 2 / 3)
  assert sacrebleu.corpus_bleu(["cinquante", "dix", "trois"], [["cinquante", "onze", "trois"]]
                               ).score == 0.0  # plain BLEU is 0 without any 4-gram


def test_beam_width_one_equals_greedy(problem):
  problem, params = problem
  batch = next(problem.eval_batches("test"))
  src, lengths = jnp.asarray(batch["inputs"]), jnp.asarray(batch["source_lengths"])
  greedy = problem.greedy_jit(params, src, lengths)
  beam = problem.beam_jit(params, src, lengths, beam_width=1)
  np.testing.assert_array_equal(beam.tokens, greedy.tokens)
  np.testing.assert_allclose(beam.log_probs, greedy.log_probs, rtol=1e-5)


def test_jitted_eval_bleu_statistics_are_those_of_the_decoded_text(problem):
  problem, params = problem
  batch = next(problem.eval_batches("test"))
  sums, _ = jax.jit(problem.eval_sums)(params, batch, {})
  rows = problem.decode_split(params, "test", max_batches=1)
  assert len(rows) == batch["inputs"].shape[0] and sums["sentences"] == len(rows)
  refs = [r["reference"] for r in rows]
  for name in ("greedy", "beam"):
    stats = translation.bleu_stats([r[name] for r in rows], refs)
    np.testing.assert_array_equal([sums[f"{name}_{k}"] for k in translation.BLEU_STATS], stats)
    assert stats[0] > 0 and stats[1] == sum(len(r.split()) for r in refs)  # 13a: words here
    np.testing.assert_allclose(sums[f"logp_{name}"], sum(r[f"logp_{name}"] for r in rows),
                               rtol=1e-5)
  assert sums["logp_beam"] >= sums["logp_greedy"]
  # Raw sentences, encoded and padded by `translate`, get the beam outputs of the data pipeline.
  sources = [r["source"] for r in rows[:3]]
  assert problem.translate(params, sources) == [r["beam"] for r in rows[:3]]


@pytest.mark.parametrize("model", ["attention", "transformer"])
def test_end_to_end_train_and_report(tmp_path, data_dir, model):
  flags = []
  if model == "attention":  # the recurrent decoder trains with scheduled sampling here
    flags = ["--config.problem.teacher_forcing=inverse_sigmoid",
             "--config.problem.teacher_forcing_k=10.0"]
  out = _main(model, tmp_path, data_dir, *flags)
  assert "step     30/30" in out and "bleu_beam" in out and "logp_greedy" in out
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  eps = {r["step"]: r["teacher_forcing"] for r in records if r["split"] == "train"}
  expected = {s: 10 / (10 + math.exp((s - 1) / 10)) if flags else 1.0 for s in (10, 20, 30)}
  np.testing.assert_allclose([eps[s] for s in expected], list(expected.values()), rtol=1e-5)
  # It learns: the mean train loss of the last 5 steps over that of the first 5 (measured:
  # attention 0.855, Transformer below 0.85; no learning gives ~1).
  train = np.array([r["loss"] for r in records if r["split"] == "train"])
  assert len(train) == 30 and train[-5:].mean() < 0.92 * train[:5].mean(), train
  report = json.loads((tmp_path / "translation_report.json").read_text("utf-8"))
  rows = report["translations"]
  assert report["split"] == "test" and len(rows) == report["sentences"] > 0
  refs = [r["reference"] for r in rows]
  np.testing.assert_allclose(report["bleu_beam"],
                             sacrebleu.corpus_bleu([r["beam"] for r in rows], [refs]).score)
  assert report["logp_beam"] >= report["logp_greedy"]  # beam search finds likelier outputs
  assert (tmp_path / "attention.png").stat().st_size > 1000
  if model == "transformer":  # --mode=translate from the workdir's checkpoint
    out = _main(model, tmp_path, data_dir, "--mode=translate", "--sentence=forty-two",
                "--sentence=seven")
    lines = [line for line in out.splitlines() if " -> " in line]
    assert [line.split(" -> ")[0] for line in lines] == ["forty-two", "seven"]


def test_long_data_variant_reads_joined_sentences_at_word_level():
  path = ROOT / "configs" / "translation.py"
  config = base.load_file(path, "model=noattention,data=long")
  assert (config.task.options.join, config.task.options.level) == (8, "word")
  assert config.decode.max_len == config.model.max_length == 96  # LONG_MAX_TOKENS
  assert "join" not in base.load_file(path, "model=transformer").task.options
  with pytest.raises(ValueError, match="data variant 'short'"):
    base.load_file(path, "data=short")
