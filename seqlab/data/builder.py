"""The base of seqlab's TFDS builders: array_record files, read without TensorFlow.

A builder's options are the fields of its `BuilderConfig` dataclass. Default options
give the config "default"; other options give a config named after the changed
fields, so every setting is prepared once and cached under

    data_dir/<task>/<config>/<version>/   (array_record shards, dataset_info.json,
                                            metadata.json, vocabularies)

Examples are written in generation order (`disable_shuffling`); readers shuffle.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import pathlib
import re
import shutil
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from seqlab.data import files
from seqlab.data.vocab import Vocab

DEFAULT_DATA_DIR = os.environ.get("SEQLAB_DATA_DIR", "~/.cache/seqlab/datasets")
_BASE_FIELDS = {f.name for f in dataclasses.fields(tfds.core.BuilderConfig)}


def options_of(config: tfds.core.BuilderConfig) -> dict[str, Any]:
  """The task options held by a config (its fields less TFDS's own)."""
  return {
      f.name: getattr(config, f.name) for f in dataclasses.fields(config)
      if f.name not in _BASE_FIELDS
  }


def _fingerprint(path: str) -> str:
  """8 hex digits of sha1 over the path, size and mtime of each file under `path`."""
  digest = hashlib.sha1()
  for f in files.list_files(path):
    stat = f.stat()
    digest.update(f"{f.resolve()}:{stat.st_size}:{stat.st_mtime_ns};".encode())
  return digest.hexdigest()[:8]


def _config_name(changed: dict[str, Any]) -> str:
  """A directory-safe name for non-default options, e.g. "delay=50-num_symbols=5"."""
  parts = []
  for key, value in sorted(changed.items()):
    if key == "path" and value is not None:
      value = f"{pathlib.Path(value).name}.{_fingerprint(value)}"
    parts.append(f"{key}={value}")
  name = re.sub(r"[^A-Za-z0-9_.=+-]", "_", "-".join(parts))
  if len(name) > 120:
    name = name[:100] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
  return name


class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A seqlab task builder; subclasses define `features`, `metadata` and the generators."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS: list[tfds.core.BuilderConfig] = []  # [the default config]
  READ_OPTIONS: dict[str, Any] = {}  # options that change how examples are read, not stored
  TIME_KEYS: dict[str, str] = {}  # sequence field of an encoded example -> its lengths field
  VOCABS: tuple[str, ...] = ()  # vocabularies saved next to the data, by name

  @classmethod
  def config_for(cls, **options: Any) -> tfds.core.BuilderConfig:
    """The config with `options` changed from the default; raises on unknown names."""
    default = cls.BUILDER_CONFIGS[0]
    known = options_of(default)
    unknown = sorted(set(options) - set(known))
    if unknown:
      raise ValueError(
          f"unknown option(s) {unknown} for task {cls.name!r}; its options are: "
          f"{sorted(set(known) | set(cls.READ_OPTIONS))}"
      )
    changed = {k: v for k, v in options.items() if v != known[k]}
    if not changed:
      return default
    return dataclasses.replace(default, name=_config_name(changed), **changed)

  @property
  def options(self) -> dict[str, Any]:
    """This builder's task options."""
    return options_of(self.builder_config)

  def features(self) -> tfds.features.FeaturesDict:
    """The stored features of one example."""
    raise NotImplementedError

  def metadata(self) -> dict[str, Any]:
    """What a reader needs besides the examples: sizes, baselines (JSON values)."""
    return {}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(self.__doc__ or "").strip(),
        features=self.features(),
        metadata=tfds.core.MetadataDict(self.metadata()),
        disable_shuffling=True,
    )

  def time_keys(self, **read_options: Any) -> dict[str, str]:
    """Sequence field of an encoded example -> its lengths field."""
    del read_options
    return dict(self.TIME_KEYS)

  def encode(self, example: dict, vocabs: dict[str, Vocab], **read_options: Any) -> dict:
    """A stored example -> the arrays a model reads."""
    raise NotImplementedError

  def vocab_path(self, name: str) -> pathlib.Path:
    """Where vocabulary `name` lives: next to the data files."""
    return pathlib.Path(self.data_dir) / f"vocab-{name}.json"

  def load_vocabs(self) -> dict[str, Vocab]:
    """The vocabularies saved with the data."""
    return {name: Vocab.load(self.vocab_path(name)) for name in self.VOCABS}

  def record(self, **values: Any) -> None:
    """Store values found during preparation (skip counts, sizes) in the metadata."""
    self.info.metadata.update(values)

  def counted(self, split: str, examples):
    """Yield (key, example) with increasing keys, counting them in metadata["generated"]."""
    generated = self.info.metadata.setdefault("generated", {})
    generated[split] = 0
    for key, example in enumerate(examples):
      generated[split] = key + 1
      yield key, example

  def keep_non_empty(self, sizes: dict[str, int]) -> list[str]:
    """The splits with examples; TFDS cannot write an empty split, so the others are left
    out (and logged)."""
    empty = [split for split, n in sizes.items() if n == 0]
    if empty:
      logging.warning("%s: splits %s have no examples and are left out", self.name, empty)
    return [split for split, n in sizes.items() if n > 0]

  def _generate_examples(self, examples):
    yield from examples  # generators come ready-made from `_split_generators`


