"""Word-level language modelling with a large-vocabulary head (`models.RNNLM`).

The char-LM problem with three differences: tokens are words (the `word_corpus` task,
the vocabulary cut to the `max_vocab` most frequent train words, the rest <unk>); the
model's unigram counts come from the train split; and the training loss is the head's
(sampled softmax: K negatives drawn once per window, shared by its B x T positions)
while evaluation scores the exact, normalised -log P(w | h), so

    perplexity = exp(-1/N sum_t log P(w_{t+1} | w_<=t))

compares the full, sampled and hierarchical heads on equal terms.
"""

import numpy as np

from seqlab.problems.language_model import LanguageModel


class WordLanguageModel(LanguageModel):
  """Next-word prediction on a text stream with a full, sampled or hierarchical head."""

  unit = "word"

  def __init__(self, config):
    if config.model.name != "rnn_lm":
      raise ValueError(f"task {config.task.name!r} trains config.model.name='rnn_lm' (a "
                       f"recurrent LM with a head), got {config.model.name!r}")
    super().__init__(config)
    self.recurrent = True  # rnn_lm: start/step like the rnn

  def model_sizes(self):
    size = len(self.vocab)
    # Add-one counts: every id, the specials included, has a class and a nonzero Q(w).
    counts = np.bincount(self.task.token_stream("train"), minlength=size) + 1
    return {"vocab_size": size, "counts": tuple(float(n) for n in counts)}

  def _train_step(self, params, carry, token):
    """(carry, token) -> (carry, h_t): the head scores h_t in `_step_loss`."""
    return self.model.bind(params).hidden_step(carry, token)

  def _train_sequence(self, params, carry, tokens):
    """`_train_step` over a whole window: (carry, tokens) -> (carry, h [B, T, H])."""
    return self.model.apply(params, carry, tokens, method="hidden_run")

  def _step_loss(self, rng):
    """The head's training loss with the window's key, or the exact nll (rng None)."""
    def step_loss(params, h, target):
      model = self.model.bind(params)
      nll = model.head_nll(h, target) if rng is None else model.head_loss(h, target, rng)
      return nll.mean()
    return step_loss
