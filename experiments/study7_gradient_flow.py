"""Study 7: gradient flow in gated cells: ||dL_t/ds_{t-l}|| by lag l, tanh Elman vs LSTM vs GRU.

    python experiments/study7_gradient_flow.py --output_dir=docs/figures      # see the .md
    python experiments/study7_gradient_flow.py --quick --output_dir=/tmp/s7   # CI smoke run

The notes claim that the gates keep gradients alive across long lags where a tanh RNN's
vanish. Measured on the copy task (configs/copy.py, delay T): for every output step t of a
batch of validation sequences, the per-step loss L_t = CE(c + V h_t, y_t) is differentiated
with respect to every earlier state s_{t-l} (s = h, or (h, c) for the LSTM) by
`analysis.gradients` (autodiff through the scan), and log ||dL_t/ds_{t-l}|| is averaged over
t and sequences. Once at initialisation and once after training on the copy task, each cell
with the initialisation study 8 uses (LSTM and GRU: chrono, Tallec & Ollivier 2018; an LSTM
with the common forget bias 1 is shown at initialisation too). The tanh Elman net gets the
notes' bound (study 2) ||dL_t/dh_{t-l}|| <= ||dL_t/dh_t|| ||W||_2^l. Writes
study7_gradient_flow.png and .md (with the e-folding lags).
"""

import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from absl import app, flags

from seqlab import cells
from seqlab import config as base
from seqlab.analysis import eigen, gradients, products, report
from seqlab.sweep import population, studies

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

_QUICK = flags.DEFINE_bool("quick", False, "A seconds-long smoke run (T = 60, H = 16).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/study7", "Where the PNG and table go.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Prepared datasets are cached here.")
_DELAY = flags.DEFINE_integer("delay", 100, "Copy-task delay T.")
_STEPS = flags.DEFINE_integer("steps", 1500, "Adam steps of the training run per cell.")
_HIDDEN = flags.DEFINE_integer("hidden", 64, "Hidden size H.")
_BATCH = flags.DEFINE_integer("batch", 8, "Validation sequences the gradients average over.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the training runs.")
SYMBOLS, ALPHABET = 4, 4  # the copy task of study 4: 4 symbols of an alphabet of 4

# name -> (cell preset, cell_options beyond the preset, trained too); chrono's T_max is set
# to the sequence length T + 2n when the config is made.
VARIANTS = {
    "tanh Elman": ("elman", {}, True),
    "LSTM (chrono)": ("lstm", {"chrono": -1}, True),
    "GRU (chrono)": ("gru", {"chrono": -1}, True),
    "LSTM (forget bias 1)": ("lstm", {}, False),
}


def make_config(variant: str, delay: int, hidden: int, steps: int, quick: bool):
  """configs/copy.py for one variant (without its long-lag recipe), with this study's task
  and training fields."""
  cell, options, _ = VARIANTS[variant]
  fields = {"task.data_dir": _DATA_DIR.value, "task.options.alphabet_size": ALPHABET,
            "task.options.num_symbols": SYMBOLS, "task.options.num_train": 512 if quick else 4096,
            "task.options.num_validation": 64 if quick else 256, "task.options.num_test": 64,
            "model.embed_size": 8, "model.hidden_size": hidden,
            "optimizer.learning_rate": 3e-3, "optimizer.schedule": "cosine",
            "optimizer.decay_steps": steps, "optimizer.end_learning_rate": 3e-4,
            "train.num_steps": steps, "train.eval_batches": 8}
  for name, value in options.items():
    fields[f"model.cell_options.{name}"] = delay + 2 * SYMBOLS if value == -1 else value
  # recipe=none: this study sets its own training; the long-lag recipe would also give the
  # forget-bias LSTM a chrono initialisation
  config = base.load_file(CONFIGS / "copy.py", f"cell={cell},delay={delay},recipe=none")
  return studies.with_fields(config, fields, (("seed", (_SEED.value,)),))


def hidden_of(s):
  """h_t from a carry: the LSTM's (h, c) or the state itself."""
  return s.h if isinstance(s, tuple) else s


def readout_loss(s, target: dict) -> jax.Array:
  """L_t = CE(c + V h_t, y_t), the readout (V, c) passed with the target."""
  logits = hidden_of(s) @ target["V"] + target["c"]
  return optax.softmax_cross_entropy_with_integer_labels(logits, target["y"])


