"""Value tests of `TreeRNN`: chain == Elman RNN, a binary tree == a numpy recursion, padding."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqlab import cells, unroll
from seqlab.models.recursive import TreeRNN, node_levels

TOL = {"atol": 1e-5, "rtol": 1e-5}


# ---------------------------------------------------------------------------
# Trees as arrays.
# ---------------------------------------------------------------------------


def random_tree(rng, num_leaves, shuffle=True):
  """A random binary bracketing of `num_leaves` leaf tokens in {0, 1}.

  Returns (tokens [N], children [N, 2]) with N = 2 * num_leaves - 1; internal nodes
  have token -1 (no input). With `shuffle` the node indices are permuted, so they are
  not in topological order.
  """
  N = 2 * num_leaves - 1
  tokens = np.full(N, -1, np.int32)
  tokens[:num_leaves] = rng.integers(0, 2, num_leaves)
  children = np.full((N, 2), -1, np.int32)
  frontier = list(range(num_leaves))
  for node in range(num_leaves, N):  # merge two adjacent subtrees
    i = rng.integers(0, len(frontier) - 1)
    children[node] = frontier[i], frontier[i + 1]
    frontier[i : i + 2] = [node]
  if shuffle:
    perm = rng.permutation(N)  # new index of old node n is perm[n]
    tokens_p, children_p = np.empty_like(tokens), np.empty_like(children)
    tokens_p[perm] = tokens
    children_p[perm] = np.where(children >= 0, perm[np.maximum(children, 0)], -1)
    tokens, children = tokens_p, children_p
  return tokens, children


def pad_trees(trees, num_nodes=None):
  """Stack (tokens, children) trees into padded arrays (tokens, children, levels)."""
  N = num_nodes or max(len(t) for t, _ in trees)
  tokens = np.full((len(trees), N), -1, np.int32)
  children = np.full((len(trees), N, 2), -1, np.int32)
  for i, (t, c) in enumerate(trees):
    tokens[i, : len(t)], children[i, : len(t)] = t, c
  return jnp.asarray(tokens), jnp.asarray(children), jnp.asarray(node_levels(children))


def parity_batch(seed, batch, max_leaves):
  """Random trees with 2..max_leaves leaves and their label: the parity of the leaf tokens."""
  rng = np.random.default_rng(seed)
  trees = [random_tree(rng, rng.integers(2, max_leaves + 1)) for _ in range(batch)]
  labels = np.array([t[t >= 0].sum() % 2 for t, _ in trees], np.int32)
  return (*pad_trees(trees, 2 * max_leaves - 1), jnp.asarray(labels))


def np_tree(params, emb, tokens, children, activation=np.tanh, tensor=None):
  """h_n = f([h_c1, h_c2] @ W + x_n @ U + b) by plain recursion from the root (float64).

  With `tensor` T [2H, 2H, H] (the RNTN) unit k adds c^T T[:, :, k] c, c = [h_c1; h_c2].
  """
  H = params["b"].shape[0]
  memo = {}

  def h(n):
    if n not in memo:
      kids = [h(c) if c >= 0 else np.zeros(H) for c in children[n]]
      x = emb[tokens[n]] if tokens[n] >= 0 else np.zeros(emb.shape[1])
      c = np.concatenate(kids)
      a = c @ params["W"] + x @ params["U"] + params["b"]
      if tensor is not None:
        a = a + np.array([c @ tensor[:, :, k] @ c for k in range(H)])
      memo[n] = activation(a)
    return memo[n]

  return h


def to_np(tree):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def randomize(variables, seed, scale=0.5):
  """Every float leaf replaced by scale * N(0, 1)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda a: jnp.asarray(scale * rng.standard_normal(a.shape), a.dtype), variables
  )


# ---------------------------------------------------------------------------
# Values.
# ---------------------------------------------------------------------------


def test_node_levels():
  # 0, 1, 3 leaves; 2 = (0, 1); 4 = (2, 3); 5 is padding.
  children = np.array([[-1, -1], [-1, -1], [0, 1], [-1, -1], [2, 3], [-1, -1]])
  np.testing.assert_array_equal(node_levels(children), [0, 0, 1, 0, 2, -1])
  np.testing.assert_array_equal(node_levels(np.full((1, 3, 2), -1)), [[0, -1, -1]])


