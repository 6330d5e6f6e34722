"""The adding problem (Hochreiter & Schmidhuber 1997; layout of Le, Jaitly & Hinton 2015).

Each step t carries x_t = (v_t, m_t): a number v_t ~ U[0, 1] and a marker m_t in {0, 1}.
Exactly two steps are marked, one in each half of the sequence; the target is the sum
of the two marked numbers, y = sum_t m_t v_t. Always predicting 1 (the mean of y) has
MSE Var(v_1 + v_2) = 2/12 ~ 0.167, the baseline to beat.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from seqlab.data import builder


@dataclasses.dataclass
class AddingConfig(tfds.core.BuilderConfig):
  """Adding-problem options: sequence length T, split sizes, seed."""

  length: int = 100
  num_train: int = 10_000
  num_validation: int = 1_000
  num_test: int = 1_000
  seed: int = 0


def adding_example(rng: np.random.Generator, length: int) -> dict:
  """One example: inputs [T, 2] (value, marker), target = the sum of the marked values."""
  values = rng.uniform(0.0, 1.0, length).astype(np.float32)
  marks = np.zeros(length, np.float32)
  half = length // 2
  marks[rng.integers(0, half)] = 1.0
  marks[rng.integers(half, length)] = 1.0
  target = np.float32(values[marks == 1].sum())
  return {"inputs": np.stack([values, marks], axis=1), "target": target}


class Adding(builder.Generated):
  """Adding problem: the sum of the two marked numbers in a sequence of uniform numbers."""

  name = "adding"
  BUILDER_CONFIGS = [AddingConfig(name="default")]
  TIME_KEYS = {"inputs": "lengths"}

  def features(self):
    return tfds.features.FeaturesDict({
        "inputs": tfds.features.Tensor(shape=(None, 2), dtype=np.float32),
        "target": tfds.features.Scalar(dtype=np.float32),
    })

  def metadata(self):
    if self.builder_config.length < 2:
      raise ValueError(f"the adding problem needs length >= 2, got {self.builder_config.length}")
    return {
        "num_inputs": 2,
        "num_outputs": 1,
        "baseline": 1.0 / 6.0,
        "baseline_metric": "mean squared error of always predicting 1",
    }

  def example(self, rng):
    return adding_example(rng, self.builder_config.length)

  def encode(self, example, vocabs):
    """Stored example -> inputs [T, 2] float32, targets [] float32."""
    del vocabs
    return {"inputs": example["inputs"], "targets": np.float32(example["target"])}
