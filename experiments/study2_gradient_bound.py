"""Study 2: measured ||dh_t/dh_k|| of tanh and logistic RNNs against the notes' bound.

    python experiments/study2_gradient_bound.py --output_dir=docs/figures      # ~1-2 min
    python experiments/study2_gradient_bound.py --quick --output_dir=/tmp/s2   # CI smoke run

Notes 001: dh_j/dh_{j-1} = diag(f'(a_j)) W^T, so ||dh_t/dh_k|| <= (gamma ||W||)^(t-k) with
gamma = 1 (tanh) or 1/4 (logistic). W = s * orthogonal makes ||W||_2 = s exactly; the
sweep over s crosses from vanishing (growth rate < 0) to exploding (> 0) for both
activations. Inputs x_t ~ N(0, I) through a fixed U, b = 0. For every (t, k) pair of B
sequences the spectral norm of dh_t/dh_k comes from `analysis.products.lag_norms`; the
per-step growth rate is the slope of the mean log norm against t - k, and the top
Lyapunov exponent (QR method) is its nonlinear-dynamics counterpart. Writes
study2_gradient_bound.png and study2_gradient_bound.md.
"""

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from absl import app, flags

from seqlab import cells
from seqlab.analysis import eigen, jacobians, lyapunov, products, report

_QUICK = flags.DEFINE_bool("quick", False, "A seconds-long smoke run (small n, T, B).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/study2", "Where the PNG and table go.")
_TANH_SCALES = flags.DEFINE_list("tanh_scales", ["0.5", "1", "1.5", "2.5", "4"], "||W|| (tanh).")
_SIGMOID_SCALES = flags.DEFINE_list("sigmoid_scales", ["2", "4", "8", "16", "32"],
                                    "||W|| (logistic).")
_HIDDEN = flags.DEFINE_integer("hidden", 64, "Hidden size n.")
_STEPS = flags.DEFINE_integer("steps", 100, "Sequence length T.")
_MAX_LAG = flags.DEFINE_integer("max_lag", 60, "Largest lag t - k measured.")
_BATCH = flags.DEFINE_integer("batch", 4, "Sequences B.")
_INPUTS = flags.DEFINE_integer("inputs", 4, "Input size.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")


CELLS = {name: cells.make("elman", activation=name) for name in ("tanh", "sigmoid")}


