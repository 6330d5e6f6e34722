"""models.get_model: every registered model builds by name; misses are named."""

import pytest

from seqlab import models


def test_every_registered_model_has_a_docstring_and_fields():
  for name, cls in models.MODELS.items():
    assert cls.__doc__, name
    assert models.model_fields(name), name


def test_get_model_builds_with_the_given_fields():
  model = models.get_model("rnn", cell="gru", hidden_size=7, output_size=3)
  assert (model.cell, model.hidden_size, model.output_size) == ("gru", 7, 3)


def test_errors_name_the_culprit():
  with pytest.raises(ValueError, match=r"unknown model 'lstm_lm'; known models: \[.*'rnn'"):
    models.get_model("lstm_lm")
  with pytest.raises(ValueError, match=r"unknown field\(s\) \['hiden_size'\] for model 'rnn'"):
    models.get_model("rnn", cell="gru", hiden_size=7, output_size=3)
  with pytest.raises(ValueError, match=r"model 'rnn' needs field\(s\) \['hidden_size'"):
    models.get_model("rnn", cell="gru")
