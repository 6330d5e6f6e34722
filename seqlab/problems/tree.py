"""Tree classification with a recursive net: the value of an arithmetic expression tree, mod 10.

Notes 000, "Recursive neural networks"; the trees are expressions over digits
(`data/builders/trees.py`).

The `TreeRNN` composes every node from its children, leaves first,

    h_n = tanh([h_c1; h_c2] W + x_n U + b),   o_n = c + V h_n,

and the root's output classifies the tree:

    loss = 1/B sum_b -log softmax(o_root(b))[y_b]

Batches pad the node axis with 0; padding nodes (mask False) get level -1, which the
TreeRNN skips. Metrics: cross-entropy, root accuracy, and the accuracy of every internal
node's output on that node's own value (how much of the arithmetic the composition has
learned, though only the root is trained); the majority-label accuracy of the training
split is `task.metadata["baseline"]`.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from seqlab.problems import base

Array = jax.Array


class TreeClassification(base.ProblemBase):
  """One class per tree from the root of a recursive net."""

  def __init__(self, config):
    super().__init__(config)
    if config.model.name != "tree":
      raise ValueError(f"tree tasks need config.model.name='tree', got {config.model.name!r}")
    meta = self.task.metadata
    self.model = self.build_model(vocab_size=meta["num_inputs"], output_size=meta["num_classes"])
    self.num_levels = meta["max_levels"]  # level steps of the TreeRNN (static)
    self.max_length = meta["max_nodes"]  # nodes, padded to one size

  def model_inputs(self, batch) -> tuple:
    levels = jnp.where(batch["mask"], batch["levels"], -1)
    return (batch["inputs"], batch["children"], levels, self.num_levels)

  def logits(self, params: Any, batch: Mapping[str, Array]) -> tuple[Array, Array]:
    """(o_root [B, C], o_nodes [B, N, C]), float32."""
    root, nodes = self.model.apply(params, *self.model_inputs(batch))
    return root.astype(jnp.float32), nodes.astype(jnp.float32)

  def loss(self, params, batch, rng, extra, step):
    root, _ = self.logits(params, batch)
    xent = optax.softmax_cross_entropy_with_integer_labels(root, batch["targets"])
    accuracy = (jnp.argmax(root, -1) == batch["targets"]).mean()
    return xent.mean(), ({"accuracy": accuracy}, extra)

  def eval_sums(self, params, batch, extra):
    root, nodes = self.logits(params, batch)
    xent = optax.softmax_cross_entropy_with_integer_labels(root, batch["targets"])
    internal = batch["mask"] & (batch["levels"] > 0)
    node_right = (jnp.argmax(nodes, -1) == batch["node_targets"]) & internal
    sums = {"xent": xent.sum(), "correct": (jnp.argmax(root, -1) == batch["targets"]).sum(),
            "count": jnp.float32(xent.shape[0]), "node_correct": node_right.sum(),
            "internal": internal.sum()}
    return sums, extra

  def summarize(self, sums):
    count = max(sums["count"], 1.0)
    return {"loss": sums["xent"] / count, "accuracy": sums["correct"] / count,
            "node_accuracy": sums["node_correct"] / max(sums["internal"], 1.0)}
