"""Study 5: echo-state networks (Jaeger 2001): memory capacity and Mackey-Glass error against rho.

rho is the reservoir's spectral radius.

    python experiments/study5_echo_state.py --output_dir=docs/figures      # ~2 minutes
    python experiments/study5_echo_state.py --quick --output_dir=/tmp/s5   # CI smoke run

Memory capacity. An i.i.d. input u_t ~ U[-1, 1] drives a tanh reservoir of N units
(`models.ESN`, input scaling 0.1); for every delay k a linear readout y_k(t) = W_k z_t is
fitted by ridge regression to recall u_{t-k} on a training stretch, and on a test stretch

    MC_k = corr(y_k(t), u_{t-k})^2,     MC = sum_{k=1}^{2N} MC_k   (<= N for i.i.d. input).

All (rho, seed) reservoirs run in one vmapped scan; the fits are float64 on the host
(Z^T Z is ill-conditioned near rho = 1). Mackey-Glass. One-step-ahead prediction of the
tau = 17 series with the runner's `SeriesPrediction` problem (configs/esn.py: ridge readout
fitted at initialisation, washout 50): a `seqlab.sweep` over model.rho x seed evaluates
every reservoir in one program; the metric is the test NRMSE = sqrt(MSE / Var(y)).
Writes study5_echo_state.png and .md.
"""

from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np
from absl import app, flags

from seqlab import config as base
from seqlab.analysis import report
from seqlab.models.esn import ESN
from seqlab.sweep import population, studies

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
_QUICK = flags.DEFINE_bool("quick", False, "A seconds-long smoke run (small reservoirs).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/study5", "Where the PNG and table go.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Prepared datasets are cached here.")
_RHOS = flags.DEFINE_list(
    "rhos", ["0.1", "0.3", "0.5", "0.7", "0.8", "0.9", "0.95", "1.0", "1.05", "1.1", "1.2", "1.5"],
    "Spectral radii.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Reservoir draws per rho.")
_N = flags.DEFINE_integer("reservoir", 50, "Memory-capacity reservoir size N.")
_MG_N = flags.DEFINE_integer("mg_reservoir", 200, "Mackey-Glass reservoir size.")
_RIDGE = flags.DEFINE_float("ridge", 1e-8, "Ridge penalty of the memory readouts.")
WASHOUT = 200


def memory_capacity(rhos, seeds, n: int, train: int, test: int, ridge: float):
  """MC_k [members, 2N] for every (rho, seed) member, in member order (rho slowest)."""
  steps = WASHOUT + train + test
  u = jax.random.uniform(jax.random.key(1234), (1, steps, 1), minval=-1.0, maxval=1.0)
  members = [(r, s) for r in rhos for s in seeds]
  variables = population.stack([
      ESN(n, 1, rho=r, density=0.2, input_scaling=0.1).init(jax.random.key(s), u)
      for r, s in members])
  model = ESN(n, 1, density=0.2, input_scaling=0.1)  # rho only draws the reservoir
  z = jax.jit(jax.vmap(lambda v: model.apply(v, u, method=ESN.features)))(variables)
  z, u = np.asarray(z[:, 0], np.float64), np.asarray(u[0, :, 0], np.float64)
  delays = np.arange(1, 2 * n + 1)
  t = np.arange(WASHOUT, steps)
  targets = np.stack([u[t - k] for k in delays], axis=1)  # [T, K]: u_{t-k}
  fit, held = slice(0, train), slice(train, train + test)
  out = np.zeros((len(members), len(delays)))
  for i in range(len(members)):
    Z = z[i, t]
    W = np.linalg.solve(Z[fit].T @ Z[fit] + ridge * np.eye(Z.shape[1]), Z[fit].T @ targets[fit])
    y = Z[held] @ W
    for j in range(len(delays)):
      out[i, j] = np.corrcoef(y[:, j], targets[held, j])[0, 1] ** 2
  return out


def mackey_glass_nrmse(rhos, seeds, hidden: int, quick: bool):
  """Test NRMSE per (rho, seed) member (rho slowest): one sweep of configs/esn.py."""
  fields = {"task.data_dir": _DATA_DIR.value, "model.hidden_size": hidden,
            "train.num_steps": 0}
  if quick:
    fields.update({"task.options.num_samples": 2000, "task.options.window": 100,
                   "problem.washout": 20, "train.batch_size": 8})
  run = studies.run(base.load_file(CONFIGS / "esn.py"), fields,
                    (("model.rho", tuple(rhos)), ("seed", tuple(seeds))), split="test")
  return np.array([f["nrmse"] for f in run.finals]), run


