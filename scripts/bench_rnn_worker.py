"""One benchmark process of `bench_rnn.py`: times one framework's recurrent layers.

    python scripts/bench_rnn_worker.py '{"framework": "jax", "case": {...}, ...}'

prints one JSON list of records {impl, cell, pass, times (s per call), compile_s}. JAX and
PyTorch never share a process (their thread pools slow each other on few cores).
"""

import json
import random
import sys
import time
from collections.abc import Callable

TORCH_MODULES = {"lstm": "LSTM", "gru": "GRU", "elman": "RNN"}


def _time(fn: Callable[[], object], sync: Callable[[object], object], repeats: int,
          warmup: int) -> list[float]:
  """Seconds per call of fn(), after `warmup` untimed calls."""
  for _ in range(warmup):
    sync(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    sync(fn())
    times.append(time.perf_counter() - start)
  return times


# ----------------------------------------------------------------------------- JAX


def _jax_layers(case: dict, cell_name: str) -> dict[str, Callable]:
  """name -> (params, carry, xs) -> (carry, ys): the JAX implementations of one cell."""
  import flax.linen as nn

  from seqlab import cells, unroll
  from seqlab.cells import lstm

  cell = cells.make(cell_name, **({"variant": "torch"} if cell_name == "gru" else {}))
  layers = {
      "seqlab": lambda p, h, xs: unroll.scan(cell.step, p, h, xs),
      "seqlab plain scan": lambda p, h, xs: unroll.scan(cell.step, p, h, xs, fused=False),
  }
  if cell_name == "gru":  # its default is the plain scan: keep the fast path measured
    layers["seqlab fused"] = lambda p, h, xs: unroll.scan(cell.step, p, h, xs, fused=True)
  inits = {name: cell.init for name in layers}
  carries = {name: cell.initial_carry for name in layers}
  if cell_name == "lstm":
    flax_rnn = nn.RNN(nn.OptimizedLSTMCell(case["H"], dtype=None, param_dtype=None))
    layers["flax OptimizedLSTMCell"] = lambda p, h, xs: flax_rnn.apply(
        p, xs, initial_carry=h, return_carry=True)
    inits["flax OptimizedLSTMCell"] = lambda key, I, H: flax_rnn.init(key, _zeros(case, I))
    carries["flax OptimizedLSTMCell"] = lambda p, batch: (
        _zeros(case, case["H"], batch[0]), _zeros(case, case["H"], batch[0]))
    if case["gpu"]:
      from seqlab.unroll import cudnn
      layers["seqlab cuDNN"] = lambda p, h, xs: cudnn.lstm(p, h, xs)
      inits["seqlab cuDNN"] = cell.init
      carries["seqlab cuDNN"] = lstm.initial_carry
  return {name: (layers[name], inits[name], carries[name]) for name in layers}


def _zeros(case, size, batch=None):
  import jax.numpy as jnp
  return jnp.zeros((batch or case["B"], case["T"], size) if batch is None else (batch, size),
                   case["dtype"])


def jax_records(case: dict, cell_names: list[str], repeats: int, warmup: int) -> list[dict]:
  import jax
  import jax.numpy as jnp

  dtype = jnp.dtype(case["dtype"])
  B, T, I = case["B"], case["T"], case["I"]
  jobs = [(c, name, spec) for c in cell_names for name, spec in _jax_layers(case, c).items()]
  random.shuffle(jobs)
  records = []
  for cell_name, name, (layer, init, initial_carry) in jobs:
    cast = lambda t: jax.tree.map(lambda a: a.astype(dtype), t)
    params = cast(init(jax.random.key(0), I, case["H"]))
    carry = cast(initial_carry(params, (B,)))
    xs = jax.random.normal(jax.random.key(1), (B, T, I), dtype)
    for pass_, times, compile_s in _jax_passes(case, layer, params, carry, xs, repeats, warmup):
      records.append(dict(impl=name, cell=cell_name, pass_=pass_, times=times,
                          compile_s=compile_s))
  return records


def _compile(fn, *args):
  """jit(fn) compiled for args, and the seconds compiling took."""
  import jax
  start = time.perf_counter()
  jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
  compiled = jitted.lower(*args).compile()
  return compiled, time.perf_counter() - start


def _jax_passes(case, layer, params, carry, xs, repeats, warmup):
  """(pass, call times, compile seconds) for the forward pass and the training step."""
  import jax
  import jax.numpy as jnp

  if case["kind"] == "step":  # batch-1 latency: one step per call, the carry fed back
    x = xs[:, 0]  # sliced once: slicing per call would time an extra dispatched op
    compiled, compile_s = _compile(lambda p, h, x: layer(p, h, x[:, None]), params, carry, x)
    state = {"h": carry}

    def one_step():
      state["h"], y = compiled(params, state["h"], x)
      return y

    return [("fwd", _time(one_step, jax.block_until_ready, repeats * 20, warmup * 20), compile_s)]

  def loss(p):
    _, ys = layer(p, carry, xs)
    return jnp.mean(jnp.square(ys.astype(jnp.float32)))

  def train(p):
    value, grads = jax.value_and_grad(loss)(p)
    return jax.tree.map(lambda w, g: w - (1e-3 * g).astype(w.dtype), p, grads), value

  forward, compile_fwd = _compile(lambda p: layer(p, carry, xs), params)
  train_step, compile_train = _compile(jax.jit(train, donate_argnums=0), params)
  state = {"p": jax.tree.map(jnp.copy, params)}

  def call_train():
    state["p"], value = train_step(state["p"])
    return value

  return [("fwd", _time(lambda: forward(params), jax.block_until_ready, repeats, warmup),
           compile_fwd),
          ("train", _time(call_train, jax.block_until_ready, repeats, warmup), compile_train)]


# ----------------------------------------------------------------------------- PyTorch


def torch_records(case: dict, cell_names: list[str], repeats: int, warmup: int) -> list[dict]:
  import torch

  device = "cuda" if case["gpu"] and torch.cuda.is_available() else "cpu"
  dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[case["dtype"]]
  sync = (lambda out: torch.cuda.synchronize()) if device == "cuda" else (lambda out: None)
  torch.manual_seed(0)
  B, T, I = case["B"], case["T"], case["I"]
  name = f"PyTorch nn.* ({'cuDNN' if device == 'cuda' else 'CPU'})"
  records = []
  for cell_name in random.sample(cell_names, len(cell_names)):
    module = getattr(torch.nn, TORCH_MODULES[cell_name])(I, case["H"], batch_first=True)
    module = module.to(device=device, dtype=dtype)
    xs = torch.randn(B, T, I, device=device, dtype=dtype)
    for pass_, fn, scale in _torch_passes(case, module, xs):
      times = _time(fn, sync, repeats * scale, warmup * scale)
      records.append(dict(impl=name, cell=cell_name, pass_=pass_, times=times, compile_s=0.0))
  return records


def _torch_passes(case, module, xs):
  """(pass, call, repeat scale) for the forward pass and the training step."""
  import torch

  if case["kind"] == "step":  # batch-1 latency: one step per call, the carry fed back
    state, x = {"h": None}, xs[:, :1]  # sliced once, as on the JAX side

    def one_step():
      with torch.no_grad():
        y, state["h"] = module(x, state["h"])
      return y

    return [("fwd", one_step, 20)]
  optimizer = torch.optim.SGD(module.parameters(), lr=1e-3)

  def fwd():
    with torch.no_grad():
      return module(xs)

  def train():
    optimizer.zero_grad(set_to_none=True)
    ys, _ = module(xs)
    loss = ys.float().square().mean()
    loss.backward()
    optimizer.step()
    return loss

  return [("fwd", fwd, 1), ("train", train, 1)]


def main(spec: dict) -> None:
  random.seed(spec["seed"])
  run = jax_records if spec["framework"] == "jax" else torch_records
  records = run(spec["case"], spec["cells"], spec["repeats"], spec["warmup"])
  print(json.dumps(records))


if __name__ == "__main__":
  main(json.loads(sys.argv[1]))