def prepare(cls: type[Builder], data_dir: str | None = None, **options: Any) -> Builder:
  """The builder for `options`, prepared once under `data_dir` and checked on read-back."""
  data_dir = str(pathlib.Path(data_dir or DEFAULT_DATA_DIR).expanduser())
  config = cls.config_for(**options)
  with _one_preparer(data_dir, f"{cls.__name__}:{config.name}"):
    builder = _prepared(cls, data_dir, config)
    damage = damaged(builder)
    if damage:  # derived data, prepared again from its source: a generator, or a user's
      source = getattr(config, "path", None)  # file (the cache's name fingerprints it, so a
      print(f"seqlab: the prepared dataset {builder.data_dir} is damaged ({damage}); "
            f"preparing it again from {source or 'its generator'}", flush=True)
      shutil.rmtree(builder.data_dir)
      builder = _prepared(cls, data_dir, config)
  check_counts(builder)
  return builder


def _prepared(cls: type[Builder], data_dir: str, config) -> Builder:
  """The builder, its data prepared (a no-op when already there)."""
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)  # TFDS warns about every non-default config
  try:
    builder = cls(data_dir=data_dir, config=config, file_format="array_record")
  finally:
    absl_logger.setLevel(level)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False)
  )
  return builder


def damaged(builder: Builder) -> str | None:
  """What is wrong with the prepared files, or None: every split's files open, hold as many
  records as the metadata says, and their first and last records read back."""
  for split, info in builder.info.splits.items():
    try:
      source = builder.as_data_source(split)
      if len(source) != info.num_examples:
        return f"split {split!r} holds {len(source)} of {info.num_examples} examples"
      if len(source):
        source[0], source[len(source) - 1]
    except Exception as error:  # noqa: BLE001 - a damaged file fails in many ways
      return f"split {split!r}: {str(error).strip().splitlines()[0][:160]}"
  return None


@contextlib.contextmanager
def _one_preparer(data_dir: str, key: str):
  """An exclusive file lock per dataset: runs started together (a sweep's workers, jobs
  on one machine) wait for the first to prepare it, then read it, instead of racing to
  rename the same folder into place."""
  os.makedirs(data_dir, exist_ok=True)
  name = hashlib.sha1(key.encode()).hexdigest()[:16]
  with open(os.path.join(data_dir, f".prepare-{name}.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def check_counts(builder: Builder) -> None:
  """Raise unless every split reads back as many examples as were generated and written."""
  generated = builder.info.metadata.get("generated", {})
  for split, info in builder.info.splits.items():
    read = len(builder.as_data_source(split))
    made = generated.get(split, info.num_examples)
    if not made == info.num_examples == read:
      raise RuntimeError(
          f"{builder.data_dir}: split {split!r} generated {made}, wrote {info.num_examples}, "
          f"reads back {read} examples; fix: delete that folder and prepare again"
      )


class Generated(Builder, skip_registration=True):
  """Generated examples: options num_train, num_validation, num_test and seed.

  Split i draws its examples one by one from the generator seeded with (seed, i), so
  a split's content depends only on the options, never on the other splits.
  """

  SPLITS = ("train", "validation", "test")

  def example(self, rng: np.random.Generator) -> dict:
    """One generated example (the stored features)."""
    raise NotImplementedError

  def _split_generators(self, dl_manager):
    del dl_manager
    c = self.builder_config
    sizes = dict(zip(self.SPLITS, [c.num_train, c.num_validation, c.num_test], strict=True))
    kept = self.keep_non_empty(sizes)
    return {
        split: self._generate_examples(self.counted(split, self._draw(i, sizes[split])))
        for i, split in enumerate(self.SPLITS) if split in kept
    }

  def _draw(self, split_index: int, size: int):
    rng = np.random.default_rng([self.builder_config.seed, split_index])
    for _ in range(size):
      yield self.example(rng)
