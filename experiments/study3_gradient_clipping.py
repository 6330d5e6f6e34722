"""Study 3: gradient clipping (Pascanu, Mikolov & Bengio 2013) on the adding problem.

    python experiments/study3_gradient_clipping.py --output_dir=docs/figures      # ~1 minute
    python experiments/study3_gradient_clipping.py --quick --output_dir=/tmp/s3   # CI smoke run

An Elman tanh net whose W starts with spectral radius 1.2 (past the bifurcation where
gradients can explode) learns the adding problem by plain SGD, with global-norm clipping

    g <- theta g / ||g||   when ||g|| > theta,     theta in {off, 10, 1, 0.1},

at two learning rates and three seeds: one vmapped program (`seqlab.sweep`) trains all the
nets. With plain SGD the gradient actually applied is measurable from the parameters,
||clip(g_k)|| = ||theta_{k+1} - theta_k|| / lr. Non-finite steps are skipped and counted
(train.nonfinite = "skip"). Writes study3_gradient_clipping.png and .md.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from absl import app, flags

from seqlab import config as base
from seqlab.analysis import report
from seqlab.sweep import studies

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
_QUICK = flags.DEFINE_bool("quick", False, "A seconds-long smoke run (tiny net, 60 steps).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/study3", "Where the PNG and table go.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Prepared datasets are cached here.")
_T = flags.DEFINE_integer("T", 20, "Adding-problem sequence length.")
_HIDDEN = flags.DEFINE_integer("hidden", 32, "Hidden size.")
_RADIUS = flags.DEFINE_float("radius", 1.2, "Initial spectral radius of W.")
_STEPS = flags.DEFINE_integer("steps", 3000, "SGD steps.")
_LRS = flags.DEFINE_list("learning_rates", ["0.03", "0.1"], "SGD learning rates.")
_THRESHOLDS = flags.DEFINE_list("thresholds", ["0", "10", "1", "0.1"],
                                "Clipping thresholds theta (0: no clipping).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (init, data order).")
SPIKE = 10.0  # a spike: ||g|| above SPIKE x the run's median


def smooth(x: np.ndarray, width: int) -> np.ndarray:
  """Running mean over `width` steps (non-finite values left out)."""
  ok = np.isfinite(x)
  kernel = np.ones(width)
  total = np.convolve(np.where(ok, x, 0.0), kernel, "same")
  count = np.convolve(ok.astype(float), kernel, "same")
  return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def main(argv):
  del argv
  studies.quiet()
  quick = _QUICK.value
  T, hidden, steps = (10, 8, 60) if quick else (_T.value, _HIDDEN.value, _STEPS.value)
  lrs = (0.1,) if quick else tuple(float(v) for v in _LRS.value)
  thresholds = (0.0, 1.0) if quick else tuple(float(v) for v in _THRESHOLDS.value)
  seeds = (0,) if quick else tuple(int(v) for v in _SEEDS.value)
  fields = {
      "task.data_dir": _DATA_DIR.value, "task.options.num_train": 256 if quick else 4096,
      "task.options.num_validation": 64 if quick else 256, "task.options.num_test": 64,
      "model.hidden_size": hidden,
      "model.cell_options": {"activation": "tanh", "recurrent_init": "spectral_radius",
                             "recurrent_scale": _RADIUS.value},
      "optimizer.name": "sgd", "optimizer.clip_norm": 0.0,
      "train.num_steps": steps, "train.nonfinite": "skip", "train.eval_batches": 8,
  }
  axes = (("optimizer.learning_rate", lrs), ("optimizer.clip_norm", thresholds),
          ("seed", seeds))
  run = studies.run(base.load_file(CONFIGS / "adding.py", f"cell=elman,T={T}"), fields, axes)
  members, hist = run.pop.members, run.result.history
  grad = np.where(np.isfinite(hist["grad_norm"]), hist["grad_norm"], np.nan)
  lr = np.array([m["optimizer.learning_rate"] for m in members])
  applied = hist["update_norm"] / lr  # ||clip(g)|| (0 on skipped steps)
  skipped = np.asarray(run.result.state["skipped"])

  rows = []
  for i, (m, final) in enumerate(zip(members, run.finals, strict=True)):
    theta = m["optimizer.clip_norm"]
    median = float(np.nanmedian(grad[:, i]))
    rows.append([m["optimizer.learning_rate"], theta if theta else "off", m["seed"],
                 final["loss_vs_baseline"], final["close_fraction"], float(np.nanmax(grad[:, i])),
                 median, int(np.sum(grad[:, i] > SPIKE * median)),
                 float(np.nanmax(applied[:, i])), int(skipped[i])])
  headers = ["learning rate", "clip threshold", "seed", "final val MSE / baseline",
             "fraction |y - y_hat| < 0.04", "max ||g|| (finite)", "median ||g||",
             f"spikes (||g|| > {SPIKE:g} x median)", "max applied ||clip(g)||",
             "non-finite steps (skipped)"]
  table = report.markdown_table(headers, rows)

  summary = []
  for a in lrs:
    for theta in thresholds:
      idx = [i for i, m in enumerate(members)
             if m["optimizer.learning_rate"] == a and m["optimizer.clip_norm"] == theta]
      finals = [run.finals[i]["loss_vs_baseline"] for i in idx]
      summary.append([a, theta if theta else "off", float(np.median(finals)),
                      sum(rows[i][7] for i in idx), int(skipped[idx].sum())])
  table2 = report.markdown_table(
      ["learning rate", "clip threshold", "median final val MSE / baseline (over seeds)",
       "spikes (all seeds)", "non-finite steps (all seeds)"], summary)
  plot(members, grad, applied, hist["loss"], lrs, thresholds, seeds, run.finals,
       f"Elman tanh, H = {hidden}, rho(W_0) = {_RADIUS.value:g}, adding problem T = {T}, "
       f"plain SGD; {len(members)} nets in one vmapped program")
  text = (f"# Study 3: gradient clipping, adding problem T = {T}, Elman tanh H = {hidden}, "
          f"rho(W_0) = {_RADIUS.value:g}, SGD, {steps} steps\n\n"
          f"One vmapped program trained all {len(members)} nets (compile "
          f"{run.result.compile_s:.1f} s, training {run.result.train_s:.1f} s). MSE / baseline "
          "is the validation MSE over that of always predicting 1 (1/6). The applied gradient "
          "norm is measured as ||theta_{k+1} - theta_k|| / lr.\n\n"
          f"{table}\nPer learning rate and threshold:\n\n{table2}")
  report.write_text(_OUTPUT_DIR.value, "study3_gradient_clipping.md", text)
  print(table + "\n" + table2)


def plot(members, grad, applied, loss, lrs, thresholds, seeds, finals, title):
  """Per learning rate: ||g|| and the loss over training; applied norms; final losses."""
  fig, axes = plt.subplots(2, len(lrs) + 1, figsize=(6 * (len(lrs) + 1), 8.5), squeeze=False)
  seed0, lr_hi = seeds[0], max(lrs)
  steps = np.arange(1, len(grad) + 1)
  width = max(1, len(grad) // 100)
  pick = lambda a, theta: [i for i, m in enumerate(members) if m["optimizer.learning_rate"] == a
                           and m["optimizer.clip_norm"] == theta]
  for col, a in enumerate(lrs):
    for j, theta in enumerate(thresholds):
      name = f"theta = {theta:g}" if theta else "no clipping"
      same = pick(a, theta)
      (i,) = [i for i in same if members[i]["seed"] == seed0]
      axes[0, col].semilogy(steps, grad[:, i], color=f"C{j}", lw=0.6, label=name)
      curve = np.nanmedian(np.stack([smooth(loss[:, i], width) for i in same]), axis=0)
      axes[1, col].semilogy(steps, np.minimum(curve, 1e3), color=f"C{j}", label=name)
      if a == lr_hi:
        shown = np.where(applied[:, i] > 0, applied[:, i], np.nan)
        axes[0, -1].semilogy(steps, shown, color=f"C{j}", lw=0.6, label=name)
        if theta:
          axes[0, -1].axhline(theta, color=f"C{j}", ls="--", lw=0.8)
    axes[1, col].axhline(1 / 6, color="k", ls=":", lw=0.8, label="baseline (predict 1)")
    axes[0, col].set_title(f"||g|| before clipping, lr = {a:g}, seed {seed0}", fontsize=9)
    axes[0, col].set_ylabel("||g||")
    axes[1, col].set_title(f"training MSE, lr = {a:g} (running mean over {width} steps, "
                           "median over seeds, capped at 1e3)", fontsize=9)
    axes[1, col].set_ylabel("MSE")
  for k, a in enumerate(lrs):
    for j, theta in enumerate(thresholds):
      vals = [finals[i]["loss_vs_baseline"] for i in pick(a, theta)]
      x = j + 0.15 * (k - (len(lrs) - 1) / 2)
      axes[1, -1].semilogy([x] * len(vals), np.minimum(vals, 1e3), "o", color=f"C{k}",
                           mfc="none", label=f"lr = {a:g}" if j == 0 else None)
  axes[1, -1].axhline(1.0, color="k", ls=":", lw=0.8)
  axes[1, -1].set_xticks(range(len(thresholds)), [f"{t:g}" if t else "off" for t in thresholds])
  axes[1, -1].set_title("final validation MSE / baseline (one dot per seed; capped at 1e3)",
                        fontsize=9)
  axes[1, -1].set_ylabel("MSE / baseline")
  axes[0, -1].set_title(f"applied ||clip(g)|| = ||dtheta|| / lr, lr = {lr_hi:g}, seed {seed0} "
                        "(dashed: theta)", fontsize=9)
  axes[0, -1].set_ylabel("norm")
  for ax in axes.flat:
    ax.set_xlabel("clip threshold theta" if ax is axes[1, -1] else "step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  report.save_figure(fig, _OUTPUT_DIR.value, "study3_gradient_clipping.png")


if __name__ == "__main__":
  app.run(main)
