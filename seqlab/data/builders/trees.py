"""Arithmetic expression trees: classify the value of a random expression over digits.

A tree has n leaves, n ~ U{min_leaves .. max_leaves}, each a digit d ~ U{0..9}; its
n - 1 internal nodes join two adjacent subtrees (a random bracketing) with an operator
drawn from `operators` ("+" and/or "*"). Every node's value is taken modulo `modulus`:

    v(leaf) = d,   v(a + b) = (v(a) + v(b)) mod m,   v(a * b) = v(a) v(b) mod m
    label = v(root)    (classes 0..m-1; + and * commute with "mod m", so this is the
                        value of the whole expression mod m)

Nodes are stored in post-order (children before parents, the root last) as arrays:
tokens [N] (digits 0..9, 10 = "+", 11 = "*"), children [N, 2] (node indices, -1 for a
leaf), levels [N] (0 for leaves, 1 + the children's largest level), values [N] (each
node's v), and the expression as text, e.g. "((3+4)*2)". The layout is the one
`seqlab.models.recursive.TreeRNN` reads; batches pad the node axis with 0, so a reader
sets the levels of padding nodes (mask False) to -1.
"""

import collections
import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from seqlab.data import builder

OPERATORS = {"+": 10, "*": 11}  # operator -> token id (digits are their own ids)
VOCAB_SIZE = 12


@dataclasses.dataclass
class TreesConfig(tfds.core.BuilderConfig):
  """Expression-tree options: leaf-count range, operators, modulus, split sizes, seed."""

  min_leaves: int = 2
  max_leaves: int = 8
  operators: str = "+*"
  modulus: int = 10
  num_train: int = 10_000
  num_validation: int = 1_000
  num_test: int = 1_000
  seed: int = 0


def random_expression(rng: np.random.Generator, num_leaves: int, operators: str,
                      modulus: int) -> dict:
  """One expression tree in post-order: tokens, children, levels, values, expression text."""
  # A subtree is (nodes in post-order, its text); each node is (token, children, value).
  subtrees = []
  for _ in range(num_leaves):
    d = int(rng.integers(0, 10))
    subtrees.append(([(d, (), d % modulus)], str(d)))
  while len(subtrees) > 1:  # join two adjacent subtrees under a random operator
    i = int(rng.integers(0, len(subtrees) - 1))
    (left, left_text), (right, right_text) = subtrees[i], subtrees[i + 1]
    op = operators[int(rng.integers(0, len(operators)))]
    a, b = left[-1][2], right[-1][2]
    value = (a + b) % modulus if op == "+" else (a * b) % modulus
    # Children are the two subtrees' roots, addressed relative to the joined list.
    node = (OPERATORS[op], (len(left) - 1, len(left) + len(right) - 1), value)
    subtrees[i:i + 2] = [(_shift(left, 0) + _shift(right, len(left)) + [node],
                          f"({left_text}{op}{right_text})")]
  nodes, text = subtrees[0]
  N = len(nodes)
  tokens = np.array([t for t, _, _ in nodes], np.int32)
  children = np.full((N, 2), -1, np.int32)
  levels = np.zeros(N, np.int32)
  for n, (_, kids, _) in enumerate(nodes):
    if kids:
      children[n] = kids
      levels[n] = 1 + max(levels[k] for k in kids)  # post-order: children come first
  values = np.array([v for _, _, v in nodes], np.int32)
  return {"tokens": tokens, "children": children, "levels": levels, "values": values,
          "label": int(values[-1]), "expression": text}


def _shift(nodes: list, offset: int) -> list:
  """Nodes with their children's indices moved by `offset` (for concatenating subtrees)."""
  return [(t, tuple(k + offset for k in kids), v) for t, kids, v in nodes]


class Trees(builder.Generated):
  """Random arithmetic expression trees over digits, labelled by their value mod m."""

  name = "trees"
  BUILDER_CONFIGS = [TreesConfig(name="default")]
  TIME_KEYS = {"inputs": "lengths", "children": "lengths", "levels": "lengths",
               "node_targets": "lengths"}

  def features(self):
    return tfds.features.FeaturesDict({
        "tokens": tfds.features.Tensor(shape=(None,), dtype=np.int32),
        "children": tfds.features.Tensor(shape=(None, 2), dtype=np.int32),
        "levels": tfds.features.Tensor(shape=(None,), dtype=np.int32),
        "values": tfds.features.Tensor(shape=(None,), dtype=np.int32),
        "label": tfds.features.ClassLabel(num_classes=self.builder_config.modulus),
        "expression": tfds.features.Text(),
    })

  def metadata(self):
    c = self.builder_config
    if not 1 <= c.min_leaves <= c.max_leaves:
      raise ValueError(f"trees need 1 <= min_leaves <= max_leaves, got {c}")
    if not c.operators or set(c.operators) - set(OPERATORS) or c.modulus < 2:
      raise ValueError(f"trees need operators from {list(OPERATORS)} and modulus >= 2, got {c}")
    return {
        "num_inputs": VOCAB_SIZE,
        "num_classes": c.modulus,
        "max_nodes": 2 * c.max_leaves - 1,
        "max_levels": c.max_leaves,  # a chain-shaped bracketing has levels 0..n-1
        "baseline_metric": "accuracy of always predicting the commonest training label",
    }

  def example(self, rng):
    c = self.builder_config
    return random_expression(rng, int(rng.integers(c.min_leaves, c.max_leaves + 1)),
                             c.operators, c.modulus)

  def _draw(self, split_index, size):
    """The examples; the training labels' majority-class accuracy goes to the metadata."""
    counts = collections.Counter()
    for example in super()._draw(split_index, size):
      counts[example["label"]] += 1
      yield example
    if split_index == 0 and size:
      self.record(baseline=max(counts.values()) / size)

  def encode(self, example, vocabs):
    """inputs [N] token ids, children [N, 2], levels [N], node_targets [N]; targets []."""
    del vocabs
    return {"inputs": example["tokens"], "children": example["children"],
            "levels": example["levels"], "node_targets": example["values"],
            "targets": np.int32(example["label"])}
