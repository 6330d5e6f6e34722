"""Time series prediction: Mackey-Glass (tau = 17), NARMA10 and sine mixtures.

Each example is a window of `window` steps, inputs [W, 1] and targets [W, 1]:

    mackey_glass:  inputs x(t),  targets x(t + horizon)      (one long series)
    narma10:       inputs u(t),  targets y(t + 1)            (one long series)
    sine_mixture:  inputs s(t),  targets s(t + horizon)      (a new mixture per window)

A long series is split by position (train, then validation, then test: no window
crosses a split) and cut into windows every `stride` steps. The metadata holds each
split's baseline MSE: persistence (predict the input) for Mackey-Glass and sines,
the target variance (predict the mean) for NARMA10.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from seqlab.data import builder, files
from seqlab.data.builders import series as series_lib

SERIES = ("mackey_glass", "narma10", "sine_mixture", "csv")
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class TimeSeriesConfig(tfds.core.BuilderConfig):
  """Time-series options (the split fractions are 0.8, 0.1, 0.1 of num_samples)."""

  series: str = "mackey_glass"
  num_samples: int = 20_000
  window: int = 100
  stride: int = 10
  horizon: int = 1
  tau: float = 17.0
  num_components: int = 3
  seed: int = 0
  path: str | None = None  # series "csv": a comma-separated file
  column: str = "0"  # series "csv": the column's header name, or its 0-based index
  on_error: str = "raise"  # series "csv": or "skip" rows without a number (counted)


def windows(inputs: np.ndarray, targets: np.ndarray, window: int, stride: int):
  """(start, inputs[start:start+W], targets[start:start+W]) for start = 0, stride, ..."""
  for start in range(0, len(inputs) - window + 1, stride):
    yield start, inputs[start:start + window], targets[start:start + window]


class TimeSeries(builder.Builder):
  """Mackey-Glass, NARMA10 and sine-mixture windows for sequence prediction."""

  name = "time_series"
  BUILDER_CONFIGS = [TimeSeriesConfig(name="default")]
  TIME_KEYS = {"inputs": "lengths", "targets": "lengths"}

  def features(self):
    c = self.builder_config
    if c.series not in SERIES:
      raise ValueError(f"unknown series {c.series!r}; known series: {list(SERIES)}")
    feats = {
        "inputs": tfds.features.Tensor(shape=(None, 1), dtype=np.float32),
        "targets": tfds.features.Tensor(shape=(None, 1), dtype=np.float32),
        "start": tfds.features.Scalar(dtype=np.int64),
    }
    if c.series == "sine_mixture":
      for k in ("amplitudes", "frequencies", "phases"):
        feats[k] = tfds.features.Tensor(shape=(c.num_components,), dtype=np.float32)
    return tfds.features.FeaturesDict(feats)

  def metadata(self):
    return {"num_inputs": 1, "num_outputs": 1, "baseline_metric": self._baseline_name()}

  def _baseline_name(self) -> str:
    if self.builder_config.series == "narma10":
      return "mean squared error of predicting the split's mean"
    return "mean squared error of predicting the input (persistence)"

  def _series(self) -> tuple[np.ndarray, np.ndarray]:
    """The whole (inputs, targets) series: Mackey-Glass, NARMA10 or a CSV column x, with
    targets x_{t+horizon} (the first num_samples steps of a CSV column at most)."""
    c = self.builder_config
    if c.series == "csv":
      if c.path is None:
        raise ValueError("series 'csv' needs the task's `path` (and `column`)")
      skipped = files.Skipped()
      x = files.read_csv_column(c.path, c.column, c.on_error, skipped)[: c.num_samples + c.horizon]
      skipped.log("rows of the CSV", len(x))
      if len(x) < 10 * c.horizon + c.window:
        raise files.DataError(f"{c.path}: column {c.column!r} has {len(x)} numbers, too few for "
                              f"windows of {c.window}; fix: a smaller `window` or more rows")
      self.record(skipped=dict(skipped.counts), num_values=len(x))
      return x[: -c.horizon], x[c.horizon:]
    if c.series == "mackey_glass":
      x = series_lib.mackey_glass(c.num_samples + c.horizon, tau=c.tau)
      return x[: c.num_samples], x[c.horizon:]
    u = np.random.default_rng(c.seed).uniform(0.0, 0.5, c.num_samples)
    return u, series_lib.narma10(u)

  def _split_generators(self, dl_manager):
    del dl_manager
    c = self.builder_config
    num_samples = c.num_samples
    if c.series != "sine_mixture":
      inputs, targets = self._series()
      num_samples = len(inputs)
    bounds = np.round(np.array([0.0, 0.8, 0.9, 1.0]) * num_samples).astype(int)
    shortest = int(np.diff(bounds).min())  # validation and test: a tenth each
    if c.series != "sine_mixture" and shortest < c.window:
      source = f"{c.path}: column {c.column!r}" if c.series == "csv" else f"series {c.series!r}"
      raise files.DataError(
          f"{source}: {num_samples} steps give validation and test splits of {shortest} "
          f"steps, shorter than one window of {c.window}; fix: a `window` of at most "
          f"{shortest}, or {10 * c.window} steps or more (num_samples, or more rows)")
    out, baselines = {}, {}
    for i, split in enumerate(SPLITS):
      lo, hi = bounds[i], bounds[i + 1]
      if c.series == "sine_mixture":
        examples = list(self._sines(i, hi - lo))
      else:
        examples = [
            {"inputs": x[:, None].astype(np.float32), "targets": y[:, None].astype(np.float32),
             "start": lo + s}
            for s, x, y in windows(inputs[lo:hi], targets[lo:hi], c.window, c.stride)
        ]
      baselines[split] = self._baseline(examples)
      out[split] = self._generate_examples(self.counted(split, examples))
    self.record(baseline=baselines)
    return out

  def _sines(self, split_index: int, length: int):
    """One fresh mixture per window position of a split of `length` steps."""
    c = self.builder_config
    rng = np.random.default_rng([c.seed, split_index])
    t = np.arange(c.window + c.horizon)
    for start in range(0, length - c.window + 1, c.stride):
      params = {  # float32, as stored, so the stored params give the stored series
          "amplitudes": rng.uniform(0.5, 1.0, c.num_components).astype(np.float32),
          "frequencies": rng.uniform(0.01, 0.1, c.num_components).astype(np.float32),
          "phases": rng.uniform(0.0, 2 * np.pi, c.num_components).astype(np.float32),
      }
      s = series_lib.sine_mixture(t, **params).astype(np.float32)[:, None]
      yield {"inputs": s[: c.window], "targets": s[c.horizon:], "start": start, **params}

  def _baseline(self, examples: list[dict]) -> float:
    if not examples:
      return float("nan")
    x = np.concatenate([e["inputs"] for e in examples]).astype(np.float64)
    y = np.concatenate([e["targets"] for e in examples]).astype(np.float64)
    if self.builder_config.series == "narma10":
      return float(np.var(y))
    return float(np.mean((y - x) ** 2))

  def encode(self, example, vocabs):
    """Stored example -> inputs [W, 1], targets [W, 1] float32."""
    del vocabs
    return {"inputs": example["inputs"], "targets": example["targets"]}
