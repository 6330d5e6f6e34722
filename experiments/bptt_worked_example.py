"""The notes' worked BPTT example (lecture 003), reproduced with seqlab's cells.

    python experiments/bptt_worked_example.py [--epochs=5]

A single logistic unit whose output recurs, y(t) = sigma(w x(t-1) + g y(t-1)), with
x(0) = 0.05, x(1) = 0.1, w = 0.3, g = 0.4, y(0) = 0, targets y_d(1) = 0.6, y_d(2) = 0.75,
learning rate 0.5 and E = 1/2 sum_t (y_d(t) - y(t))^2. Prints the forward pass, the
deltas of the notes' recursion, the weight update, and a few further epochs as a
markdown table. (The notes' own arithmetic gives w_new = 0.300307; the sum of their
terms is 0.30309, which is what this prints.)
"""

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from seqlab import cells, unroll

_EPOCHS = flags.DEFINE_integer("epochs", 5, "Gradient steps to show after the first.")

X = np.array([0.05, 0.1])  # x(0), x(1)
Y_D = np.array([0.6, 0.75])  # y_d(1), y_d(2)
ETA = 0.5


def forward(w, g):
  """y(1), y(2) and E: a Jordan cell with one logistic unit and V = 1, c = 0."""
  cell = cells.make("jordan", output_size=1, activation="sigmoid")
  params = {"U": jnp.reshape(w, (1, 1)), "W": jnp.reshape(g, (1, 1)), "b": jnp.zeros(1),
            "V": jnp.ones((1, 1)), "c": jnp.zeros(1)}
  xs = jnp.asarray(X).reshape(1, 2, 1)
  _, ys = unroll.scan(cell.step, params, cell.initial_carry(params, (1,)), xs)
  ys = ys[0, :, 0]
  return 0.5 * jnp.sum((Y_D - ys) ** 2), ys


def main(argv):
  del argv
  jax.config.update("jax_enable_x64", True)
  w, g = 0.3, 0.4
  (error, ys), (dw, dg) = jax.value_and_grad(forward, argnums=(0, 1), has_aux=True)(w, g)
  y1, y2 = np.asarray(ys)
  delta2 = y2 * (1 - y2) * (Y_D[1] - y2)
  delta1 = y1 * (1 - y1) * ((Y_D[0] - y1) + g * delta2)
  print(f"forward:  y(1) = {y1:.4f}, y(2) = {y2:.4f}, E = {float(error):.5f}")
  print(f"backward: delta_2 = {delta2:.4f}, delta_1 = {delta1:.4f}")
  print(f"update:   w_new = {w - ETA * float(dw):.5f}, g_new = {g - ETA * float(dg):.4f}")
  print("          (BPTT by jax.grad; the notes' delta recursion gives the same Delta w, Delta g:"
        f" {ETA * (delta2 * X[1] + delta1 * X[0]):.6f}, {ETA * delta2 * y1:.6f})\n")
  print("| epoch | w | g | E |\n|---|---|---|---|")
  grad = jax.jit(jax.value_and_grad(lambda w, g: forward(w, g)[0], argnums=(0, 1)))
  for epoch in range(_EPOCHS.value + 1):
    error, (dw, dg) = grad(w, g)
    print(f"| {epoch} | {w:.5f} | {g:.5f} | {float(error):.6f} |")
    w, g = w - ETA * float(dw), g - ETA * float(dg)


if __name__ == "__main__":
  app.run(main)
