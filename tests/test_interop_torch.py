"""seqlab.interop.torch: imported torch weights give torch's outputs, by a numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells, unroll
from seqlab.interop import torch as interop

B, T, I, H = 3, 7, 4, 5
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def sigmoid(a):
  return 1.0 / (1.0 + np.exp(-a))


def random_state_dict(mode, num_layers=2, bidirectional=True, bias=True, seed=0):
  """A torch-style state dict, U(-1/sqrt(H), 1/sqrt(H)) like torch's default init."""
  rng = np.random.default_rng(seed)
  k = 1.0 / np.sqrt(H)
  G = GATES[mode]
  sd = {}
  for layer in range(num_layers):
    in_size = I if layer == 0 else H * (2 if bidirectional else 1)
    for suffix in ("", "_reverse") if bidirectional else ("",):
      shapes = {"weight_ih": (G * H, in_size), "weight_hh": (G * H, H)}
      if bias:
        shapes |= {"bias_ih": (G * H,), "bias_hh": (G * H,)}
      for name, shape in shapes.items():
        sd[f"{name}_l{layer}{suffix}"] = rng.uniform(-k, k, shape).astype(np.float32)
  return sd


def torch_cell(mode, w, h, c, x, nonlinearity="tanh"):
  """One step in torch's column-vector layout (torch.nn.LSTM / GRU / RNN docs), float64.

  h, c, x are columns [H, B], [H, B], [I, B]; w holds the torch-layout tensors.
  """
  w_ih, w_hh = w["weight_ih"], w["weight_hh"]
  b_ih = w.get("bias_ih", np.zeros(w_ih.shape[0]))[:, None]
  b_hh = w.get("bias_hh", np.zeros(w_hh.shape[0]))[:, None]
  if mode == "lstm":
    W_ii, W_if, W_ig, W_io = np.split(w_ih, 4)
    W_hi, W_hf, W_hg, W_ho = np.split(w_hh, 4)
    b_ii, b_if, b_ig, b_io = np.split(b_ih, 4)
    b_hi, b_hf, b_hg, b_ho = np.split(b_hh, 4)
    i = sigmoid(W_ii @ x + b_ii + W_hi @ h + b_hi)
    f = sigmoid(W_if @ x + b_if + W_hf @ h + b_hf)
    g = np.tanh(W_ig @ x + b_ig + W_hg @ h + b_hg)
    o = sigmoid(W_io @ x + b_io + W_ho @ h + b_ho)
    c = f * c + i * g
    return o * np.tanh(c), c
  if mode == "gru":
    W_ir, W_iz, W_in = np.split(w_ih, 3)
    W_hr, W_hz, W_hn = np.split(w_hh, 3)
    b_ir, b_iz, b_in = np.split(b_ih, 3)
    b_hr, b_hz, b_hn = np.split(b_hh, 3)
    r = sigmoid(W_ir @ x + b_ir + W_hr @ h + b_hr)
    z = sigmoid(W_iz @ x + b_iz + W_hz @ h + b_hz)
    n = np.tanh(W_in @ x + b_in + r * (W_hn @ h + b_hn))
    return (1 - z) * n + z * h, c
  act = np.tanh if nonlinearity == "tanh" else (lambda a: np.maximum(a, 0.0))
  return act(w_ih @ x + b_ih + w_hh @ h + b_hh), c


def torch_reference(mode, sd, xs, num_layers, bidirectional, nonlinearity="tanh"):
  """A batch_first torch RNN module's forward: output [B, T, D*H], h_n and c_n [L*D, B, H]."""
  sd = {k: v.astype(np.float64) for k, v in sd.items()}
  inputs, h_n, c_n = xs.astype(np.float64), [], []
  for layer in range(num_layers):
    outs = []
    for suffix in ("", "_reverse") if bidirectional else ("",):
      w = {k.removesuffix(f"_l{layer}{suffix}"): v for k, v in sd.items()
           if k.endswith(f"_l{layer}{suffix}")}
      h = c = np.zeros((H, xs.shape[0]))
      ys = [None] * xs.shape[1]
      times = range(xs.shape[1])
      for t in reversed(times) if suffix else times:
        h, c = torch_cell(mode, w, h, c, inputs[:, t].T, nonlinearity)
        ys[t] = h.T
      outs.append(np.stack(ys, axis=1))
      h_n.append(h.T)
      c_n.append(c.T)
    inputs = np.concatenate(outs, axis=-1)
  return inputs, np.stack(h_n), np.stack(c_n)


