"""Input-pipeline throughput against what a jitted LSTM training step consumes.

    .venv/bin/python scripts/bench_pipeline.py            # every task, default configs
    .venv/bin/python scripts/bench_pipeline.py --quick    # fewer repeats
    .venv/bin/python scripts/bench_pipeline.py --tasks=copy,char_corpus

For each task (default options, prepared under --data_dir on first use) it measures
  pipeline: examples/s drawn from `task.batches("train", B)` (read, decode, pad,
            mask), the median over repeats of `--batches` consecutive batches, cold
            (cache=False: every example read from the array_record files and decoded)
            and warm (cache=True after one epoch: what every epoch after the first
            costs); stream batches (char_corpus:stream) keep the ids in memory anyway;
  training: examples/s one jitted LSTM training step (seqlab.cells + seqlab.unroll +
            optax Adam, H = --hidden, B = --batch_size) consumes on the same batches:
            per-step heads for sequence targets, the last real step for many-to-one,
            an encoder-decoder for translation and captions (median over repeats);
and prints ratio = pipeline / training, which should be at least 10. The timed
training batches are padded to one shape, so no step recompiles.
"""

import argparse
import itertools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqlab import cells, data, unroll

TASKS = ["copy", "adding", "parity", "bracket_depth", "sequential_digits", "digits_caption",
         "mackey_glass", "narma10", "sine_mixture", "translation_pairs", "char_corpus",
         "char_corpus:stream"]


def sizes(task: data.Task) -> tuple[int, int, int]:
  """(input ids, decoder-input ids, output classes); 0 where the field is real-valued."""
  md, v = task.metadata, task.vocabs
  if task.name == "translation_pairs":
    return len(v["source-char"]), len(v["target-char"]), len(v["target-char"])
  if task.name == "digits_caption":
    return 0, len(v["caption"]), len(v["caption"])
  if task.name == "char_corpus":
    return len(v["text"]), 0, len(v["text"])
  if task.name in ("copy", "parity", "bracket_depth"):
    return md["num_inputs"], 0, md.get("num_outputs", md.get("num_classes"))
  if task.name == "sequential_digits":
    return 0, 0, md["num_classes"]
  return 0, 0, 0  # regression on real-valued inputs


def features(x: jax.Array, num_ids: int) -> jax.Array:
  """Model inputs [B, T, F]: one-hot ids, or real values with a feature axis."""
  if num_ids:
    return jax.nn.one_hot(x, num_ids)
  return x if x.ndim == 3 else x[..., None]


def make_train_step(batch: dict, num_in: int, num_dec: int, num_out: int, hidden: int):
  """(params, jitted step(params, opt_state, batch) -> (params, opt_state, loss), opt_state)."""
  cell = cells.make("lstm")
  k = jax.random.split(jax.random.key(0), 4)
  seq2seq = "decoder_inputs" in batch
  x = batch["inputs"]
  in_size = num_in or (x.shape[-1] if x.ndim == 3 else 1)
  out_size = num_out or (batch["targets"].shape[-1] if batch["targets"].ndim == 3 else 1)
  params = {"V": jax.random.normal(k[1], (hidden, out_size)) / np.sqrt(hidden),
            "c": jnp.zeros(out_size)}
  if seq2seq and x.ndim == 2 and not num_in:  # a context vector starts the decoder
    params["C"] = jax.random.normal(k[0], (x.shape[-1], hidden)) / np.sqrt(x.shape[-1])
  else:
    params["enc"] = cell.init(k[0], in_size, hidden)
  if seq2seq:
    params["dec"] = cell.init(k[2], num_dec, hidden)
  optimizer = optax.adam(1e-3)

  def loss_fn(params, batch):
    B = batch["targets"].shape[0]
    if "C" in params:
      h = jnp.tanh(batch["inputs"] @ params["C"])
      carry = cells.lstm.LSTMState(h=h, c=jnp.zeros_like(h))
    else:
      carry = cell.initial_carry(params["enc"], (B,))
      xs = features(batch["inputs"], num_in)
      carry, hs = unroll.scan(cell.step, params["enc"], carry, xs,
                              lengths=batch.get("source_lengths", batch.get("lengths")))
    if seq2seq:
      xs = features(batch["decoder_inputs"], num_dec)
      _, hs = unroll.scan(cell.step, params["dec"], carry, xs, lengths=batch["lengths"])
    y, mask = batch["targets"], batch.get("mask")
    if y.ndim == 1:  # many-to-one: the output at the last real step
      last = batch["lengths"] - 1 if "lengths" in batch else hs.shape[1] - 1
      hs, mask = hs[jnp.arange(B), last], None
    out = hs @ params["V"] + params["c"]
    if num_out:
      per = optax.softmax_cross_entropy_with_integer_labels(out, y)
    else:
      per = ((out - (y if y.ndim == out.ndim else y[..., None])) ** 2).sum(-1)
    if mask is None:
      return per.mean()
    return (per * mask).sum() / jnp.maximum(mask.sum(), 1)

  @jax.jit
  def step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return params, step, optimizer.init(params)


