"""Flax Linen models over the pure cells, built by name through the MODELS registry.

    model = models.get_model("rnn", cell="lstm", hidden_size=128, output_size=65)
"""

import dataclasses
from typing import Any

import flax.linen as nn

from seqlab.models.bidirectional import Bidirectional
from seqlab.models.deep import DeepRNN
from seqlab.models.esn import ESN
from seqlab.models.grid import GridRNN
from seqlab.models.jordan import JordanRNN
from seqlab.models.nplm import NPLM
from seqlab.models.recurrent import Recurrent
from seqlab.models.recursive import TreeRNN
from seqlab.models.rnn import RNN
from seqlab.models.rnn_lm import RNNLM
from seqlab.models.seq2seq import Seq2Seq
from seqlab.models.tdnn import TDNN
from seqlab.models.transformer import Transformer, TransformerClassifier, TransformerLM

MODELS: dict[str, type[nn.Module]] = {
    "rnn": RNN,
    "rnn_lm": RNNLM,
    "jordan": JordanRNN,
    "bidirectional": Bidirectional,
    "deep": DeepRNN,
    "seq2seq": Seq2Seq,
    "tree": TreeRNN,
    "grid": GridRNN,
    "esn": ESN,
    "tdnn": TDNN,
    "nplm": NPLM,
    "transformer": Transformer,
    "transformer_lm": TransformerLM,
    "transformer_classifier": TransformerClassifier,
}


def model_fields(name: str) -> dict[str, dataclasses.Field]:
  """The constructor fields of model `name` (without flax's parent/name)."""
  cls = get_model_class(name)
  return {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in ("parent", "name")}


def get_model_class(name: str) -> type[nn.Module]:
  """The model class registered as `name`; raises listing the known names."""
  try:
    return MODELS[name]
  except KeyError:
    raise ValueError(f"unknown model {name!r}; known models: {sorted(MODELS)}") from None


def get_model(name: str, **kwargs: Any) -> nn.Module:
  """Model `name` built from keyword fields; unknown or missing fields are named."""
  fields = model_fields(name)
  unknown = sorted(set(kwargs) - set(fields))
  if unknown:
    raise ValueError(f"unknown field(s) {unknown} for model {name!r}; its fields: {sorted(fields)}")
  missing = sorted(
      k for k, f in fields.items()
      if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
      and k not in kwargs
  )
  if missing:
    raise ValueError(f"model {name!r} needs field(s) {missing}")
  return get_model_class(name)(**kwargs)


__all__ = ["MODELS", "Recurrent", "get_model", "get_model_class", "model_fields", *[
    c.__name__ for c in MODELS.values()]]
