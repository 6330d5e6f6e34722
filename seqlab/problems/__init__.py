"""Task families: what the runner trains for each task (model inputs, loss, metrics).

A config names its problem explicitly, `config.problem.name`, with the fields that problem
reads (`seqlab.config.problem`, PROBLEM_FIELDS). PROBLEMS maps the name to its class as
"module:Class", so that a problem's imports load only when it is used.
"""

import importlib

PROBLEMS = {
    "tagging": "seqlab.problems.tagging:Tagging",
    "language_model": "seqlab.problems.language_model:LanguageModel",
    "classification": "seqlab.problems.classification:Classification",
    "regression": "seqlab.problems.regression:Regression",
    "series": "seqlab.problems.series:SeriesPrediction",
    "captioning": "seqlab.problems.captioning:Captioning",
    "translation": "seqlab.problems.translation:Translation",
    "tree": "seqlab.problems.tree:TreeClassification",
    "word_language_model": "seqlab.problems.word_language_model:WordLanguageModel",
}


def build_problem(config):
  """The problem config.problem.name, built from the config; raises listing known problems."""
  name = config.problem.name
  if name not in PROBLEMS:
    raise ValueError(f"config.problem.name={name!r} is not a problem; known: {sorted(PROBLEMS)}")
  module, cls = PROBLEMS[name].split(":")
  return getattr(importlib.import_module(module), cls)(config)