def main(argv):
  del argv
  studies.quiet()
  quick = _QUICK.value
  rhos = (0.3, 0.9, 1.5) if quick else tuple(float(r) for r in _RHOS.value)
  seeds = (0,) if quick else tuple(int(s) for s in _SEEDS.value)
  n, mg_n = (20, 20) if quick else (_N.value, _MG_N.value)
  train, test = (1000, 500) if quick else (4000, 2000)
  mc_k = memory_capacity(rhos, seeds, n, train, test, _RIDGE.value)
  mc = mc_k.sum(1).reshape(len(rhos), len(seeds))
  nrmse, run = mackey_glass_nrmse(rhos, seeds, mg_n, quick)
  nrmse = nrmse.reshape(len(rhos), len(seeds))
  rows = [[r, float(mc[i].mean()), float(mc[i].std()), float(mc[i].max()) / n,
           float(np.median(nrmse[i])), float(nrmse[i].min()), float(nrmse[i].max())]
          for i, r in enumerate(rhos)]
  headers = ["rho", f"memory capacity MC (N = {n}, mean over seeds)", "MC std",
             "max MC / N", f"Mackey-Glass test NRMSE (N = {mg_n}, median)", "NRMSE min",
             "NRMSE max"]
  table = report.markdown_table(headers, rows)
  best_mc, best_mg = rhos[int(np.argmax(mc.mean(1)))], rhos[int(np.argmin(np.median(nrmse, 1)))]
  plot(rhos, seeds, n, mg_n, mc_k, mc, nrmse)
  text = (f"# Study 5: echo-state networks against the spectral radius rho\n\n{table}\n"
          f"Memory capacity peaks at rho = {best_mc:g}; Mackey-Glass one-step NRMSE is lowest "
          f"at rho = {best_mg:g}. MC: tanh reservoir of N = {n} units, density 0.2, input "
          f"scaling 0.1, u ~ U[-1, 1], ridge readouts fitted on {train} steps and scored on "
          f"{test} (after a washout of {WASHOUT}), delays k = 1..{2 * n}; {len(seeds)} reservoir "
          f"draws per rho. Mackey-Glass: configs/esn.py with N = {mg_n}, the ridge readout of "
          f"the runner's SeriesPrediction problem, {len(rhos) * len(seeds)} reservoirs "
          f"evaluated by one vmapped program (seqlab.sweep).\n")
  report.write_text(_OUTPUT_DIR.value, "study5_echo_state.md", text)
  print(table)
  del run


def plot(rhos, seeds, n, mg_n, mc_k, mc, nrmse):
  """MC_k against k, MC against rho, NRMSE against rho."""
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
  per_rho = mc_k.reshape(len(rhos), len(seeds), -1).mean(1)
  delays = np.arange(1, per_rho.shape[1] + 1)
  cmap = plt.get_cmap("viridis")
  for i, r in enumerate(rhos):
    axes[0].plot(delays, per_rho[i], color=cmap(i / max(1, len(rhos) - 1)), label=f"rho = {r:g}")
  axes[0].set_xlabel("delay k")
  axes[0].set_ylabel("MC_k = corr(y_k, u_(t-k))^2")
  axes[0].set_title(f"forgetting curves, N = {n} (mean over seeds)", fontsize=9)
  axes[0].legend(fontsize=6, ncol=2)
  for j in range(len(seeds)):
    axes[1].plot(rhos, mc[:, j], "o", mfc="none", color="C0", alpha=0.6)
    axes[2].semilogy(rhos, nrmse[:, j], "o", mfc="none", color="C1", alpha=0.6)
  axes[1].plot(rhos, mc.mean(1), "-", color="C0", label="mean over seeds")
  axes[1].axhline(n, color="k", ls="--", lw=0.8, label="bound MC <= N")
  axes[1].set_ylabel("memory capacity MC = sum_k MC_k")
  axes[1].set_title("memory capacity against rho", fontsize=9)
  axes[2].semilogy(rhos, np.median(nrmse, 1), "-", color="C1", label="median over seeds")
  axes[2].set_ylabel("test NRMSE")
  axes[2].set_title(f"Mackey-Glass one-step prediction, N = {mg_n}", fontsize=9)
  for ax in axes[1:]:
    ax.set_xlabel("spectral radius rho")
    ax.legend(fontsize=8)
  for ax in axes:
    ax.grid(alpha=0.3)
  fig.tight_layout()
  report.save_figure(fig, _OUTPUT_DIR.value, "study5_echo_state.png")


if __name__ == "__main__":
  app.run(main)
