"""Where a population's rows live: members along the mesh's "pop" axis, across processes.

The rows are padded to a multiple of the "pop" axis (row r >= N repeats member N - 1; padding
never reaches results), and each process builds only the rows its own devices hold.

    rows = local_rows(mesh, n_rows)                  # this process's row indices
    state = stacked({i: state_i for i in needed}, n, mesh)   # [rows, ...] sharded P("pop")
"""

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from seqlab.train import mesh as mesh_lib


def local_rows(mesh: Mesh, num_rows: int) -> list[int]:
  """The population rows held by this process's devices."""
  index = NamedSharding(mesh, P(mesh_lib.POP)).addressable_devices_indices_map((num_rows,))
  return sorted({r for (s,) in index.values() for r in range(num_rows)[s]})


def member_of(row: int, size: int) -> int:
  """The member a row computes: itself, or the last member for a padding row."""
  return min(row, size - 1)


def stacked(per_member: Mapping[int, Any], size: int, mesh: Mesh) -> Any:
  """Members' pytrees (this process's members only) -> one pytree [rows, ...] sharded P("pop")."""
  num_rows = mesh_lib.padded(size, mesh)
  sharding = NamedSharding(mesh, P(mesh_lib.POP))
  first = next(iter(per_member.values()))
  leaves = {i: jax.tree.leaves(t) for i, t in per_member.items()}

  def leaf(k, like):
    rows = lambda index: np.stack([np.asarray(leaves[member_of(r, size)][k])
                                   for r in range(num_rows)[index[0]]])[(slice(None),
                                                                         *index[1:])]
    return mesh_lib.global_array((num_rows, *np.shape(like)), sharding, rows)

  flat, treedef = jax.tree.flatten(first)
  return jax.tree.unflatten(treedef, [leaf(k, x) for k, x in enumerate(flat)])


def stacked_batch(per_seed: Mapping[int, Any], seeds: Sequence[int], mesh: Mesh) -> Any:
  """Member batches [rows, B, ...] sharded P("pop", "data"); row r reads its member's seed."""
  size, num_rows = len(seeds), mesh_lib.padded(len(seeds), mesh)
  first = next(iter(per_seed.values()))

  def leaf(path, like):
    like = np.asarray(like)
    spec = mesh_lib.batch_spec((num_rows, *like.shape), mesh, lead=(mesh_lib.POP,))
    pick = lambda s: np.asarray(_at(per_seed[s], path))
    rows = lambda index: np.stack([pick(seeds[member_of(r, size)])[index[1:]]
                                   for r in range(num_rows)[index[0]]])
    return mesh_lib.global_array((num_rows, *like.shape), NamedSharding(mesh, spec), rows)

  return jax.tree_util.tree_map_with_path(leaf, first)


def _at(tree: Any, path) -> Any:
  """The leaf of `tree` at a key path."""
  for key in path:
    tree = tree[key.key if hasattr(key, "key") else key.idx]
  return tree
