r"""Where should the input projection x @ U happen? Three scan layouts, one process.

  inside            `unroll.scan(cell.step, ...)`: x_t @ U inside every step.
  hoisted           `uxs = cell.project(params, xs)` as one [B*T, I] x [I, G] matmul
                    before the scan, then `unroll.scan(cell.recur, ...)` over uxs.
  hoisted_prefetch  hoisted, but the scan carry also holds the projected slice for
                    the step being computed; each iteration reads slice t+1 into the
                    carry while step t uses the slice read one iteration earlier.

For every (cell, size) the script checks that all layouts agree (outputs, final
carry, loss and gradients), compiles each layout's forward pass and training step
(timing `.lower(...).compile()` on its own), then times them round-robin
(inside, hoisted, hoisted_prefetch, inside, ...) so that machine noise hits all
layouts alike, and prints a markdown table of thousands of tokens/s (B*T per call)
with each layout's ratio to `inside`.

Usage:
  .venv/bin/python scripts/bench_unroll_layout.py --quick
  .venv/bin/python scripts/bench_unroll_layout.py --cells=lstm,gru --hidden=256,512
"""

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from seqlab import unroll
from seqlab.cells import get_family

LAYOUTS = ("inside", "hoisted", "hoisted_prefetch")
PASSES = ("fwd", "train")

_CELLS = flags.DEFINE_list("cells", ["lstm", "gru", "elman"], "Cell families to benchmark.")
_BATCH = flags.DEFINE_list("batch", ["32"], "Batch sizes B.")
_TIME = flags.DEFINE_list("time", ["128"], "Sequence lengths T.")
_INPUT = flags.DEFINE_list("input", ["128"], "Input sizes I.")
_HIDDEN = flags.DEFINE_list("hidden", ["256"], "Hidden sizes H.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed calls per layout (over all rounds).")
_ROUNDS = flags.DEFINE_integer(
    "rounds", 0, "Round-robin rounds the repeats are split over; 0: one call per round."
)
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed calls per layout after compiling.")
_UNROLL = flags.DEFINE_integer("unroll", 1, "`unroll` argument of lax.scan.")
_RTOL = flags.DEFINE_float("rtol", 1e-5, "Relative tolerance of the agreement check.")
_PASS = flags.DEFINE_list("passes", list(PASSES), "Which of fwd, train to time.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny sizes and few repeats: a smoke run.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write all timings to this JSON file.")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed for params and inputs.")


# ----------------------------------------------------------------------------- layouts


def _forward_fn(family: Any, layout: str, unroll_steps: int) -> Callable:
  """(params, carry, xs) -> (final_carry, ys) for one layout."""

  def inside(params, carry, xs):
    return unroll.scan(family.step, params, carry, xs, unroll=unroll_steps)

  def hoisted(params, carry, xs):
    uxs = family.project(params, xs)  # [B, T, G]: one matmul over all B*T tokens
    return unroll.scan(family.recur, params, carry, uxs, unroll=unroll_steps)

  def hoisted_prefetch(params, carry, xs):
    uxs = family.project(params, xs)
    # Step t computes with ux_t (in the carry) while reading ux_{t+1} (the scan
    # input); the last read is padding that is never used.
    ux_next = jnp.concatenate([uxs[:, 1:], jnp.zeros_like(uxs[:, :1])], axis=1)

    def body(p, state, ux_following):
      h, ux_t = state
      h, y = family.recur(p, h, ux_t)
      return (h, ux_following), y

    (h, _), ys = unroll.scan(
        body, params, (carry, uxs[:, 0]), ux_next, unroll=unroll_steps
    )
    return h, ys

  return {"inside": inside, "hoisted": hoisted, "hoisted_prefetch": hoisted_prefetch}[layout]


def _train_fn(forward: Callable) -> Callable:
  """(params, carry, xs) -> (loss, grads): value_and_grad of sum(ys**2) w.r.t. params."""

  def loss(params, carry, xs):
    _, ys = forward(params, carry, xs)
    return jnp.sum(jnp.square(ys))

  return jax.value_and_grad(loss)


# ----------------------------------------------------------------------------- checks


def _assert_close(name: str, got: Any, want: Any, rtol: float) -> float:
  """Asserts every leaf agrees to `rtol` of that leaf's max |want|; returns the worst ratio."""
  worst = 0.0
  for path, g, w in zip(
      jax.tree_util.tree_leaves_with_path(want),
      jax.tree.leaves(got),
      jax.tree.leaves(want),
      strict=True,
  ):
    g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
    scale = max(float(np.max(np.abs(w))), 1e-30)
    err = float(np.max(np.abs(g - w))) / scale
    worst = max(worst, err)
    if not np.allclose(g, w, rtol=rtol, atol=rtol * scale):
      raise AssertionError(
          f"{name}: leaf {jax.tree_util.keystr(path[0])} differs from `inside`: "
          f"max |diff| / max |ref| = {err:.2e} > {rtol:.0e}"
      )
  return worst


# ----------------------------------------------------------------------------- timing


def _compile(fn: Callable, args: Sequence[Any]) -> tuple[Any, float]:
  """jit + lower + compile, returning the executable and the seconds it took."""
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  return compiled, time.perf_counter() - start