def lag_profile(config, params: dict, batch: dict) -> tuple[np.ndarray, np.ndarray]:
  """Mean over output steps t and sequences of log ||dL_t/ds_{t-l}|| [L + 1], and the same
  for the Elman bound log ||dL_t/dh_t|| + l log ||W||_2 (NaN for gated cells)."""
  p = params["params"]
  cell = cells.make(config.model.cell, **config.model.cell_options)
  xs = p["embed"]["embedding"][batch["inputs"]]
  V, c = p["V"]["kernel"], p["V"]["bias"]

  y = batch["targets"]
  # The readout rides along with the targets, so one compiled program serves every stage.
  targets = {"y": y, "V": jnp.broadcast_to(V, (*y.shape, *V.shape)),
             "c": jnp.broadcast_to(c, (*y.shape, *c.shape))}
  carry = cell.initial_carry(p["recurrent"]["cell"], xs.shape[:1])
  G = gradients.gradients_by_lag(cell.step, p["recurrent"]["cell"], carry, xs, readout_loss,
                                 targets)
  outputs = np.nonzero(np.asarray(batch["targets"][0]) != 0)[0]  # the copy's output steps
  log_norms = jnp.log(gradients.gradient_norms(G))[:, outputs]
  profile = np.asarray(products.by_lag(log_norms))
  if config.model.cell != "elman":
    return profile, np.full_like(profile, np.nan)
  # Per (sequence, t, l): log ||dL_t/dh_t|| + l log(gamma ||W||_2), averaged like the norms.
  rate = eigen.log_gradient_bound(p["recurrent"]["cell"]["W"],
                                  config.model.cell_options.activation, np.ones(1))[0]
  bounds = log_norms[..., :1] + rate * jnp.arange(log_norms.shape[-1])
  return profile, np.asarray(products.by_lag(jnp.where(jnp.isnan(log_norms), jnp.nan, bounds)))


def first_member(tree):
  """Member 0 of a stacked population pytree, as numpy (survives the donated state)."""
  return jax.tree.map(lambda a: np.asarray(a[0]), tree)