def seqlab_forward(mode, sd, xs, num_layers, bidirectional, nonlinearity="tanh"):
  """The same stack from imported params and seqlab cells run by `unroll.scan`."""
  if mode == "lstm":
    cell, convert = cells.make("lstm"), interop.lstm_params
  elif mode == "gru":
    cell, convert = cells.make("gru", variant="torch"), interop.gru_params
  else:
    cell, convert = cells.make("elman", activation=nonlinearity), interop.elman_params
  inputs, h_n, c_n = jnp.asarray(xs), [], []
  for layer in range(num_layers):
    outs = []
    for reverse in (False, True) if bidirectional else (False,):
      params = convert(sd, layer, reverse)
      carry = cell.initial_carry(params, (xs.shape[0],))
      carry, ys = unroll.scan(cell.step, params, carry, inputs, reverse=reverse)
      outs.append(ys)
      h_n.append(carry.h if mode == "lstm" else carry)
      c_n.append(carry.c if mode == "lstm" else jnp.zeros_like(carry))
    inputs = jnp.concatenate(outs, axis=-1)
  return inputs, jnp.stack(h_n), jnp.stack(c_n)


@pytest.fixture(scope="module")
def xs():
  return np.random.default_rng(42).normal(size=(B, T, I)).astype(np.float32)


MODULES = (  # mode, num_layers, bidirectional, bias, nonlinearity
    ("lstm", 2, True, True, "tanh"),
    ("lstm", 1, False, False, "tanh"),
    ("gru", 2, True, True, "tanh"),
    ("gru", 1, False, False, "tanh"),
    ("rnn", 2, True, True, "tanh"),
    ("rnn", 2, True, True, "relu"),
    ("rnn", 1, False, False, "relu"),
)


@pytest.mark.parametrize("mode, num_layers, bidirectional, bias, nonlinearity", MODULES)
def test_matches_torch_equations(xs, mode, num_layers, bidirectional, bias, nonlinearity):
  sd = random_state_dict(mode, num_layers, bidirectional, bias, seed=num_layers)
  want = torch_reference(mode, sd, xs, num_layers, bidirectional, nonlinearity)
  # One jit over the whole stack compiles faster than its scans one by one.
  got = jax.jit(lambda x: seqlab_forward(mode, sd, x, num_layers, bidirectional, nonlinearity))(xs)
  for name, w, g in zip(("output", "h_n", "c_n"), want, got, strict=True):
    np.testing.assert_allclose(np.asarray(g), w, atol=1e-5, rtol=1e-5, err_msg=name)


@pytest.mark.parametrize(
    "mode, family, options",
    [("lstm", "lstm", {}), ("gru", "gru", {"variant": "torch"}), ("rnn", "elman", {})],
)
def test_params_have_the_cell_layout(mode, family, options):
  convert = {"lstm": interop.lstm_params, "gru": interop.gru_params, "rnn": interop.elman_params}
  got = convert[mode](random_state_dict(mode), layer=1, reverse=True)
  init = cells.make(family, **options).init
  want = jax.eval_shape(lambda key: init(key, 2 * H, H), jax.random.key(0))
  assert jax.tree.map(lambda a: (a.shape, a.dtype), got) == jax.tree.map(
      lambda a: (a.shape, a.dtype), want
  )


def test_bias_false():
  sd = random_state_dict("rnn", 1, False, bias=False)
  assert set(interop.elman_params(sd)) == {"U", "W"}
  lstm = interop.lstm_params(random_state_dict("lstm", 1, False, bias=False))
  gru = interop.gru_params(random_state_dict("gru", 1, False, bias=False))
  for b in (lstm["b"], gru["b"], gru["b_hn"]):
    np.testing.assert_array_equal(b, 0.0)


def test_gru_bias_split():
  sd = random_state_dict("gru", 1, False)
  p = interop.gru_params(sd)
  b_ih, b_hh = sd["bias_ih_l0"], sd["bias_hh_l0"]
  np.testing.assert_allclose(p["b"][: 2 * H], b_ih[: 2 * H] + b_hh[: 2 * H], rtol=1e-6)
  np.testing.assert_array_equal(p["b"][2 * H :], b_ih[2 * H :])
  np.testing.assert_array_equal(p["b_hn"], b_hh[2 * H :])


