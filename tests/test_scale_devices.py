"""Sharded sweeps and data-parallel runs equal their one-device versions: 4 forced host
devices in a subprocess, and two processes joined by jax.distributed on localhost; each with
Adam and with plain SGD (whose results, unlike Adam's, move with gradients summed over devices
instead of averaged)."""

import collections
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
import scale_worker

from seqlab import problems
from seqlab.train import mesh as mesh_lib
from seqlab.train import writers

WORKER = Path(scale_worker.__file__)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """The tiny copy data, prepared once here so that no two subprocesses build it at once."""
  path = tmp_path_factory.mktemp("data")
  problems.build_problem(scale_worker.tiny_config(path))
  return path


@pytest.fixture(scope="module", params=tuple(scale_worker.LEARNING_RATES))
def optimizer(request) -> str:
  """Each comparison with Adam and with plain SGD: Adam's steps hardly change when the
  gradients are scaled by the device count (~3e-4 relative), SGD's scale with them."""
  return request.param


@pytest.fixture(scope="module")
def one_device(data_dir, optimizer, tmp_path_factory):
  """The sweep and the run in this process, on one device."""
  workdir = tmp_path_factory.mktemp("single") / "run"
  return (scale_worker.run_sweep(data_dir, optimizer),
          scale_worker.run_single(data_dir, workdir, data=1, optimizer=optimizer),
          scale_worker.run_pbt(data_dir, optimizer))


@pytest.fixture(scope="module")
def four_devices(data_dir, tmp_path_factory) -> Path:
  """The worker's results (both optimizers) on 4 forced host devices, one process."""
  out = tmp_path_factory.mktemp("four_devices")
  _workers(out, data_dir, devices=4, processes=1)
  return out


@pytest.fixture(scope="module")
def two_processes(data_dir, tmp_path_factory) -> Path:
  """The worker's results (both optimizers) from 2 processes x 2 devices."""
  out = tmp_path_factory.mktemp("two_processes")
  _workers(out, data_dir, devices=2, processes=2)
  return out


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _workers(out: Path, data_dir: Path, devices: int, processes: int) -> None:
  """Run scale_worker in `processes` processes of `devices` CPU devices each; wait for all."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices)}
  cluster = ([f"localhost:{_free_port()}", str(processes)] if processes > 1 else [])
  procs = [subprocess.Popen(
      [sys.executable, str(WORKER), str(out), str(data_dir), *cluster,
       *([str(i)] if cluster else [])], env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True) for i in range(processes)]
  logs = [p.communicate(timeout=400)[0] for p in procs]
  for p, log in zip(procs, logs, strict=True):
    assert p.returncode == 0, log[-3000:]
  assert f"{processes} process" in logs[0]


def _assert_equal(out: Path, optimizer: str, one_device: tuple) -> None:
  """The worker's sweep (final params, loss and grad-norm histories, validation loss), PBT
  (the same and its validation scores, copies and learning rates) and run (final params,
  logged train loss and grad norm) equal the one-device ones."""
  names = ("sweep", "run", "pbt")
  for name, want in zip(names, one_device, strict=True):
    got = np.load(out / f"{name}_{optimizer}.npz")
    assert set(got) == set(want), name
    if name == "pbt":  # copies happened, and the same ones
      assert (got["parents"][:-1] != np.arange(6)).sum() == 3 * (len(got["parents"]) - 1)
      np.testing.assert_array_equal(got["parents"], want["parents"])
    for field in (n for n in want if n != "rows"):
      np.testing.assert_allclose(got[field], want[field], rtol=2e-5, atol=2e-7,
                                 err_msg=f"{name} {field}")


def test_four_devices_equal_one(one_device, four_devices, optimizer):
  """6 members padded to 8 over pop=4, and a batch of 8 split over data=4."""
  sweep = np.load(four_devices / f"sweep_{optimizer}.npz")
  assert int(sweep["rows"]) == 8 and sweep["loss"].shape == (6, 6)  # padding never shows
  _assert_equal(four_devices, optimizer, one_device)


def test_two_processes_equal_one(one_device, two_processes, optimizer):
  """2 processes x 2 devices: the same sweep and run; only process 0 wrote metrics."""
  _assert_equal(two_processes, optimizer, one_device)
  run = two_processes / f"run_{optimizer}"
  assert len(list((run / "tensorboard").iterdir())) == 1  # one writer
  lines = (run / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == 4  # train at steps 2, 4, 6 and validation at 6, written once


def test_mesh_sizes_and_named_errors():
  sizes = lambda n, **kw: mesh_lib.axis_sizes(ml_collections.ConfigDict(kw), n, tuple(kw))
  assert sizes(8, pop=-1, data=2) == {"pop": 4, "data": 2}
  assert sizes(8, pop=2, data=-1) == {"pop": 2, "data": 4}
  assert sizes(8, pop=3, data=1) == {"pop": 3, "data": 1}  # 3 of the 8 devices
  with pytest.raises(ValueError, match=r"needs 6 devices; 4 are available"):
    sizes(4, pop=3, data=2)
  with pytest.raises(ValueError, match=r"4 devices cannot be split into 3 x an integer"):
    sizes(4, pop=-1, data=3)
  with pytest.raises(ValueError, match="at most one -1"):
    sizes(4, pop=-1, data=-1)
  with pytest.raises(ValueError, match="positive or -1"):
    sizes(4, pop=0, data=1)
  mesh = _MeshShape()  # pop=4, data=2: what padded and batch_spec read
  assert [mesh_lib.padded(n, mesh) for n in (1, 4, 6, 9)] == [4, 4, 8, 12]
  assert mesh_lib.batch_spec((8, 6, 3), mesh, lead=("pop",)) == mesh_lib.P("pop", "data")
  with pytest.raises(ValueError, match=r"batch of 5 cannot be split over config.mesh.data=2"):
    mesh_lib.batch_spec((8, 5, 3), mesh, lead=("pop",))


class _MeshShape:
  shape = {"pop": 4, "data": 2}


def test_a_disabled_metrics_writer_writes_nothing(tmp_path):
  writer = writers.MetricsWriter(tmp_path, enabled=False)
  writer.write(1, "train", {"loss": 1.0})
  writer.close()
  assert list(tmp_path.iterdir()) == [] and writer.read() == []


def test_a_mesh_that_leaves_a_process_without_devices_is_named(monkeypatch):
  """Two processes, one device each, mesh data=1: process 1 would wait forever at the first
  checkpoint (found running the guide's two-process command); it is named instead."""
  device = collections.namedtuple("Device", "process_index")
  monkeypatch.setattr(jax, "devices", lambda: [device(0), device(1)])
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  with pytest.raises(ValueError, match=r"none of process 1.*--config.mesh.data=-1"):
    mesh_lib.make(ml_collections.ConfigDict({"data": 1}), sweep=False)
