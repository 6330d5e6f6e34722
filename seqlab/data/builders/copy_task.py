"""The copy task: remember n symbols across a blank delay of T steps, then replay them.

Layout of Arjovsky, Shah & Bengio (2016), after Hochreiter & Schmidhuber (1997), over
L = T + 2n steps with ids 0 = blank, 1..A = symbols, A + 1 = delimiter:

    inputs  = s_1 .. s_n, 0 x (T - 1), A + 1, 0 x n
    targets = 0 x (n + T),             s_1 .. s_n

A model without memory can do no better than blanks where blanks are due and a
uniform guess over the symbols: cross-entropy n log(A) / (T + 2n) per step.
"""

import dataclasses
import math

import numpy as np
import tensorflow_datasets as tfds

from seqlab.data import builder


@dataclasses.dataclass
class CopyConfig(tfds.core.BuilderConfig):
  """Copy-task options: alphabet size A, n symbols, delay T, split sizes, seed."""

  alphabet_size: int = 8
  num_symbols: int = 10
  delay: int = 100
  num_train: int = 10_000
  num_validation: int = 1_000
  num_test: int = 1_000
  seed: int = 0


def copy_example(rng: np.random.Generator, alphabet: int, n: int, delay: int) -> dict:
  """One example: symbols drawn uniformly from 1..A, laid out as in the module docstring."""
  symbols = rng.integers(1, alphabet + 1, n).astype(np.int32)
  inputs = np.zeros(delay + 2 * n, np.int32)
  inputs[:n] = symbols
  inputs[n + delay - 1] = alphabet + 1
  targets = np.zeros(delay + 2 * n, np.int32)
  targets[n + delay:] = symbols
  return {"inputs": inputs, "targets": targets}


def memoryless_baseline(alphabet: int, n: int, delay: int) -> float:
  """Cross-entropy per step of the best model without memory: n log(A) / (T + 2n)."""
  return n * math.log(alphabet) / (delay + 2 * n)


class Copy(builder.Generated):
  """Copy task (Arjovsky et al. 2016 layout): replay n symbols after a delay of T blanks."""

  name = "copy"
  BUILDER_CONFIGS = [CopyConfig(name="default")]
  TIME_KEYS = {"inputs": "lengths", "targets": "lengths"}

  def features(self):
    return tfds.features.FeaturesDict({
        "inputs": tfds.features.Tensor(shape=(None,), dtype=np.int32),
        "targets": tfds.features.Tensor(shape=(None,), dtype=np.int32),
    })

  def metadata(self):
    c = self.builder_config
    if c.delay < 1 or c.num_symbols < 1 or c.alphabet_size < 2:
      raise ValueError(f"copy task needs delay >= 1, num_symbols >= 1, alphabet_size >= 2: {c}")
    return {
        "num_inputs": c.alphabet_size + 2,  # blank, symbols, delimiter
        "num_outputs": c.alphabet_size + 1,  # blank, symbols
        "length": c.delay + 2 * c.num_symbols,
        "baseline": memoryless_baseline(c.alphabet_size, c.num_symbols, c.delay),
        "baseline_metric": "cross-entropy per step (nats), memoryless",
    }

  def example(self, rng):
    c = self.builder_config
    return copy_example(rng, c.alphabet_size, c.num_symbols, c.delay)

  def encode(self, example, vocabs):
    """Stored example -> model arrays: inputs [L] ids, targets [L] ids."""
    del vocabs
    return {"inputs": example["inputs"], "targets": example["targets"]}