def pipeline_rate(make_iter, batch_size: int, num_batches: int, repeats: int) -> float:
  """Median examples/s over `repeats` fresh iterators, after each one's first batch."""
  rates = []
  for r in range(repeats):
    it = make_iter(r)
    next(it)  # start-up (threads, first read) is not throughput
    start = time.perf_counter()
    for _ in range(num_batches):
      next(it)
    rates.append(num_batches * batch_size / (time.perf_counter() - start))
  return statistics.median(rates)


def same_shape(batches: list[dict], time_keys: dict[str, str]) -> list[dict]:
  """The batches padded along time (zeros, mask False) to their longest, as jnp arrays."""
  out = [dict(b) for b in batches]
  for key, lengths_key in time_keys.items():
    if key not in batches[0]:
      continue  # stream batches: fixed [B, T] already
    T = max(b[key].shape[1] for b in batches)
    for b in out:
      for k in (key, lengths_key.replace("lengths", "mask")):
        b[k] = np.pad(b[k], [(0, 0), (0, T - b[k].shape[1])] + [(0, 0)] * (b[k].ndim - 2))
  return [{k: jnp.asarray(v) for k, v in b.items() if k != "reset"} for b in out]


def training_rate(task_name, task, batches, hidden, steps, repeats) -> tuple[float, float]:
  """(median examples/s of the training step, compile seconds)."""
  batches = same_shape(batches, task.time_keys if "lengths" in batches[0] else {})
  params, step, opt_state = make_train_step(batches[0], *sizes(task), hidden)
  start = time.perf_counter()
  params, opt_state, loss = step(params, opt_state, batches[0])
  loss.block_until_ready()
  compile_s = time.perf_counter() - start
  rates = []
  for r in range(repeats):
    start = time.perf_counter()
    for i in range(steps):
      params, opt_state, loss = step(params, opt_state, batches[(r * steps + i) % len(batches)])
    loss.block_until_ready()
    rates.append(steps * batches[0]["targets"].shape[0] / (time.perf_counter() - start))
  if not np.isfinite(float(loss)):
    raise RuntimeError(f"{task_name}: the training step diverged")
  return statistics.median(rates), compile_s


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=data.DEFAULT_DATA_DIR)
  parser.add_argument("--tasks", default=",".join(TASKS))
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--hidden", type=int, default=256)
  parser.add_argument("--seq_len", type=int, default=64, help="stream batches: T")
  parser.add_argument("--batches", type=int, default=50, help="batches per pipeline repeat")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--steps", type=int, default=5, help="training steps per repeat")
  parser.add_argument("--quick", action="store_true", help="batches=10, repeats=3, steps=2")
  args = parser.parse_args()
  if args.quick:
    args.batches, args.repeats, args.steps = 10, 3, 2
  B = args.batch_size
  print(f"batch {B}, LSTM H={args.hidden}, {jax.devices()[0].platform}; medians of "
        f"{args.repeats} repeats ({args.batches} batches / {args.steps} training steps each)")
  print(f"{'task':18s} {'batch':>11s} {'prep s':>6s} {'cold ex/s':>9s} {'warm ex/s':>9s} "
        f"{'train ex/s':>10s} {'cold x':>7s} {'warm x':>7s}")
  cold_ratios, warm_ratios = {}, {}
  for name in args.tasks.split(","):
    task_name, _, mode = name.partition(":")
    start = time.perf_counter()
    task = data.get_task(task_name, args.data_dir)
    prepare_s = time.perf_counter() - start
    if mode == "stream":
      def make_iter(r, cache, task=task):
        del cache  # the stream holds the split's ids in memory
        return task.stream("train", B, args.seq_len, seed=r, num_epochs=None)
    else:
      def make_iter(r, cache, task=task):
        return task.batches("train", B, seed=r, cache=cache)
      for _ in itertools.islice(make_iter(0, True), task.steps_per_epoch("train", B)):
        pass  # one epoch fills the cache
    cold = pipeline_rate(lambda r: make_iter(r, False), B, args.batches, args.repeats)
    warm = pipeline_rate(lambda r: make_iter(r, True), B, args.batches, args.repeats)
    batches = list(itertools.islice(make_iter(0, True), 4))
    train, _ = training_rate(name, task, batches, args.hidden, args.steps, args.repeats)
    cold_ratios[name], warm_ratios[name] = cold / train, warm / train
    shape = "x".join(map(str, batches[0]["inputs"].shape))
    print(f"{name:18s} {shape:>11s} {prepare_s:6.1f} {cold:9.0f} {warm:9.0f} {train:10.0f} "
          f"{cold / train:7.1f} {warm / train:7.1f}", flush=True)
  for label, ratios in (("warm (every epoch after the first)", warm_ratios),
                        ("cold (first epoch, nothing cached)", cold_ratios)):
    worst = min(ratios, key=ratios.get)
    print(f"lowest ratio, {label}: {ratios[worst]:.1f}x ({worst}); target >= 10x")


if __name__ == "__main__":
  main()
