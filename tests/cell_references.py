"""Independent float64 numpy references of the cells, written from the papers' equations."""

import numpy as np


def np_sigmoid(a):
  """sigma(a) = 1 / (1 + e^-a)."""
  return 1.0 / (1.0 + np.exp(-a))


def np_softmax(a):
  """softmax over the last axis."""
  e = np.exp(a - a.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


NP_ACT = {
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0),
    "leaky_relu": lambda a: np.where(a >= 0, a, 0.01 * a),
    "elu": lambda a: np.where(a > 0, a, np.exp(np.minimum(a, 0.0)) - 1.0),
    "sigmoid": np_sigmoid,
    "identity": lambda a: a,
    "softmax": np_softmax,
}


def np_ln(a, gain, bias=0.0, eps=1e-5):
  """Ba et al. layer norm over the last axis: gain * (a - mu) / sqrt(var + eps) + bias."""
  mu = a.mean(-1, keepdims=True)
  var = ((a - mu) ** 2).mean(-1, keepdims=True)
  return gain * (a - mu) / np.sqrt(var + eps) + bias


def col(m, k, size):
  """Columns k*size:(k+1)*size of a fused matrix (or vector): gate block k."""
  return m[..., k * size : (k + 1) * size]


def np_elman(p, h, x, activation):
  """h_t = f(x U + h W + b)."""
  return NP_ACT[activation](x @ p["U"] + h @ p["W"] + p.get("b", 0.0))


def np_leaky(p, h, x, a, activation="tanh"):
  """h_t = (1 - a) h_{t-1} + a f(x U + h W + b)."""
  return (1.0 - a) * h + a * NP_ACT[activation](x @ p["U"] + h @ p["W"] + p["b"])


def np_jordan(p, y_prev, x, activation, output_activation):
  """h_t = f(x U + y_{t-1} W + b);  y_t = g(h_t V + c)."""
  h = NP_ACT[activation](x @ p["U"] + y_prev @ p["W"] + p["b"])
  return NP_ACT[output_activation](h @ p["V"] + p["c"])


def np_lstm(p, h, c, x, *, peephole=False, coupled=False, layer_norm=False):
  """LSTM (Hochreiter & Schmidhuber), Gers peepholes, Greff CIFG, Ba et al. LN-LSTM."""
  size = h.shape[-1]
  names = "igo" if coupled else "ifgo"
  pre = {}
  for k, name in enumerate(names):
    xu = x @ col(p["U"], k, size)
    hw = h @ col(p["W"], k, size)
    if layer_norm:  # LN(x U_k) + LN(h W_k), one gain row per gate
      xu, hw = np_ln(xu, p["ln_x"][k]), np_ln(hw, p["ln_h"][k])
    pre[name] = xu + hw + col(p["b"], k, size)
  if peephole:  # i, f see c_{t-1}
    pre["i"] = pre["i"] + p["p_i"] * c
    if not coupled:
      pre["f"] = pre["f"] + p["p_f"] * c
  i = np_sigmoid(pre["i"])
  f = 1.0 - i if coupled else np_sigmoid(pre["f"])  # CIFG: f = 1 - i
  g = np.tanh(pre["g"])
  c_new = f * c + i * g  # c_t = f c_{t-1} + i g
  a_o = pre["o"] + (p["p_o"] * c_new if peephole else 0.0)  # o sees c_t
  o = np_sigmoid(a_o)
  c_out = np_ln(c_new, p["ln_c_gain"], p["ln_c_bias"]) if layer_norm else c_new
  return o * np.tanh(c_out), c_new  # h_t = o tanh([LN] c_t)


def np_gru(p, h, x, *, variant="cho", layer_norm=False):
  """GRU of Cho et al. 2014 (reset before W_n) or torch.nn.GRU (reset after, with b_hn)."""
  size = h.shape[-1]

  def ln(a, which, k):
    return np_ln(a, p[which][k]) if layer_norm else a

  xr, xz, xn = (ln(x @ col(p["U"], k, size), "ln_x", k) + col(p["b"], k, size) for k in range(3))
  r = np_sigmoid(xr + ln(h @ col(p["W"], 0, size), "ln_h", 0))
  z = np_sigmoid(xz + ln(h @ col(p["W"], 1, size), "ln_h", 1))
  if variant == "cho":  # n = tanh(x U_n + b_n + (r * h) W_n)
    n = np.tanh(xn + ln((r * h) @ col(p["W"], 2, size), "ln_h", 2))
  else:  # n = tanh(x U_n + b_n + r * (h W_n + b_hn))
    n = np.tanh(xn + r * (ln(h @ col(p["W"], 2, size), "ln_h", 2) + p["b_hn"]))
  return (1.0 - z) * n + z * h  # h_t = (1 - z) n + z h_{t-1}