def test_chain_tree_equals_elman_rnn():
  """A chain is an Elman RNN: node t has one child, node t - 1, and input x_t.

  With K = 1 child slot, W [H, H] multiplies h_{t-1} and node 0 has no child (h = 0),
  so h_t = tanh(h_{t-1} W + x_t U + b) with h_{-1} = 0: exactly `cells.elman` unrolled
  by `unroll.scan` from a zero carry, with the same params {U, W, b}. Chains of
  different lengths share the batch (padded nodes: level -1), as sequences with lengths.
  """
  B, T, I, H = 3, 7, 4, 5
  lengths = np.array([7, 3, 5])
  rng = np.random.default_rng(0)
  xs = jnp.asarray(rng.standard_normal((B, T, I)), jnp.float32)
  t = np.arange(T)
  children = np.where(t > 0, t - 1, -1)[None, :, None].repeat(B, 0)
  levels = np.where(t[None] < lengths[:, None], t[None], -1)
  children = np.where(levels[..., None] >= 0, children, -1)
  np.testing.assert_array_equal(node_levels(children), levels)

  cell = cells.make("elman")
  params = randomize(cell.init(jax.random.key(1), I, H), 2)
  model = TreeRNN(hidden_size=H)
  h_root, h_nodes = model.apply({"params": {"cell": params}}, xs, children, levels)
  _, ys = unroll.scan(cell.step, params, cell.initial_carry(params, (B,)), xs, lengths)
  np.testing.assert_allclose(h_nodes, ys, **TOL)
  np.testing.assert_allclose(h_root, ys[np.arange(B), lengths - 1], **TOL)


def test_binary_tree_equals_numpy_recursion():
  """A balanced tree ((a b) (c d)), nodes stored out of topological order, with embeddings."""
  # index: 0 = root, 1 = (c d), 2 = a, 3 = (a b), 4 = d, 5 = b, 6 = c
  tokens = np.array([-1, -1, 3, -1, 0, 2, 1])
  children = np.array([[3, 1], [6, 4], [-1, -1], [2, 5], [-1, -1], [-1, -1], [-1, -1]])
  levels = node_levels(children)
  np.testing.assert_array_equal(levels, [2, 1, 0, 1, 0, 0, 0])
  model = TreeRNN(hidden_size=5, output_size=3, vocab_size=4, embed_size=6)
  args = (jnp.asarray(tokens)[None], jnp.asarray(children)[None], jnp.asarray(levels)[None])
  variables = randomize(model.init(jax.random.key(0), *args), 1)
  o_root, o_nodes = model.apply(variables, *args)

  p = to_np(variables["params"])
  h = np_tree(p["cell"], p["Embed_0"]["embedding"], tokens, children)
  expected = np.stack([h(n) for n in range(7)]) @ p["V"]["kernel"] + p["V"]["bias"]
  np.testing.assert_allclose(o_nodes[0], expected, **TOL)
  np.testing.assert_allclose(o_root[0], expected[0], **TOL)


def test_tensor_composition_equals_numpy_recursion():
  """RNTN: h_n = tanh(c T c + c W + x_n U + b) on a random tree, out of topological order."""
  rng = np.random.default_rng(7)
  tokens, children = random_tree(rng, 5)
  model = TreeRNN(hidden_size=4, output_size=3, vocab_size=2, composition="tensor")
  args = (jnp.asarray(tokens)[None], jnp.asarray(children)[None],
          jnp.asarray(node_levels(children))[None])
  variables = randomize(model.init(jax.random.key(0), *args), 8)
  assert variables["params"]["T"].shape == (8, 8, 4)
  o_root, o_nodes = model.apply(variables, *args)
  p = to_np(variables["params"])
  h = np_tree(p["cell"], p["Embed_0"]["embedding"], tokens, children, tensor=p["T"])
  expected = np.stack([h(n) for n in range(len(tokens))]) @ p["V"]["kernel"] + p["V"]["bias"]
  np.testing.assert_allclose(o_nodes[0], expected, **TOL)
  root = int(np.argmax(node_levels(children)))
  np.testing.assert_allclose(o_root[0], expected[root], **TOL)
  # T = 0 is the matrix composition.
  matrix = TreeRNN(hidden_size=4, output_size=3, vocab_size=2)
  zero_t = {"params": {**variables["params"], "T": jnp.zeros((8, 8, 4))}}
  no_t = {"params": {k: v for k, v in variables["params"].items() if k != "T"}}
  np.testing.assert_allclose(model.apply(zero_t, *args)[1], matrix.apply(no_t, *args)[1], **TOL)
  with pytest.raises(ValueError, match="unknown composition 'cubic'"):
    TreeRNN(hidden_size=4, composition="cubic").init(jax.random.key(0), *args)


