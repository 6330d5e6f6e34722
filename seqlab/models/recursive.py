"""`TreeRNN`: a recursive neural network over batched trees, computed level by level.

A recursive net (notes 000, "Recursive neural networks") applies one composition
function at every node of a tree, children before parents:

    h_n = tanh(W [h_c1; ...; h_cK] + U x_n + b)    (row-vector code:
          [h_c1, ..., h_cK] @ W + x_n @ U + b)
    o_n = c + V h_n                                  (per node; o_root classifies the tree)

where c1..cK are n's children (a missing child contributes h = 0) and x_n is the
node's input (a leaf's token embedding or vector; zero where a node has none). This
is the Elman step with h_{t-1} replaced by the concatenated children's states, so
the composition calls `cells.elman.step`; a chain-shaped tree is exactly an Elman RNN.

With composition="tensor" (the recursive neural tensor network of Socher et al. 2013)
every output unit k also reads the children through a bilinear form, so the children
can modulate each other multiplicatively:

    h_n = f(c T c + c W + x_n U + b),   (c T c)_k = sum_ij c_i T_ijk c_j,   c = [h_c1; ...; h_cK]

with T [K*H, K*H, H] (Socher's V^{[1:d]}, one slice per output unit).

Trees are arrays, padded to N nodes per tree:
  inputs    [B, N] int token ids (negative: no input) or [B, N, F] vectors;
  children  [B, N, K] int node indices of each node's children, -1 for none;
  levels    [B, N] int: 0 for leaves, 1 + the largest level of a node's children,
            -1 for padding nodes (`node_levels` computes them from `children`).
Level l of every tree in the batch is computed at once (a gather of the children's
states, one matmul) inside a `jax.lax.scan` over l = 0..L-1. The root is the unique
node of the highest level. Each level step composes every node and keeps those of the
current level: simple and jit-friendly, at L times the cost of composing each node once.
Params: "cell" = {U, W, b} (with K = 1, exactly `cells.elman`'s), "T" with the tensor
composition, "V" = `nn.Dense` (kernel V, bias c), "Embed_0" when the inputs are token ids.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqlab.cells import elman, initializers
from seqlab.models.recurrent import cast_floats

Array = jax.Array
COMPOSITIONS = ("matrix", "tensor")


def node_levels(children: np.ndarray) -> np.ndarray:
  """Topological levels [..., N] from children [..., N, K] (-1: none); padding nodes get -1.

  A node is padding when it has no children and is no node's child, unless it is the
  only such node (a one-node tree). Host-side (numpy) data preparation.
  """
  children = np.asarray(children)
  flat = children.reshape(-1, *children.shape[-2:])
  levels = np.full(flat.shape[:2], -1, np.int32)
  for tree, kids in enumerate(flat):
    used = np.zeros(kids.shape[0], bool)
    used[kids[kids >= 0]] = True
    real = used | (kids >= 0).any(-1)
    if not real.any():
      real[0] = True  # a one-node tree
    for _ in range(kids.shape[0]):  # relax until every node sits above its children
      child_level = np.where(kids >= 0, levels[tree][np.maximum(kids, 0)], -1)
      levels[tree] = np.where(real, child_level.max(-1) + 1, -1)
  return levels.reshape(children.shape[:-1])


def gather_children(h: Array, children: Array) -> Array:
  """[h_c1, ..., h_cK] for every node: h [B, N, H], children [B, N, K] -> [B, N, K*H]."""
  B, N, K = children.shape
  index = jnp.maximum(children, 0).reshape(B, N * K, 1)
  h_kids = jnp.take_along_axis(h, index, axis=1).reshape(B, N, K, -1)
  h_kids = jnp.where((children >= 0)[..., None], h_kids, 0)  # a missing child: h = 0
  return h_kids.reshape(B, N, -1)


def init(key: Array, input_size: int, hidden_size: int, num_children: int) -> dict:
  """U [I, H] and W [K*H, H] Xavier-uniform, b = 0: the Elman cell's params with a K-fold W."""
  k_u, k_w = jax.random.split(key)
  return {
      "U": initializers.xavier(k_u, (input_size, hidden_size)),
      "W": initializers.xavier(k_w, (num_children * hidden_size, hidden_size)),
      "b": jnp.zeros((hidden_size,)),
  }


