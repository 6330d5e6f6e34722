"""Device meshes from `config.mesh`: sweep members along "pop", each batch along "data".

    config.mesh.pop = -1   # sweeps: devices that split the members (-1: all that data leaves)
    config.mesh.data = 1   # devices that split each batch, params replicated (-1: all the rest)

A sweep runs on the mesh (pop, data): member state sharded P("pop"), batches P("pop", "data")
(or P("data") when all members read one batch). A single run uses the mesh (data,): state
replicated P(), the batch P("data"). The meshes span every process's devices (after
`jax.distributed.initialize`); each process builds only the rows its own devices hold
(`global_array`), and `to_host` gathers what a process does not hold.
"""

from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

POP, DATA = "pop", "data"


def axis_sizes(mesh_config: ml_collections.ConfigDict, num_devices: int,
               names: tuple[str, ...]) -> dict[str, int]:
  """{name: size} for the named config.mesh axes; one -1 takes the devices the others leave."""
  sizes = {name: int(mesh_config[name]) for name in names}
  free = [n for n, s in sizes.items() if s == -1]
  bad = [n for n, s in sizes.items() if s == 0 or s < -1]
  if bad or len(free) > 1:
    raise ValueError(f"config.mesh: sizes are positive or -1 (all the devices the other axes "
                     f"leave), at most one -1; got {sizes}")
  fixed = int(np.prod([s for s in sizes.values() if s != -1]))
  if free:
    if num_devices % fixed:
      raise ValueError(f"config.mesh {sizes}: {num_devices} devices cannot be split into "
                       f"{fixed} x an integer")
    sizes[free[0]] = num_devices // fixed
  elif fixed > num_devices:
    raise ValueError(f"config.mesh {sizes} needs {fixed} devices; {num_devices} are available")
  return sizes


def make(mesh_config: ml_collections.ConfigDict, sweep: bool) -> Mesh:
  """The mesh of a sweep (pop, data) or of a single run (data,) over all processes' devices."""
  devices = jax.devices()
  names = (POP, DATA) if sweep else (DATA,)
  sizes = axis_sizes(mesh_config, len(devices), names)
  shape = tuple(sizes[n] for n in names)
  used = devices[:int(np.prod(shape))]
  idle = sorted({d.process_index for d in devices} - {d.process_index for d in used})
  if idle:  # such a process would wait at the first collective (a checkpoint) forever
    raise ValueError(
        f"config.mesh {sizes} uses {len(used)} of the {len(devices)} devices of "
        f"{jax.process_count()} processes, none of process {idle[0]}; give an axis -1 "
        f"(e.g. --config.mesh.data=-1) so every process takes part")
  return jax.make_mesh(shape, names, (AxisType.Auto,) * len(names), devices=used)


def describe(mesh: Mesh) -> str:
  """'mesh pop=4 x data=1 on 4 of 4 cpu devices, 1 process'."""
  axes = " x ".join(f"{n}={s}" for n, s in mesh.shape.items())
  kind = mesh.devices.flat[0].platform
  procs = jax.process_count()
  return (f"mesh {axes} on {mesh.size} of {jax.device_count()} {kind} devices, "
          f"{procs} process{'es' if procs > 1 else ''}")


def padded(n: int, mesh: Mesh) -> int:
  """n rounded up to a multiple of the pop axis (members beyond n repeat the last one)."""
  k = mesh.shape[POP]
  return -(-n // k) * k


def batch_spec(shape: tuple[int, ...], mesh: Mesh, lead: tuple = ()) -> P:
  """P(*lead, "data") for a batch array whose batch dimension follows the `lead` dims."""
  if len(shape) <= len(lead):  # a scalar per member: nothing to split
    return P(*lead)
  b, d = shape[len(lead)], mesh.shape[DATA]
  if b % d:
    raise ValueError(f"a training batch of {b} cannot be split over config.mesh.data={d} "
                     f"devices; choose a train.batch_size divisible by {d}")
  return P(*lead, DATA)


def global_array(shape: tuple[int, ...], sharding: NamedSharding,
                 rows: Callable[[tuple[slice, ...]], np.ndarray]) -> jax.Array:
  """The global array whose block at `index` is rows(index), asked only for this process's
  devices (so a process computes only the members and batch rows it holds)."""
  blocks: dict[tuple, np.ndarray] = {}

  def block(index):
    key = tuple((s.start, s.stop) for s in index)
    if key not in blocks:
      blocks[key] = np.asarray(rows(index))
    return blocks[key]

  return jax.make_array_from_callback(shape, sharding, block)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Every leaf (identical on every process) replicated over the mesh, P()."""
  sharding = NamedSharding(mesh, P())

  def put(a):
    a = np.asarray(a)
    return global_array(a.shape, sharding, lambda i: a[i])
  return jax.tree.map(put, tree)


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """A single run's batch (identical on every process) split along its batch dimension."""
  def put(a):
    a = np.asarray(a)
    return global_array(a.shape, NamedSharding(mesh, batch_spec(a.shape, mesh)),
                        lambda i: a[i])
  return jax.tree.map(put, batch)


def to_host(tree: Any) -> Any:
  """numpy values of every leaf, gathered from the other processes where needed."""
  def get(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable and not a.is_fully_replicated:
      return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)
  return jax.tree.map(get, tree)


def is_primary() -> bool:
  """True in the process that writes files (process 0)."""
  return jax.process_index() == 0
