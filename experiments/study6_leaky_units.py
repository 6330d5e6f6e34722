"""Study 6: leaky units and multiple timescales (notes 000): gradient norm by lag.

    python experiments/study6_leaky_units.py --output_dir=docs/figures      # ~30 s
    python experiments/study6_leaky_units.py --quick --output_dir=/tmp/s6   # CI smoke run

A leaky unit h_t = (1 - a) h_{t-1} + a tanh(x_t U + h_{t-1} W + b) has the Jacobian
dh_t/dh_{t-1} = (1 - a) I + a diag(1 - tanh^2(a_t)) W^T: a small rate a keeps most of the
previous state, so the gradient ||dL_t/dh_k|| of a per-step loss L_t = v . h_t (a fixed
random readout v) decays over about 1/a steps instead of a few. The same W, U, inputs and
v for every rate; gradients come from `analysis.gradients` (autodiff through the scan).
A second net mixes the rates over equal unit groups (`leaky` with rate=(a_1, a_2, ...)):
each group's share of the gradient decays on its own timescale. Writes
study6_leaky_units.png and study6_leaky_units.md.
"""

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from absl import app, flags

from seqlab import cells
from seqlab.analysis import eigen, gradients, lyapunov, products, report

_QUICK = flags.DEFINE_bool("quick", False, "A seconds-long smoke run (small n and T).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/study6", "Where the PNG and table go.")
_RATES = flags.DEFINE_list("rates", ["1.0", "0.5", "0.2", "0.05", "0.02"], "Leak rates a.")
_MIXED = flags.DEFINE_list("mixed_rates", ["1.0", "0.2", "0.02"],
                           "Rates of the multi-timescale net, one per equal unit group.")
