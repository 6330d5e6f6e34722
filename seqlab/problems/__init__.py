"""Task families: what the runner trains for each task (model inputs, loss, metrics).

PROBLEMS maps a task name (of seqlab.data) to the problem class that trains it, as
"module:Class" so that a problem's imports load only when it is used.
"""

import importlib

PROBLEMS = {
    "copy": "seqlab.problems.tagging:Tagging",
    "char_corpus": "seqlab.problems.language_model:LanguageModel",
    "adding": "seqlab.problems.regression:Regression",
    "parity": "seqlab.problems.classification:Classification",
    "bracket_depth": "seqlab.problems.classification:Classification",
    "sequential_digits": "seqlab.problems.classification:Classification",
    "mackey_glass": "seqlab.problems.series:SeriesPrediction",
    "narma10": "seqlab.problems.series:SeriesPrediction",
    "sine_mixture": "seqlab.problems.series:SeriesPrediction",
    "digits_caption": "seqlab.problems.captioning:Captioning",
    "translation_pairs": "seqlab.problems.translation:Translation",
    "trees": "seqlab.problems.tree:TreeClassification",
}


def build_problem(config):
  """The problem for config.task.name, built from the config; raises listing known tasks."""
  name = config.task.name
  if name not in PROBLEMS:
    raise ValueError(
        f"config.task.name={name!r} has no training problem; known: {sorted(PROBLEMS)}"
    )
  module, cls = PROBLEMS[name].split(":")
  return getattr(importlib.import_module(module), cls)(config)
