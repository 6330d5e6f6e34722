"""A small demo of the pure cells: train a recurrent net on the copy task, print the loss.

    python -m seqlab.demo --config=configs/demo.py

The copy task (Hochreiter & Schmidhuber 1997, layout of Arjovsky et al. 2016): n
symbols, a delay of T blanks, a delimiter, then n blanks during which the net must
output the n symbols. A net without memory can do no better than guessing the
symbols: cross-entropy n log(A) / (T + 2n) per step, the memoryless baseline.
"""

import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app
from ml_collections import config_flags

from seqlab import cells, unroll

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", lock_config=True)


def copy_batch(key: jax.Array, batch: int, alphabet: int, n: int, delay: int):
  """Inputs [B, T+2n] (0 blank, 1..A symbols, A+1 delimiter) and targets (0 blank, 1..A)."""
  symbols = jax.random.randint(key, (batch, n), 1, alphabet + 1)
  blanks = jnp.zeros((batch, delay - 1), jnp.int32)
  delimiter = jnp.full((batch, 1), alphabet + 1)
  inputs = jnp.concatenate([symbols, blanks, delimiter, jnp.zeros((batch, n), jnp.int32)], 1)
  targets = jnp.concatenate([jnp.zeros((batch, n + delay), jnp.int32), symbols], 1)
  return inputs, targets


def memoryless_baseline(alphabet: int, n: int, delay: int) -> float:
  """Cross-entropy per step of the best net without memory: n log(A) / (T + 2n)."""
  return n * np.log(alphabet) / (delay + 2 * n)


def init_model(key, cell: cells.Cell, num_inputs: int, hidden: int, num_outputs: int) -> dict:
  """Cell params plus the output layer o_t = c + V h_t."""
  k_cell, k_v = jax.random.split(key)
  return {
      "cell": cell.init(k_cell, num_inputs, hidden),
      "V": jax.random.normal(k_v, (hidden, num_outputs)) / np.sqrt(hidden),
      "c": jnp.zeros((num_outputs,)),
  }


def loss_fn(params, cell: cells.Cell, inputs, targets, num_inputs: int):
  """Mean cross-entropy of softmax(c + V h_t) against the targets, over all steps."""
  xs = jax.nn.one_hot(inputs, num_inputs)
  h0 = cell.initial_carry(params["cell"], (inputs.shape[0],))
  _, hs = unroll.scan(cell.step, params["cell"], h0, xs)
  logits = hs @ params["V"] + params["c"]
  return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


def main(argv):
  del argv
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # no TPU-probe notice
  config = _CONFIG.value
  task, tr = config.task, config.train
  cell = cells.make(config.cell.name, **config.cell.options.to_dict())
  num_inputs, num_outputs = task.alphabet_size + 2, task.alphabet_size + 1
  key_init, key_data = jax.random.split(jax.random.key(config.seed))
  params = init_model(key_init, cell, num_inputs, config.cell.hidden_size, num_outputs)
  optimizer = optax.adam(tr.learning_rate)
  opt_state = optimizer.init(params)

  @jax.jit
  def train_step(params, opt_state, key):
    inputs, targets = copy_batch(
        key, tr.batch_size, task.alphabet_size, task.num_symbols, task.delay
    )
    loss, grads = jax.value_and_grad(loss_fn)(params, cell, inputs, targets, num_inputs)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  baseline = memoryless_baseline(task.alphabet_size, task.num_symbols, task.delay)
  print(f"copy task: {task.num_symbols} symbols of {task.alphabet_size}, delay {task.delay}; "
        f"cell {cell.name} H={config.cell.hidden_size}; memoryless baseline {baseline:.3f} nats")
  start = time.perf_counter()
  for step, key in enumerate(jax.random.split(key_data, tr.num_steps), start=1):
    params, opt_state, loss = train_step(params, opt_state, key)
    if step == 1:
      first_loss = float(loss)
    if step == 1 or step % tr.log_every == 0:
      loss = float(loss)
      elapsed = time.perf_counter() - start
      print(f"step {step:5d}  loss {loss:.4f}  ({loss / baseline:.2f} x baseline)  "
            f"{elapsed:6.1f}s")
  print(f"loss fell from {first_loss:.3f} to {float(loss):.3f} nats per step "
        f"(memoryless baseline {baseline:.3f})")


if __name__ == "__main__":
  app.run(main)