_HIDDEN = flags.DEFINE_integer("hidden", 48, "Hidden size n.")
_STEPS = flags.DEFINE_integer("steps", 150, "Sequence length T (= the largest lag).")
_BATCH = flags.DEFINE_integer("batch", 2, "Sequences B.")
_SCALE = flags.DEFINE_float("recurrent_scale", 1.0, "W = scale x orthogonal.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
INPUTS = 4


# The rates live in the params (a = sigmoid(a_logit), the `learn_rate` layout), so one
# compiled program serves every rate.
LEAKY = cells.make("leaky", learn_rate=True)


def with_rates(params: dict, rate, n: int) -> dict:
  """params plus a_logit = logit(a) for the per-unit rates of `rate` (a = 1 as 1 - 1e-7)."""
  a = np.clip(cells.leaky.unit_rates(rate, n), 1e-7, 1 - 1e-7)
  return params | {"a_logit": jnp.asarray(np.log(a) - np.log1p(-a), jnp.float32)}


def readout_loss(h: jax.Array, v: jax.Array) -> jax.Array:
  """L_t = v . h_t (v is passed as the step's target)."""
  return jnp.dot(h, v)


def log_gradient_norms(params: dict, setup: dict, units=None) -> list[np.ndarray]:
  """Mean over t and sequences of log ||dL_t/dh_{t-l}|| [L + 1] (per group of units)."""
  G = gradients.gradients_by_lag(LEAKY.step, params, setup["carry"], setup["xs"],
                                 readout_loss, setup["targets"])
  groups = [None] if units is None else units
  return [np.asarray(products.by_lag(jnp.log(gradients.gradient_norms(G, u)))) for u in groups]


def main(argv):
  del argv
  n, steps, batch = (12, 30, 1) if _QUICK.value else (_HIDDEN.value, _STEPS.value, _BATCH.value)
  rates = [float(a) for a in _RATES.value]
  mixed = tuple(float(a) for a in _MIXED.value)
  k_w, k_u, k_x, k_v = jax.random.split(jax.random.key(_SEED.value), 4)
  setup = {
      "params": {"U": jax.random.normal(k_u, (INPUTS, n)) / np.sqrt(INPUTS),
                 "W": jnp.asarray(eigen.orthogonal_with_radius(k_w, n, _SCALE.value),
                                  jnp.float32),
                 "b": jnp.zeros(n)},
      "carry": jnp.zeros((batch, n)),
      "xs": jax.random.normal(k_x, (batch, steps, INPUTS)),
      # The readout v of L_t = v . h_t, the same at every step.
      "targets": jnp.broadcast_to(jax.random.normal(k_v, (n,)) / np.sqrt(n), (batch, steps, n)),
  }
  lags = np.arange(steps + 1)
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
  rows = []
  for i, a in enumerate(rates):
    params = with_rates(setup["params"], a, n)
    (curve,) = log_gradient_norms(params, setup)
    slope, tau = products.efolding(curve)
    lyap = lyapunov.exponents(LEAKY.step, params, setup["carry"], setup["xs"], num=1,
                              warmup=min(20, steps // 4))
    axes[0].plot(lags, curve / np.log(10), color=f"C{i}", label=f"a = {a:g}")
    rows.append([f"{a:g}", 1 / a, slope, float(np.mean(lyap.exponents)), tau, a * tau])
  groups = np.array_split(np.arange(n), len(mixed))
  # cells.leaky.unit_rates spreads the tuple over equal groups in the same order.
  assert np.allclose(cells.leaky.unit_rates(mixed, n)[[g[0] for g in groups]], mixed)
  curves = log_gradient_norms(with_rates(setup["params"], mixed, n), setup, units=groups)
  mixed_rows = []
  for i, (a, curve) in enumerate(zip(mixed, curves, strict=True)):
    slope, tau = products.efolding(curve)
    axes[1].plot(lags, curve / np.log(10), color=f"C{i}", label=f"units with a = {a:g}")
    mixed_rows.append([f"{a:g} (in the mixed net)", 1 / a, slope, tau, a * tau])
  axes[0].set_title("one leak rate a per net: mean log10 ||dL_t/dh_(t-l)||", fontsize=9)
  axes[1].set_title(f"one net, rates {mixed} over equal unit groups:\n"
                    "each group's part of dL_t/dh_(t-l)", fontsize=9)
  for ax in axes[:2]:
    ax.set_xlabel("lag l = t - k")
    ax.set_ylabel("log10 gradient norm")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  taus = np.array([r[4] for r in rows])
  inv = np.array([r[1] for r in rows])
  finite = np.isfinite(taus)
  axes[2].loglog(inv[finite], taus[finite], "o-", label="single-rate nets")
  mixed_points = [(r[1], r[3]) for r in mixed_rows if np.isfinite(r[3])]
  axes[2].loglog(*np.asarray(mixed_points).reshape(-1, 2).T, "s", mfc="none", ms=9,
                 label="groups of the mixed net")
  ref = np.array([inv.min(), inv.max()])
  c = np.median(taus[finite] / inv[finite])
  axes[2].loglog(ref, c * ref, "k--", lw=0.8, label=f"{c:.2f} / a")
  axes[2].set_xlabel("1 / a")
  axes[2].set_ylabel("e-folding lag: gradient norm down by a factor e")
  axes[2].set_title("the gradient's memory grows like 1 / a", fontsize=9)
  axes[2].legend(fontsize=8)
  axes[2].grid(alpha=0.3, which="both")
  fig.suptitle(f"Leaky tanh units, n = {n}, T = {steps}, W = {_SCALE.value:g} x orthogonal, "
               "L_t = v . h_t")
  fig.tight_layout()
  report.save_figure(fig, _OUTPUT_DIR.value, "study6_leaky_units.png")
  table = report.markdown_table(
      ["rate a", "1/a", "slope of log ||dL_t/dh_k|| per lag", "Lyapunov lambda_1",
       "e-folding lag", "a x e-folding lag"], rows)
  table2 = report.markdown_table(
      ["rate a", "1/a", "slope per lag (long lags)", "e-folding lag", "a x e-folding lag"],
      mixed_rows)
  text = (f"# Study 6: leaky units, n = {n}, T = {steps}\n\n{table}\n"
          f"Multi-timescale net (rates {mixed} over equal unit groups), per group:\n\n"
          f"{table2}\nSlopes are fitted to the mean natural-log gradient norm past the first "
          "lags; the e-folding lag is the first lag at which the mean log norm has fallen by 1 "
          "below its lag-0 value. In the mixed net the groups are coupled through W, so at "
          "long lags every group's gradient decays with the slowest mode (equal slopes); the "
          "fast groups lose a factor e within a few steps first.\n")
  report.write_text(_OUTPUT_DIR.value, "study6_leaky_units.md", text)
  print(table + "\n" + table2)


if __name__ == "__main__":
  app.run(main)
