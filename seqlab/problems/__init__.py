"""Task families: what the runner trains for each task (model inputs, loss, metrics).

PROBLEMS maps a task name (of seqlab.data) to the problem that trains it.
"""

from seqlab.problems.language_model import LanguageModel
from seqlab.problems.tagging import Tagging

PROBLEMS = {
    "copy": Tagging,
    "char_corpus": LanguageModel,
}


def build_problem(config):
  """The problem for config.task.name, built from the config; raises listing known tasks."""
  name = config.task.name
  if name not in PROBLEMS:
    raise ValueError(
        f"config.task.name={name!r} has no training problem; known: {sorted(PROBLEMS)}"
    )
  return PROBLEMS[name](config)
