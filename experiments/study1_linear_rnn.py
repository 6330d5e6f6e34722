"""Study 1: the linear RNN h_t = W h_{t-1} and the eigenvalue picture (notes 000).

    python experiments/study1_linear_rnn.py --output_dir=docs/figures      # ~10 s
    python experiments/study1_linear_rnn.py --quick --output_dir=/tmp/s1   # CI smoke run

h_t = W^t h_0 = Q Lambda^t Q^T h_0 (symmetric W), so ||h_t|| and ||dh_t/dh_0|| = ||W^t||
grow or shrink like rho^t with rho the spectral radius. Two families of W make the rho^t
lines exact: rho times an orthogonal matrix (every singular value = rho, so
||h_t|| = rho^t ||h_0|| and ||dh_t/dh_0||_2 = rho^t) and symmetric W with largest
|eigenvalue| rho (||dh_t/dh_0||_2 = rho^t; ||h_t|| -> c rho^t). The Elman cell with the
identity activation is the linear RNN; its trajectory, per-step Jacobians, their products
and the Lyapunov exponents come from `seqlab.analysis`. Writes study1_linear_rnn.png and
study1_linear_rnn.md (measured slope of log ||dh_t/dh_0|| against t next to log rho).
"""

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from absl import app, flags

from seqlab import cells
from seqlab.analysis import eigen, jacobians, lyapunov, products, report

_QUICK = flags.DEFINE_bool("quick", False, "A seconds-long smoke run (small n and T).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/study1", "Where the PNG and table go.")
_RHOS = flags.DEFINE_list("rhos", ["0.5", "0.9", "1.0", "1.1", "1.5"], "Spectral radii.")
_HIDDEN = flags.DEFINE_integer("hidden", 32, "State size n.")
_STEPS = flags.DEFINE_integer("steps", 100, "Time steps T.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed for W and h_0.")


LINEAR = cells.make("elman", activation="identity", use_bias=False)  # f(a) = a


def measure(W: np.ndarray, h0: np.ndarray, steps: int) -> dict[str, np.ndarray]:
  """||h_t||, ||dh_t/dh_0||_2 (t = 0..T) and the Lyapunov exponents of h_t = W h_{t-1}."""
  n, cell = W.shape[0], LINEAR
  # Row-vector code: h_t = h_{t-1} @ W_cell, so W_cell = W^T for the notes' h_t = W h_{t-1}.
  params = {"U": jnp.zeros((1, n)), "W": jnp.asarray(W.T, jnp.float32)}
  carry, xs = jnp.asarray(h0, jnp.float32)[None], jnp.zeros((1, steps, 1))
  h = np.asarray(jacobians.trajectory(cell.step, params, carry, xs)[0], np.float64)
  J = jacobians.step_jacobians(cell.step, params, carry, xs)
  spectral, _, _ = products.matrix_norms(products.jacobian_products(J, 0)[0])
  lyap = lyapunov.exponents(cell.step, params, carry, xs, warmup=min(20, steps // 4))
  return {"h": h, "h_norm": np.linalg.norm(h, axis=1), "jac_norm": np.asarray(spectral),
          "lyapunov": np.asarray(lyap.exponents[0])}


def slope(values: np.ndarray) -> float:
  """Least-squares slope of log(values) against t = 0, 1, ...: the per-step log growth."""
  t = np.arange(len(values))
  return float(np.polyfit(t, np.log(values), 1)[0])


def main(argv):
  del argv
  n, steps = (8, 20) if _QUICK.value else (_HIDDEN.value, _STEPS.value)
  rhos = [float(r) for r in _RHOS.value]
  key = jax.random.key(_SEED.value)
  k_o, k_s, k_h = jax.random.split(key, 3)
  h0 = np.asarray(jax.random.normal(k_h, (n,)), np.float64)
  h0 /= np.linalg.norm(h0)
  t = np.arange(steps + 1)
  fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharex=True)
  colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(rhos)))
  rows = []
  for rho, colour in zip(rhos, colours, strict=True):
    orth = measure(eigen.orthogonal_with_radius(k_o, n, rho), h0, steps)
    W_sym = eigen.symmetric_with_radius(k_s, n, rho, spread=0.8, gap=0.2)
    sym = measure(W_sym, h0, steps)
    eig = eigen.eigen_power_trajectory(W_sym, h0, steps)  # Q Lambda^t Q^T h_0
    cell_err = np.max(np.linalg.norm(sym["h"] - eig, axis=1) / np.linalg.norm(eig, axis=1))
    axes[0].semilogy(t, orth["h_norm"], color=colour, label=f"rho = {rho:g}")
    axes[1].semilogy(t, sym["h_norm"], color=colour)
    _, Q = eigen.eigendecomposition(W_sym)  # ||h_t|| -> |q_1^T h_0| rho^t
    axes[1].semilogy(t, abs(Q[:, 0] @ h0) * rho**t, color=colour, ls=":", lw=2.5, alpha=0.6)
    axes[2].semilogy(t, sym["jac_norm"], color=colour)
    axes[2].semilogy(t, orth["jac_norm"], color=colour, ls=":", lw=2.5, alpha=0.6)
    for ax in axes:
      ax.semilogy(t, rho**t, color="k", ls="--", lw=0.8)
    rows.append([rho, float(np.log(rho)), slope(orth["jac_norm"]), slope(sym["jac_norm"]),
                 float(orth["h_norm"][-1]), float(rho**steps), float(orth["lyapunov"][0]),
                 float(sym["lyapunov"][0]),
                 float(cell_err), eigen.linear_regime_error(W_sym, h0, steps)])
  axes[0].set_title("||h_t||, W = rho * orthogonal")
  axes[1].set_title("||h_t||, W symmetric (dotted: |q_1 . h_0| rho^t)")
  axes[2].set_title("||dh_t/dh_0||_2 (solid: sym., dotted: orth.)")
  for ax in axes:
    ax.set_xlabel("t")
    ax.grid(alpha=0.3, which="both")
  axes[0].plot([], [], "k--", lw=0.8, label="rho^t")
  axes[0].legend(fontsize=8)
  fig.suptitle(f"Linear RNN h_t = W h_(t-1), n = {n}: every curve follows rho^t (dashed)")
  fig.tight_layout()
  report.save_figure(fig, _OUTPUT_DIR.value, "study1_linear_rnn.png")
  headers = ["rho", "log rho", "slope log||dh_t/dh_0|| (orthogonal)",
             "slope log||dh_t/dh_0|| (symmetric)", f"||h_T||/||h_0|| (orth., T={steps})",
             "rho^T", "Lyapunov lambda_1 (orth.)", "Lyapunov lambda_1 (sym.)",
             "max rel. err. cell h_t vs Q Lambda^t Q^T h_0 (float32)",
             "same, W^t h_0 in float64"]
  table = report.markdown_table(headers, rows, digits=6)
  text = (f"# Study 1: linear RNN, n = {n}, T = {steps}\n\n{table}\n"
          "Slopes are least-squares fits of log ||dh_t/dh_0||_2 against t = 0..T.\n")
  report.write_text(_OUTPUT_DIR.value, "study1_linear_rnn.md", text)
  print(table)


if __name__ == "__main__":
  app.run(main)