def _time_round_robin(
    compiled: dict[str, Any], args: Sequence[Any], repeats: int, rounds: int, warmup: int
) -> dict[str, list[float]]:
  """Per layout, `repeats` call times in seconds, the layouts taking turns each round."""
  for fn in compiled.values():
    for _ in range(warmup):
      jax.block_until_ready(fn(*args))
  times = {name: [] for name in compiled}
  per_round = [repeats // rounds + (r < repeats % rounds) for r in range(rounds)]
  for calls in per_round:
    for name, fn in compiled.items():
      for _ in range(calls):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times[name].append(time.perf_counter() - start)
  return times


def _summary(samples: list[float]) -> dict[str, float]:
  """Median, quartiles, min and max of call times, in seconds."""
  q1, median, q3 = np.percentile(samples, [25, 50, 75])
  return {
      "median": float(median),
      "q1": float(q1),
      "q3": float(q3),
      "min": min(samples),
      "max": max(samples),
  }


def _paired_ratio(ref: list[float], other: list[float]) -> float:
  """Median over call pairs of t_inside / t_layout: a throughput ratio robust to drift."""
  return statistics.median(r / o for r, o in zip(ref, other, strict=True))


# ----------------------------------------------------------------------------- driver


def _bench_one(
    cell_name: str, B: int, T: int, I: int, H: int, repeats: int, rounds: int
) -> list[dict[str, Any]]:
  """Checks and times all layouts and passes for one cell and size; returns table rows."""
  family = get_family(cell_name)
  k_p, k_x = jax.random.split(jax.random.key(_SEED.value))
  params = family.init(k_p, I, H)
  carry = family.initial_carry(params, (B,))
  xs = jax.random.normal(k_x, (B, T, I), jnp.float32)
  args = (params, carry, xs)

  rows = []
  for pass_name in _PASS.value:
    if pass_name not in PASSES:
      raise ValueError(f"unknown pass {pass_name!r}; known: {PASSES}")
    compiled, compile_s, worst = {}, {}, {}
    for layout in LAYOUTS:
      fn = _forward_fn(family, layout, _UNROLL.value)
      if pass_name == "train":
        fn = _train_fn(fn)
      compiled[layout], compile_s[layout] = _compile(fn, args)
    reference = compiled["inside"](*args)
    for layout in LAYOUTS:
      worst[layout] = _assert_close(
          f"{cell_name} H={H} {pass_name} {layout}", compiled[layout](*args), reference,
          _RTOL.value,
      )
    times = _time_round_robin(compiled, args, repeats, rounds, _WARMUP.value)
    ref = _summary(times["inside"])
    for layout in LAYOUTS:
      s = _summary(times[layout])
      rows.append({
          "cell": cell_name, "B": B, "T": T, "I": I, "H": H, "pass": pass_name,
          "layout": layout, "compile_s": compile_s[layout],
          "ktok_s": B * T / s["median"] / 1e3,
          "ratio": ref["median"] / s["median"],
          "paired_ratio": _paired_ratio(times["inside"], times[layout]),
          "max_rel_diff": worst[layout],
          "times_s": times[layout],
          **{f"{k}_s": v for k, v in s.items()},
      })
      print(
          f"  {cell_name:5s} B={B} T={T} I={I} H={H} {pass_name:5s} {layout:16s} "
          f"compile {compile_s[layout]:6.2f}s  median {s['median'] * 1e3:8.2f} ms  "
          f"{rows[-1]['ktok_s']:7.1f} ktok/s  x{rows[-1]['ratio']:.2f}",
          flush=True,
      )
  return rows


def _markdown(rows: list[dict[str, Any]]) -> str:
  """The results as one markdown table."""
  lines = [
      "| cell | B | T | I | H | pass | layout | compile s | median ms | IQR ms | min-max ms "
      "| ktok/s | vs inside | paired | max rel diff |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    ms = {k: r[f"{k}_s"] * 1e3 for k in ("median", "q1", "q3", "min", "max")}
    lines.append(
        f"| {r['cell']} | {r['B']} | {r['T']} | {r['I']} | {r['H']} | {r['pass']} "
        f"| {r['layout']} | {r['compile_s']:.2f} | {ms['median']:.2f} "
        f"| {ms['q1']:.2f}-{ms['q3']:.2f} | {ms['min']:.2f}-{ms['max']:.2f} "
        f"| {r['ktok_s']:.1f} | {r['ratio']:.2f}x | {r['paired_ratio']:.2f}x "
        f"| {r['max_rel_diff']:.1e} |"
    )
  return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  ints = lambda values: [int(v) for v in values]  # noqa: E731
  if _QUICK.value:
    sizes = [(4, 8, 8, 16)]
    repeats, rounds = 3, 3
  else:
    sizes = [
        (B, T, I, H)
        for B in ints(_BATCH.value) for T in ints(_TIME.value)
        for I in ints(_INPUT.value) for H in ints(_HIDDEN.value)
    ]
    repeats = _REPEATS.value
    rounds = _ROUNDS.value or repeats
  rounds = max(1, min(rounds, repeats))

  print(
      f"jax {jax.__version__} on {jax.devices()}; {os.cpu_count()} CPUs; "
      f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; repeats={repeats} rounds={rounds} "
      f"unroll={_UNROLL.value}",
      flush=True,
  )
  start = time.perf_counter()
  rows = []
  for cell_name in _CELLS.value:
    for B, T, I, H in sizes:
      rows += _bench_one(cell_name, B, T, I, H, repeats, rounds)
  print()
  print(_markdown(rows))
  print(
      "\nktok/s = B*T / median call time. 'vs inside' = inside median / layout median "
      "(>1: faster than inside); 'paired' = median over rounds of the same ratio, call by call."
  )
  print(f"total {time.perf_counter() - start:.0f}s")
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  app.run(main)