def init_tensor(key: Array, children_size: int, hidden_size: int) -> Array:
  """T [K*H, K*H, H] ~ N(0, 1 / (K*H)^2): c T c starts at the scale of c W for |c_i| ~ 1."""
  shape = (children_size, children_size, hidden_size)
  return jax.random.normal(key, shape) / children_size


def tensor_term(T: Array, c: Array) -> Array:
  """(c T c)_k = sum_ij c_i T_ijk c_j for every node: c [..., K*H] -> [..., H]."""
  return jnp.einsum("...i,ijk,...j->...k", c, T, c)


class TreeRNN(nn.Module):
  """Recursive net h_n = tanh([h_children] W + x_n U + b) over padded batched trees.

  Attributes:
    hidden_size: H.
    output_size: size of the output o_n = c + V h_n (the classes); None returns the states h_n.
    vocab_size: when set, inputs are token ids embedded by an `nn.Embed`.
    embed_size: the embedding size (defaults to hidden_size).
    activation: the composition's nonlinearity (a `cells.common` activation name).
    composition: "matrix" (c W) or "tensor" (c T c + c W, Socher et al.'s RNTN).
    dtype: computation dtype (params are stored in float32 and cast).
  """

  hidden_size: int
  output_size: int | None = None
  vocab_size: int | None = None
  embed_size: int | None = None
  activation: str = "tanh"
  composition: str = "matrix"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(
      self, inputs: Array, children: Array, levels: Array, num_levels: int | None = None
  ) -> tuple[Array, Array]:
    """Returns (o_root [B, C], o_nodes [B, N, C]) (h instead of o when output_size is None).

    Args:
      inputs: [B, N] token ids (negative: no input) or [B, N, F] input vectors x_n.
      children: [B, N, K] children indices, -1 for none.
      levels: [B, N] topological levels, -1 for padding nodes.
      num_levels: how many levels to compute (static); defaults to N, the most a tree
        of N nodes can have. Trees deeper than this are computed incompletely.
    """
    if self.vocab_size is not None:
      embed = nn.Embed(self.vocab_size, self.embed_size or self.hidden_size, dtype=self.dtype)
      x = jnp.where((inputs >= 0)[..., None], embed(jnp.maximum(inputs, 0)), 0)
    else:
      x = inputs
    if self.composition not in COMPOSITIONS:
      raise ValueError(f"unknown composition {self.composition!r}; known: {list(COMPOSITIONS)}")
    B, N, K = children.shape
    params = self.param("cell", init, x.shape[-1], self.hidden_size, K)
    params, x = cast_floats(params, self.dtype), x.astype(self.dtype)
    ux = elman.project(params, x)  # x_n U + b, the same at every level
    if self.composition == "tensor":
      T = self.param("T", init_tensor, K * self.hidden_size, self.hidden_size).astype(self.dtype)

    def level_step(h, level):
      """All nodes of `level`, across the batch: h_n = f([c T c +] c W + x_n U + b)."""
      c = gather_children(h, children)
      a = ux + tensor_term(T, c) if self.composition == "tensor" else ux
      h_new, _ = elman.recur(params, c, a, activation=self.activation)
      return jnp.where((levels == level)[..., None], h_new, h), None

    h0 = jnp.zeros((B, N, self.hidden_size), self.dtype)
    h, _ = jax.lax.scan(level_step, h0, jnp.arange(num_levels or N))
    root = jnp.argmax(levels, axis=1)  # the unique node of the highest level
    if self.output_size is not None:
      h = nn.Dense(self.output_size, dtype=self.dtype, name="V")(h)
    h = jnp.where((levels >= 0)[..., None], h, 0)
    return h[jnp.arange(B), root], h
