"""Benchmark time series for sequence prediction, as pure numpy functions.

Mackey-Glass (Mackey & Glass 1977), chaotic for tau = 17:
    dx/dt = beta x(t - tau) / (1 + x(t - tau)^p) - gamma x(t),  beta=0.2, gamma=0.1, p=10
NARMA10 (Atiya & Parlos 2000), input u(t) ~ U[0, 0.5]:
    y(t+1) = 0.3 y(t) + 0.05 y(t) sum_{i=0}^{9} y(t-i) + 1.5 u(t-9) u(t) + 0.1
Sine mixture, K components:
    s(t) = sum_k a_k sin(2 pi f_k t + phi_k)
"""

import numpy as np


def mackey_glass_rhs(x: np.ndarray, x_tau: np.ndarray, beta=0.2, gamma=0.1, p=10.0) -> np.ndarray:
  """The Mackey-Glass derivative dx/dt given x(t) and the delayed x(t - tau)."""
  return beta * x_tau / (1.0 + x_tau**p) - gamma * x


def mackey_glass(
    num_samples: int,
    tau: float = 17.0,
    dt: float = 0.1,
    sample_every: int = 10,
    washout: int = 1000,
    x0: float = 1.2,
) -> np.ndarray:
  """x(t) at t = k * sample_every * dt after `washout` samples; RK4 with step dt.

  The history is x(t) = x0 for t <= 0. The delayed value at a half step is the mean of
  the two grid values around it (tau / dt must be a whole number of steps).
  """
  lag = round(tau / dt)
  if abs(lag * dt - tau) > 1e-9 or lag < 1:
    raise ValueError(f"tau / dt must be a positive whole number, got tau={tau}, dt={dt}")
  steps = (num_samples + washout) * sample_every
  x = np.empty(steps + lag + 1)
  x[: lag + 1] = x0  # x[lag] is t = 0
  for n in range(lag, lag + steps):
    d0, d1 = x[n - lag], x[n - lag + 1]
    dh = 0.5 * (d0 + d1)
    k1 = mackey_glass_rhs(x[n], d0)
    k2 = mackey_glass_rhs(x[n] + 0.5 * dt * k1, dh)
    k3 = mackey_glass_rhs(x[n] + 0.5 * dt * k2, dh)
    k4 = mackey_glass_rhs(x[n] + dt * k3, d1)
    x[n + 1] = x[n] + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
  return x[lag + washout * sample_every :: sample_every][:num_samples]


def narma10(u: np.ndarray) -> np.ndarray:
  """y(1..T) of NARMA10 driven by u(0..T-1), from y = 0 before t = 10."""
  u = np.asarray(u, np.float64)
  y = np.zeros(len(u) + 1)
  for t in range(9, len(u)):
    y[t + 1] = (0.3 * y[t] + 0.05 * y[t] * y[t - 9 : t + 1].sum()
                + 1.5 * u[t - 9] * u[t] + 0.1)
  if not np.all(np.isfinite(y)) or np.abs(y).max() > 1e3:
    raise ValueError("NARMA10 diverged for this input; draw another seed")
  return y[1:]


def sine_mixture(t: np.ndarray, amplitudes, frequencies, phases) -> np.ndarray:
  """s(t) = sum_k a_k sin(2 pi f_k t + phi_k)."""
  t = np.asarray(t, np.float64)[:, None]
  return (np.asarray(amplitudes) * np.sin(2 * np.pi * np.asarray(frequencies) * t
                                          + np.asarray(phases))).sum(-1)
