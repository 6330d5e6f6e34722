"""The TASKS registry: a task name -> its builder and the options its name fixes."""

from typing import Any

from seqlab.data import builder as builder_lib
from seqlab.data.builders import (
    adding,
    bracket_depth,
    char_corpus,
    copy_task,
    digits,
    parity,
    time_series,
    translation_pairs,
    trees,
)
from seqlab.data.task import Task

TASKS: dict[str, tuple[type[builder_lib.Builder], dict[str, Any]]] = {
    "copy": (copy_task.Copy, {}),
    "adding": (adding.Adding, {}),
    "char_corpus": (char_corpus.CharCorpus, {}),
    "word_corpus": (char_corpus.CharCorpus, {"level": "word"}),
    "translation_pairs": (translation_pairs.TranslationPairs, {}),
    "sequential_digits": (digits.SequentialDigits, {}),
    "digits_caption": (digits.DigitsCaption, {}),
    "parity": (parity.Parity, {}),
    "bracket_depth": (bracket_depth.BracketDepth, {}),
    "time_series": (time_series.TimeSeries, {}),
    "mackey_glass": (time_series.TimeSeries, {"series": "mackey_glass"}),
    "narma10": (time_series.TimeSeries, {"series": "narma10"}),
    "sine_mixture": (time_series.TimeSeries, {"series": "sine_mixture"}),
    "csv_series": (time_series.TimeSeries, {"series": "csv"}),
    "trees": (trees.Trees, {}),
}


def get_builder_class(name: str) -> tuple[type[builder_lib.Builder], dict[str, Any]]:
  """The builder class and fixed options of task `name`; raises listing the known names."""
  try:
    return TASKS[name]
  except KeyError:
    raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}") from None


def get_task(name: str, data_dir: str | None = None, **options: Any) -> Task:
  """Task `name` with `options`, prepared under `data_dir` on first use (then cached)."""
  cls, fixed = get_builder_class(name)
  clash = {k: v for k, v in options.items() if k in fixed and v != fixed[k]}
  if clash:
    raise ValueError(f"task {name!r} fixes {fixed}; got {clash}")
  read = {k: options.pop(k) for k in list(options) if k in cls.READ_OPTIONS}
  builder = builder_lib.prepare(cls, data_dir, **{**options, **fixed})
  return Task(name, builder, builder.load_vocabs(), {**cls.READ_OPTIONS, **read})