def main(argv):
  del argv
  studies.quiet()
  quick = _QUICK.value
  delay, hidden, steps = (60, 16, 10) if quick else (_DELAY.value, _HIDDEN.value, _STEPS.value)
  batch_size = 4 if quick else _BATCH.value
  lag_of_copy = delay + SYMBOLS  # from the i-th symbol to its replay
  profiles, curves, rows, t_start = {}, {}, [], time.perf_counter()
  for variant, (_, _, trained) in VARIANTS.items():
    config = make_config(variant, delay, hidden, steps, quick)
    pop = population.build(config)
    batch = next(iter(pop.problem.eval_batches("validation")))
    batch = jax.tree.map(lambda a: a[:batch_size], batch)
    state = population.initial_state(pop)
    stages = {"init": first_member(state["params"])}
    finals = {}
    if trained:
      result = population.train(pop, state=state)
      stages["trained"] = first_member(result.state["params"])
      finals = population.evaluate(pop, result.state["params"], "validation",
                                   config.train.eval_batches)[0]
      curves[variant] = result.history["loss"][:, 0]
      baseline = finals["loss"] / finals["loss_vs_baseline"]
      curves[variant] = curves[variant] / baseline
    for stage, params in stages.items():
      profile, bound = lag_profile(config, params, batch)
      profiles[variant, stage] = (profile, bound)
      slope, tau = products.efolding(profile[: lag_of_copy + 1])
      log10 = profile / np.log(10)
      elman = np.isfinite(bound).all()
      bound_slope = bound[1] - bound[0] if elman else ""
      above = float(np.max(profile - bound)) / np.log(10) if elman else ""
      rows.append([variant, stage, log10[0], log10[50], log10[lag_of_copy],
                   log10[50] - log10[0], slope, -1 / slope if slope < 0 else float("inf"), tau,
                   bound_slope, above,
                   finals.get("loss_vs_baseline", float("nan")) if stage == "trained" else ""])
      print(f"{variant:22s} {stage:8s} log10 norm lag 0 {log10[0]:7.2f}, lag 50 {log10[50]:7.2f}"
            f", lag {lag_of_copy} {log10[lag_of_copy]:7.2f}; e-folding lag {tau:.3g}", flush=True)
  headers = ["cell", "stage", "log10 norm, lag 0", "lag 50", f"lag {lag_of_copy} (the copy's)",
             "log10 (lag 50 / lag 0)", "slope of ln norm per lag",
             "e-folding lag -1 / slope", "first lag down by e", "bound slope ln ||W||_2",
             "max over lags of log10 (norm / bound)",
             "val loss / baseline"]
  table = report.markdown_table(headers, rows, digits=3)
  plot(profiles, curves, delay, lag_of_copy, steps)
  text = (f"# Study 7: gradient flow by lag on the copy task, T = {delay}, H = {hidden}\n\n"
          f"{table}\nNorms: mean over the copy's output steps t and {batch_size} validation "
          "sequences of log10 ||dL_t/ds_{t-l}||, s = h (Elman, GRU) or (h, c) (LSTM), L_t the "
          "per-step cross-entropy. Slope: least squares of the natural-log norm against the lag "
          f"(lags {max(2, (lag_of_copy + 1) // 10)}..{lag_of_copy}), so -1 / slope is the "
          "e-folding lag of the long-lag decay; first lag down by e: where the norm has first "
          "fallen by a factor e below lag 0 (an LSTM's h-path falls within a lag or two while "
          f"its c-path carries on; inf: never within {lag_of_copy} lags). Trained: {steps} Adam "
          f"steps (lr 3e-3 cosine to 3e-4, clip 1, batch 32) on copy with {SYMBOLS} symbols of "
          f"{ALPHABET}, one seed. Elman bound: ||dL_t/dh_t|| ||W||_2^l (gamma = 1 for tanh), "
          "slope ln ||W||_2 per lag.\n")
  report.write_text(_OUTPUT_DIR.value, "study7_gradient_flow.md", text)
  print(table)
  print(f"wall time {time.perf_counter() - t_start:.0f} s; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def plot(profiles, curves, delay, lag_of_copy, steps):
  """Log gradient norm by lag (init dashed, trained solid, Elman bound dotted); curves."""
  fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [3, 2]})
  colours = {v: f"C{i}" for i, v in enumerate(VARIANTS)}
  for (variant, stage), (profile, bound) in profiles.items():
    lags = np.arange(len(profile))
    style = "-" if stage == "trained" else "--"
    axes[0].plot(lags, profile / np.log(10), style, color=colours[variant],
                 label=f"{variant}, {stage}")
    if np.isfinite(bound).any():
      norm_w = np.exp(bound[1] - bound[0])
      axes[0].plot(lags, bound / np.log(10), ":", color=colours[variant],
                   lw=1.6 if stage == "trained" else 1,
                   label=f"bound ||dL_t/dh_t|| ||W||^l, {stage} (||W||_2 = {norm_w:.2f})")
  axes[0].axvline(lag_of_copy, color="k", lw=0.6, ls="-.", label=f"lag {lag_of_copy}: the copy")
  lo = min(np.nanmin(p) for p, _ in profiles.values()) / np.log(10)
  hi = max(np.nanmax(p) for p, _ in profiles.values()) / np.log(10)
  axes[0].set_ylim(max(lo, -40) - 1, hi + 2)  # a bound above that is off the chart
  axes[0].set_xlabel("lag l = t - k")
  axes[0].set_ylabel("mean log10 ||dL_t / ds_(t-l)||")
  axes[0].set_title(f"copy task T = {delay}: gradient of the output steps' losses by lag",
                    fontsize=9)
  for variant, curve in curves.items():
    axes[1].semilogy(np.arange(1, steps + 1), curve, color=colours[variant], lw=0.8,
                     label=variant)
  axes[1].axhline(1.0, color="k", ls=":", lw=0.8, label="memoryless baseline")
  axes[1].set_xlabel("step")
  axes[1].set_ylabel("training loss / baseline")
  axes[1].set_title("the training runs", fontsize=9)
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  report.save_figure(fig, _OUTPUT_DIR.value, "study7_gradient_flow.png")


if __name__ == "__main__":
  app.run(main)