def measure(activation: str, scale: float, n: int, steps: int, max_lag: int, batch: int,
            key: jax.Array) -> dict[str, np.ndarray]:
  """Log ||dh_t/dh_{t-l}||_2 by lag (mean and max over t and sequences) and lambda_1."""
  k_w, k_u, k_x = jax.random.split(key, 3)
  cell = CELLS[activation]  # one step function per activation: jit compiles it once
  inputs = _INPUTS.value
  params = {"U": jax.random.normal(k_u, (inputs, n)) / np.sqrt(inputs),
            "W": jnp.asarray(eigen.orthogonal_with_radius(k_w, n, scale), jnp.float32),
            "b": jnp.zeros(n)}
  carry, xs = jnp.zeros((batch, n)), jax.random.normal(k_x, (batch, steps, inputs))
  J = jacobians.step_jacobians(cell.step, params, carry, xs)
  log_norm = products.lag_norms(J, max_lag=max_lag).log_spectral
  lyap = lyapunov.exponents(cell.step, params, carry, xs, num=1, warmup=min(20, steps // 4))
  return {"mean": np.asarray(products.by_lag(log_norm, "mean")),
          "max": np.asarray(products.by_lag(log_norm, "max")),
          "bound": eigen.log_gradient_bound(params["W"], activation, np.arange(max_lag + 1)),
          "lyapunov": float(np.mean(lyap.exponents))}


def main(argv):
  del argv
  if _QUICK.value:
    n, steps, max_lag, batch = 16, 20, 15, 2
  else:
    n, steps, max_lag, batch = _HIDDEN.value, _STEPS.value, _MAX_LAG.value, _BATCH.value
  sweeps = {"tanh": [float(s) for s in _TANH_SCALES.value],
            "sigmoid": [float(s) for s in _SIGMOID_SCALES.value]}
  key = jax.random.key(_SEED.value)
  lags = np.arange(max_lag + 1)
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
  rows, rates = [], {}
  for ax, (activation, scales) in zip(axes, sweeps.items(), strict=False):
    gamma = eigen.derivative_bound(activation)
    colours = [plt.get_cmap("tab10")(i % 10) for i in range(len(scales))]
    measured = []
    for scale, colour in zip(scales, colours, strict=True):
      m = measure(activation, scale, n, steps, max_lag, batch, key)
      log10 = 1 / np.log(10)
      ax.plot(lags, m["mean"] * log10, color=colour, label=f"||W|| = {scale:g}")
      ax.plot(lags, m["max"] * log10, color=colour, lw=0.6, alpha=0.7)
      ax.plot(lags, m["bound"] * log10, color=colour, ls="--", lw=1)
      measured += [m["mean"] * log10, m["max"] * log10]
      lo = max(1, max_lag // 6)  # fit past the first few lags
      rate = float(np.polyfit(lags[lo:], m["mean"][lo:], 1)[0])
      bound_rate = float(np.log(gamma * scale))
      excess = float(np.max(m["max"][1:] - m["bound"][1:]))
      rates.setdefault(activation, []).append((bound_rate, rate, m["lyapunov"]))
      rows.append([activation, gamma, scale, gamma * scale, bound_rate, rate, m["lyapunov"],
                   excess, float(m["mean"][-1] - m["bound"][-1]),
                   "exploding" if rate > 0 else "vanishing"])
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylim(min(np.min(v) for v in measured) - 2, max(np.max(v) for v in measured) + 3)
    ax.set_title(f"{activation}, gamma = {gamma:g}: measured (solid: mean over t, k; thin: max)"
                 "\nvs the bound (gamma ||W||)^(t-k) (dashed)", fontsize=9)
    ax.set_xlabel("lag t - k")
    ax.set_ylabel("log10 ||dh_t/dh_k||_2")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
  ax = axes[2]
  for activation, marker, colour in (("tanh", "o", "C0"), ("sigmoid", "s", "C2")):
    b, r, lam = np.asarray(rates[activation]).T
    ax.plot(b, r, marker, color=colour, label=f"{activation}: measured rate")
    ax.plot(b, lam, marker, color=colour, mfc="none", ms=11,
            label=f"{activation}: Lyapunov lambda_1")
  span = np.linspace(*ax.get_xlim(), 2)
  ax.plot(span, span, "k--", lw=0.8, label="rate = log(gamma ||W||) (the bound)")
  ax.axhline(0, color="k", lw=0.5)
  ax.set_xlabel("log(gamma ||W||): the bound's rate per step")
  ax.set_ylabel("measured log growth per step")
  ax.set_title("growth rate per step: all below the bound's rate;\n"
               "< 0 vanishing, > 0 exploding", fontsize=9)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  fig.suptitle(f"Elman RNNs, n = {n}, T = {steps}, {batch} sequences, W = ||W|| x orthogonal")
  fig.tight_layout()
  report.save_figure(fig, _OUTPUT_DIR.value, "study2_gradient_bound.png")
  headers = ["activation", "gamma", "||W||_2", "gamma ||W||", "bound rate log(gamma ||W||)",
             "measured rate", "Lyapunov lambda_1", "max over (t,k) of log(measured/bound)",
             f"mean log(measured/bound) at lag {max_lag}", "regime"]
  table = report.markdown_table(headers, rows)
  text = (f"# Study 2: measured ||dh_t/dh_k|| vs (gamma ||W||)^(t-k), n = {n}, T = {steps}, "
          f"lags 0..{max_lag}\n\n{table}\nRates are per-step slopes of the mean natural-log "
          "norm against the lag. The max excess log(measured/bound) is <= 0 up to float32 "
          "rounding (~1e-7): with W = s orthogonal, ||diag(f'(a)) W^T|| = s max_i f'(a_i), so "
          "at lag 1 the bound is attained when a unit sits at a = 0; the gap then opens "
          "linearly with the lag (previous column).\n")
  report.write_text(_OUTPUT_DIR.value, "study2_gradient_bound.md", text)
  print(table)


if __name__ == "__main__":
  app.run(main)
