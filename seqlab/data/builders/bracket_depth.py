"""Bracket depth: the deepest nesting of a balanced bracket string (many-to-one).

A string of m "(" and m ")" is balanced when no prefix has more ")" than "("; its depth
is the largest prefix surplus max_t (#"(" - #")"). Labels d are drawn uniformly from
1..max_depth, the half-length m uniformly from max(d, min_pairs)..max_pairs, and the
string uniformly among the balanced strings of half-length m and depth exactly d:

    N_k(h, reached) = completions of k more steps from height h that end at 0, stay in
                      [0, d] and reach d;  N_0(h, r) = [h = 0 and r]
    N_k(h, r) = N_{k-1}(h + 1, r or h + 1 = d) [h < d] + N_{k-1}(h - 1, r) [h > 0]

and each step goes up with probability N_{k-1}(h + 1, .) / N_k(h, .). Ids: 1 = "(",
2 = ")", 0 = padding; label = d, classes 0..max_depth (0 never occurs).
"""

import dataclasses
import functools

import numpy as np
import tensorflow_datasets as tfds

from seqlab.data import builder


@dataclasses.dataclass
class BracketDepthConfig(tfds.core.BuilderConfig):
  """Bracket-depth options: depth and length ranges, split sizes, seed."""

  max_depth: int = 8
  min_pairs: int = 1
  max_pairs: int = 25
  num_train: int = 10_000
  num_validation: int = 1_000
  num_test: int = 1_000
  seed: int = 0


@functools.cache
def completions(steps: int, depth: int) -> np.ndarray:
  """N[k, h, r] for k <= steps, h in 0..depth+1, r in {0, 1} (float64 counts)."""
  N = np.zeros((steps + 1, depth + 2, 2))
  N[0, 0, 1] = 1.0
  for k in range(1, steps + 1):
    for h in range(depth + 1):
      for r in (0, 1):
        up = N[k - 1, h + 1, int(r or h + 1 == depth)] if h < depth else 0.0
        down = N[k - 1, h - 1, r] if h > 0 else 0.0
        N[k, h, r] = up + down
  return N


def balanced_string(rng: np.random.Generator, pairs: int, depth: int) -> np.ndarray:
  """A uniformly drawn balanced string (1 = "(", 2 = ")") of `pairs` pairs and depth `depth`."""
  if not 1 <= depth <= pairs:
    raise ValueError(f"need 1 <= depth <= pairs, got depth={depth}, pairs={pairs}")
  N = completions(2 * pairs, depth)
  out = np.empty(2 * pairs, np.int32)
  h, r = 0, 0
  for t in range(2 * pairs):
    k = 2 * pairs - t
    up_r = int(r or h + 1 == depth)
    up = N[k - 1, h + 1, up_r] if h < depth else 0.0
    if rng.uniform() * N[k, h, r] < up:
      out[t], h, r = 1, h + 1, up_r
    else:
      out[t], h = 2, h - 1
  return out


def depth_of(ids: np.ndarray) -> int:
  """The deepest nesting: max over prefixes of #"(" - #")"."""
  return int(np.max(np.cumsum(np.where(np.asarray(ids) == 1, 1, -1))))


class BracketDepth(builder.Generated):
  """Maximum nesting depth of a random balanced bracket string."""

  name = "bracket_depth"
  BUILDER_CONFIGS = [BracketDepthConfig(name="default")]
  TIME_KEYS = {"inputs": "lengths"}

  def features(self):
    return tfds.features.FeaturesDict({
        "brackets": tfds.features.Tensor(shape=(None,), dtype=np.int32),
        "depth": tfds.features.ClassLabel(num_classes=self.builder_config.max_depth + 1),
    })

  def metadata(self):
    c = self.builder_config
    if not 1 <= c.min_pairs <= c.max_pairs or not 1 <= c.max_depth <= c.max_pairs:
      raise ValueError(f"bracket_depth needs 1 <= min_pairs <= max_pairs, max_depth: {c}")
    return {
        "num_inputs": 3,
        "num_classes": c.max_depth + 1,
        "baseline": 1.0 / c.max_depth,
        "baseline_metric": "accuracy of a constant guess (labels uniform over 1..max_depth)",
    }

  def example(self, rng):
    c = self.builder_config
    depth = int(rng.integers(1, c.max_depth + 1))
    pairs = int(rng.integers(max(depth, c.min_pairs), c.max_pairs + 1))
    return {"brackets": balanced_string(rng, pairs, depth), "depth": depth}

  def encode(self, example, vocabs):
    """Stored example -> inputs [L] ids, targets [] the depth."""
    del vocabs
    return {"inputs": example["brackets"], "targets": np.int32(example["depth"])}