def test_padded_batch_equals_each_tree_alone():
  rng = np.random.default_rng(3)
  trees = [random_tree(rng, n) for n in (1, 4, 2, 6)]
  model = TreeRNN(hidden_size=6, output_size=2, vocab_size=2)
  batch = pad_trees(trees)
  variables = randomize(model.init(jax.random.key(0), *batch), 4)
  o_root, o_nodes = jax.jit(model.apply)(variables, *batch)
  for i, tree in enumerate(trees):
    root_i, nodes_i = model.apply(variables, *pad_trees([tree]))
    np.testing.assert_allclose(o_root[i], root_i[0], **TOL)
    np.testing.assert_allclose(o_nodes[i, : len(tree[0])], nodes_i[0], **TOL)
    np.testing.assert_array_equal(o_nodes[i, len(tree[0]) :], 0)  # padding nodes


def test_vector_inputs_and_relu():
  """Vector inputs x_n [B, N, F] and another activation against the numpy recursion."""
  rng = np.random.default_rng(5)
  tokens, children = random_tree(rng, 5)
  x = rng.standard_normal((len(tokens), 3))
  model = TreeRNN(hidden_size=4, activation="relu")
  args = (jnp.asarray(x, jnp.float32)[None], jnp.asarray(children)[None],
          jnp.asarray(node_levels(children))[None])
  variables = randomize(model.init(jax.random.key(0), *args), 6)
  _, h_nodes = model.apply(variables, *args)
  h = np_tree(to_np(variables["params"]["cell"]), x, np.arange(len(tokens)), children,
              activation=lambda a: np.maximum(a, 0))
  np.testing.assert_allclose(h_nodes[0], np.stack([h(n) for n in range(len(tokens))]), **TOL)


# ---------------------------------------------------------------------------
# Training, jit, vmap, dtype.
# ---------------------------------------------------------------------------


def test_overfits_tree_parity():
  """Root classification of the parity of the leaf tokens of 32 random trees."""
  tokens, children, levels, labels = parity_batch(0, batch=32, max_leaves=5)
  model = TreeRNN(hidden_size=16, output_size=2, vocab_size=2)
  params = model.init(jax.random.key(0), tokens, children, levels)["params"]
  opt = optax.adam(3e-2)

  def loss_fn(params):
    logits, _ = model.apply({"params": params}, tokens, children, levels, num_levels=5)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  @jax.jit
  def train_step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  start, opt_state = time.time(), opt.init(params)
  for _ in range(150):
    params, opt_state, loss = train_step(params, opt_state)
  print(f"tree parity: final loss {float(loss):.4f} in {time.time() - start:.1f} s")
  assert loss < 0.05


def test_num_levels_bounds_the_computation():
  """num_levels = depth + 1 suffices; the root stays zero when too few levels are computed."""
  tokens, children, levels, _ = parity_batch(1, batch=8, max_leaves=4)
  model = TreeRNN(hidden_size=4, vocab_size=2)
  variables = model.init(jax.random.key(0), tokens, children, levels)
  full, _ = model.apply(variables, tokens, children, levels)
  depth = int(levels.max())
  enough, _ = model.apply(variables, tokens, children, levels, num_levels=depth + 1)
  np.testing.assert_allclose(enough, full, **TOL)
  short, _ = model.apply(variables, tokens, children, levels, num_levels=depth)
  assert np.all(np.asarray(short)[np.asarray(levels.max(1)) == depth] == 0)


def test_vmap_over_stacked_params_equals_each_member():
  tokens, children, levels, _ = parity_batch(2, batch=4, max_leaves=4)
  model = TreeRNN(hidden_size=5, output_size=2, vocab_size=2)
  keys = jax.random.split(jax.random.key(0), 3)
  stacked = jax.vmap(model.init, in_axes=(0, None, None, None))(keys, tokens, children, levels)
  roots, nodes = jax.jit(jax.vmap(model.apply, in_axes=(0, None, None, None)))(
      stacked, tokens, children, levels
  )
  for m in range(3):
    member = jax.tree.map(lambda a, m=m: a[m], stacked)
    root_m, nodes_m = model.apply(member, tokens, children, levels)
    np.testing.assert_allclose(roots[m], root_m, **TOL)
    np.testing.assert_allclose(nodes[m], nodes_m, **TOL)
  assert not np.allclose(roots[0], roots[1])


def test_bfloat16_forward_close_to_float32():
  tokens, children, levels, _ = parity_batch(3, batch=4, max_leaves=4)
  model32 = TreeRNN(hidden_size=8, output_size=3, vocab_size=2)
  model16 = TreeRNN(hidden_size=8, output_size=3, vocab_size=2, dtype=jnp.bfloat16)
  variables = model32.init(jax.random.key(0), tokens, children, levels)
  root32, _ = model32.apply(variables, tokens, children, levels)
  root16, nodes16 = jax.jit(model16.apply)(variables, tokens, children, levels)
  assert root16.dtype == nodes16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(root16, np.float32), root32, atol=5e-2, rtol=5e-2)
