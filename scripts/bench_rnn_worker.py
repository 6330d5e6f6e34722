"""One benchmark process of `bench_rnn.py`: times one framework's recurrent layers.

    python scripts/bench_rnn_worker.py '{"framework": "jax", "case": {...}, ...}'

prints one JSON list of records {impl, cell, pass_, times (s per call), compile_s}. JAX and
PyTorch never share a process (their thread pools slow each other on few cores).

JAX rows: "seqlab (oneDNN)" is `unroll.scan`'s default (backend="auto") where it picks
oneDNN, "seqlab scan" the `jax.lax.scan` backend with its default gradient schedule (what
seqlab ran before oneDNN; where auto picks the scan too, the one row "seqlab scan
(default)"), "seqlab plain scan" (fused=False; elman float32 only, where the scan's default
is the fused path) and "seqlab fused" (fused=True; gru), flax's OptimizedLSTMCell, and
cuDNN on a GPU. A population case (kind "population") times only the training step: JAX
vmaps it over a leading member axis of params, carry and inputs in one jitted program,
PyTorch steps `members` separate modules one after another.
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


def _seqlab_layers(case: dict, cell) -> dict[str, Callable]:
  """label -> (params, carry, xs) -> (carry, ys): seqlab's backends for one cell, each row
  labelled by what actually runs it."""
  import jax
  import jax.numpy as jnp

  from seqlab import unroll

  scan = lambda **kw: lambda p, h, xs: unroll.scan(cell.step, p, h, xs, **kw)
  # What backend="auto" takes depends on the machine (oneDNN on CPU where it builds, the
  # scan elsewhere): ask it on this case's shapes, so that the table says what was timed.
  # Shapes are all it reads, and eval_shape computes nothing. One member's shapes: under a
  # population's vmap each call sees one member.
  member = dict(case, kind="seq")
  params, carry = jax.eval_shape(lambda: _jax_inputs(member, cell.init, cell.initial_carry)[:2])
  xs = jax.ShapeDtypeStruct((case["B"], case["T"], case["I"]), jnp.dtype(case["dtype"]))
  auto, _ = unroll.choose(cell.step, params, carry, xs)
  if auto == "onednn":
    layers = {"seqlab (oneDNN)": scan(), "seqlab scan": scan(backend="scan")}
  else:  # auto runs the very scan backend="scan" runs: one row, not two
    layers = {"seqlab scan (default)": scan()}
  # The scan's default (fused=None) is the whole-sequence fused path for elman in float32
  # only (fused.AUTOMATIC; bfloat16 runs plain): elsewhere fused=False would time it again.
  if cell.name == "elman" and case["dtype"] != "bfloat16":
    layers["seqlab plain scan"] = scan(fused=False)
  if cell.name == "gru":  # its scan default is the plain scan: keep the fast path measured
    layers["seqlab fused"] = scan(fused=True)
  return layers


def _jax_layers(case: dict, cell_name: str) -> dict[str, tuple[Callable, Callable, Callable]]:
  """name -> (layer, init, initial_carry): the JAX implementations of one cell."""
  import flax.linen as nn

  from seqlab import cells
  from seqlab.cells import lstm

  cell = cells.make(cell_name, **({"variant": "torch"} if cell_name == "gru" else {}))
  specs = {name: (layer, cell.init, cell.initial_carry)
           for name, layer in _seqlab_layers(case, cell).items()}
  if cell_name == "lstm":
    flax_rnn = nn.RNN(nn.OptimizedLSTMCell(case["H"], dtype=None, param_dtype=None))
    specs["flax OptimizedLSTMCell"] = (
        lambda p, h, xs: flax_rnn.apply(p, xs, initial_carry=h, return_carry=True),
        lambda key, I, H: flax_rnn.init(key, _zeros(case, I)),
        lambda p, batch: (_zeros(case, case["H"], batch[0]), _zeros(case, case["H"], batch[0])))
    if case["gpu"] and case["kind"] != "population":  # cudnn.lstm does not vmap
      from seqlab.unroll import cudnn
      specs["seqlab cuDNN"] = (lambda p, h, xs: cudnn.lstm(p, h, xs), cell.init,
                               lstm.initial_carry)
  return specs


def _zeros(case, size, batch=None):
  import jax.numpy as jnp
  return jnp.zeros((batch or case["B"], case["T"], size) if batch is None else (batch, size),
                   case["dtype"])


def _jax_inputs(case: dict, init: Callable, initial_carry: Callable):
  """(params, carry, xs) in the case's dtype; for a population, each member its own params
  and inputs on a leading member axis. Called eagerly: jitting it compiled the orthogonal
  initializer afresh for every row (2-4 s each), while eager rows after the first reuse
  the cached per-op executables."""
  import jax

  dtype, B, T, I, H = case["dtype"], case["B"], case["T"], case["I"], case["H"]
  cast = lambda t: jax.tree.map(lambda a: a.astype(dtype), t)
  if case["kind"] != "population":
    params = cast(init(jax.random.key(0), I, H))
    return params, cast(initial_carry(params, (B,))), jax.random.normal(
        jax.random.key(1), (B, T, I), dtype)
  M = case["members"]
  params = cast(jax.vmap(lambda k: init(k, I, H))(jax.random.split(jax.random.key(0), M)))
  carry = cast(jax.vmap(lambda p: initial_carry(p, (B,)))(params))
  return params, carry, jax.random.normal(jax.random.key(1), (M, B, T, I), dtype)


def jax_records(case: dict, cell_names: list[str], repeats: int, warmup: int) -> list[dict]:
  jobs = [(c, name, spec) for c in cell_names for name, spec in _jax_layers(case, c).items()]
  random.shuffle(jobs)
  records = []
  for cell_name, name, (layer, init, initial_carry) in jobs:
    params, carry, xs = _jax_inputs(case, init, initial_carry)
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


def _train_step(layer: Callable) -> Callable:
  """(params, carry, xs) -> (params after one SGD step on mean(y^2), the loss)."""
  import jax
  import jax.numpy as jnp

  def loss(p, h, xs):
    _, ys = layer(p, h, xs)
    return jnp.mean(jnp.square(ys.astype(jnp.float32)))

  def train(p, h, xs):
    value, grads = jax.value_and_grad(loss)(p, h, xs)
    return jax.tree.map(lambda w, g: w - (1e-3 * g).astype(w.dtype), p, grads), value

  return train


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

  train = _train_step(layer)
  if case["kind"] == "population":  # every member's step in one program: the training pass only
    step, compile_s = _compile(jax.jit(jax.vmap(train), donate_argnums=0), params, carry, xs)
    state = {"p": jax.tree.map(jnp.copy, params)}

    def call_population():
      state["p"], values = step(state["p"], carry, xs)
      return values

    return [("train", _time(call_population, jax.block_until_ready, repeats, warmup), compile_s)]

  forward, compile_fwd = _compile(lambda p: layer(p, carry, xs), params)
  # carry and xs stay closed over, as in the forward pass: only the params are arguments
  train_step, compile_train = _compile(jax.jit(lambda p: train(p, carry, xs),
                                               donate_argnums=0), params)
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
  name = f"PyTorch nn.* ({'cuDNN' if device == 'cuda' else 'CPU'})"
  if case["kind"] == "population":
    name += f", {case['members']} modules in a loop"
  records = []
  for cell_name in random.sample(cell_names, len(cell_names)):
    for pass_, fn, scale in _torch_cell_passes(case, cell_name, device, dtype):
      times = _time(fn, sync, repeats * scale, warmup * scale)
      records.append(dict(impl=name, cell=cell_name, pass_=pass_, times=times, compile_s=0.0))
  return records


def _torch_cell_passes(case, cell_name, device, dtype):
  """(pass, call, repeat scale) for one cell: a module (one per member) and its inputs."""
  import torch

  def module():
    layer = getattr(torch.nn, TORCH_MODULES[cell_name])(case["I"], case["H"], batch_first=True)
    return layer.to(device=device, dtype=dtype)

  data = lambda: torch.randn(case["B"], case["T"], case["I"], device=device, dtype=dtype)
  if case["kind"] == "population":
    return _torch_population([_torch_train(module(), data()) for _ in range(case["members"])])
  return _torch_passes(case, module(), data())


def _torch_train(module, xs) -> Callable:
  """One training step of `module` on xs: mean(y^2), backward, SGD."""
  import torch

  optimizer = torch.optim.SGD(module.parameters(), lr=1e-3)

  def train():
    optimizer.zero_grad(set_to_none=True)
    ys, _ = module(xs)
    loss = ys.float().square().mean()
    loss.backward()
    optimizer.step()
    return loss

  return train


def _torch_population(steps: list[Callable]):
  """The training pass of separate modules stepped one after another: what a PyTorch user
  without vmap writes for a population."""

  def train_all():
    for step in steps:
      loss = step()
    return loss

  return [("train", train_all, 1)]


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

  def fwd():
    with torch.no_grad():
      return module(xs)

  return [("fwd", fwd, 1), ("train", _torch_train(module, xs), 1)]


def main(spec: dict) -> None:
  random.seed(spec["seed"])
  run = jax_records if spec["framework"] == "jax" else torch_records
  records = run(spec["case"], spec["cells"], spec["repeats"], spec["warmup"])
  print(json.dumps(records))


if __name__ == "__main__":
  main(json.loads(sys.argv[1]))
