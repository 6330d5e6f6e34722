"""Parity: whether the number of ones in a bit string is odd (many-to-one classification).

    bits b_1 .. b_L ~ Bernoulli(1/2), L ~ U{min_length .. max_length}
    label = (b_1 + ... + b_L) mod 2

A model reads ids b_t + 1 (1 = bit 0, 2 = bit 1; 0 is padding). Every bit matters,
so chance (accuracy 1/2) is the best any summary short of the full count does.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from seqlab.data import builder


@dataclasses.dataclass
class ParityConfig(tfds.core.BuilderConfig):
  """Parity options: length range, split sizes, seed."""

  min_length: int = 1
  max_length: int = 50
  num_train: int = 10_000
  num_validation: int = 1_000
  num_test: int = 1_000
  seed: int = 0


class Parity(builder.Generated):
  """Parity of a random bit string of random length."""

  name = "parity"
  BUILDER_CONFIGS = [ParityConfig(name="default")]
  TIME_KEYS = {"inputs": "lengths"}

  def features(self):
    return tfds.features.FeaturesDict({
        "bits": tfds.features.Tensor(shape=(None,), dtype=np.int32),
        "label": tfds.features.ClassLabel(num_classes=2),
    })

  def metadata(self):
    c = self.builder_config
    if not 1 <= c.min_length <= c.max_length:
      raise ValueError(f"parity needs 1 <= min_length <= max_length, got {c}")
    return {"num_inputs": 3, "num_classes": 2, "baseline": 0.5, "baseline_metric": "accuracy"}

  def example(self, rng):
    c = self.builder_config
    bits = rng.integers(0, 2, rng.integers(c.min_length, c.max_length + 1)).astype(np.int32)
    return {"bits": bits, "label": int(bits.sum() % 2)}

  def encode(self, example, vocabs):
    """Stored example -> inputs [L] ids (bit + 1), targets [] the parity."""
    del vocabs
    return {"inputs": example["bits"] + 1, "targets": np.int32(example["label"])}