def test_dtype():
  sd = {k: v.astype(np.float64) for k, v in random_state_dict("lstm", 1, False).items()}
  assert {a.dtype for a in interop.lstm_params(sd).values()} == {jnp.dtype(jnp.float32)}
  p = interop.lstm_params(sd, dtype=jnp.bfloat16)
  assert {a.dtype for a in p.values()} == {jnp.dtype(jnp.bfloat16)}


def _without(sd, key):
  return {k: v for k, v in sd.items() if k != key}


def _with(sd, key, shape):
  return sd | {key: np.zeros(shape, np.float32)}


LSTM_SD = random_state_dict("lstm")  # 2 layers, bidirectional, H=5, I=4


@pytest.mark.parametrize(
    "sd, kwargs, error, match",
    [
        # missing keys: the message names the key and lists the layer's keys
        (_without(LSTM_SD, "weight_hh_l1"), {"layer": 1}, KeyError,
         r"'weight_hh_l1'.*present for layer 1: \['bias_hh_l1', 'bias_ih_l1', 'weight_ih_l1'\]"),
        (_without(LSTM_SD, "bias_hh_l0_reverse"), {"reverse": True}, KeyError,
         r"'bias_hh_l0_reverse'.*present for layer 0 reverse: \['bias_ih_l0_reverse'"),
        (LSTM_SD, {"layer": 2}, KeyError, r"'weight_ih_l2': no keys for layer 2; keys: \["),
        (random_state_dict("lstm", 1, False), {"reverse": True}, KeyError,
         r"'weight_ih_l0_reverse'"),
        # shapes: the message names the key, the shape found and the shape expected
        (_with(LSTM_SD, "weight_ih_l0", (18, 4)), {}, ValueError,
         r"weight_ih_l0 has shape \(18, 4\), expected \(20, I\)"),
        (_with(LSTM_SD, "weight_hh_l0", (20, 4)), {}, ValueError,
         r"weight_hh_l0 has shape \(20, 4\), expected \(16, 4\)"),
        (_with(LSTM_SD, "weight_hh_l0", (20,)), {}, ValueError,
         r"weight_hh_l0 has shape \(20,\), expected \(4\*H, H\)"),
        (_with(LSTM_SD, "bias_ih_l1_reverse", (15,)), {"layer": 1, "reverse": True},
         ValueError, r"bias_ih_l1_reverse has shape \(15,\), expected \(20\)"),
        (random_state_dict("gru"), {}, ValueError,  # a GRU's weights given to lstm_params
         r"weight_hh_l0 has shape \(15, 5\), expected \(20, 5\)"),
        # LSTM projections (proj_size > 0)
        (_with(LSTM_SD, "weight_hr_l0", (3, 5)), {}, ValueError,
         r"weight_hr_l0 found: LSTM projections \(proj_size > 0\) are not supported"),
    ],
)
def test_errors_name_the_culprit_key(sd, kwargs, error, match):
  with pytest.raises(error, match=match):
    interop.lstm_params(sd, **kwargs)


# ---- against real torch.nn (when torch is installed: pip install -e ".[bench]") ----


@pytest.mark.parametrize("mode, num_layers, bidirectional, bias, nonlinearity", MODULES)
def test_matches_real_torch_modules(xs, mode, num_layers, bidirectional, bias, nonlinearity):
  """torch.nn.LSTM / GRU / RNN (torch's own init, its state_dict) == seqlab on the import."""
  torch = pytest.importorskip(
      "torch", reason="torch is not installed; the bench extra installs it (torch==2.13.0)")
  torch.manual_seed(num_layers)
  kwargs = {"nonlinearity": nonlinearity} if mode == "rnn" else {}
  module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[mode](
      I, H, num_layers=num_layers, bias=bias, batch_first=True, bidirectional=bidirectional,
      **kwargs)
  with torch.no_grad():
    output, state = module(torch.from_numpy(xs))
  h_n, c_n = state if mode == "lstm" else (state, torch.zeros_like(state))
  sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
  got = jax.jit(lambda x: seqlab_forward(mode, sd, x, num_layers, bidirectional, nonlinearity))(xs)
  for name, w, g in zip(("output", "h_n", "c_n"), (output, h_n, c_n), got, strict=True):
    np.testing.assert_allclose(np.asarray(g), w.numpy(), atol=1e-5, rtol=1e-5, err_msg=name)
