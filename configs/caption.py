"""Captioning in miniature: an RNN spells the name of an 8x8 digit image, one character per step.

The image is the context vector of the one-to-many pattern, x_t = [image; embed(y_{t-1})];
teacher-forced training, greedy captions for the exact-match metric.

Launch:   python -m seqlab.main --config=configs/caption.py --workdir=runs/caption
Variants: cell in {elman, irnn, lstm, gru}: configs/caption.py:cell=gru ; scheduled
          sampling: --config.problem.teacher_forcing=inverse_sigmoid
          --config.problem.teacher_forcing_k=200
Runtime:  ~25 s on 2 CPU cores (1500 steps, H=64).
Expected: validation token_accuracy ~0.99 and exact_match ~0.97 (the greedy caption spells
          the digit's name and stops); the run ends by captioning 10 test images.
"""


from seqlab import config as base


def get_config(arg: str | None = None):
  """The captioning experiment; `arg` = 'cell=...'."""
  variant = base.parse_variant(arg, {"cell": "lstm"})
  c = base.base_config()
  c.problem = base.problem("captioning")
  c.task.name = "digits_caption"

  c.model = base.rnn_model(variant["cell"], hidden_size=64, embed_size=16,
                           pattern="one_to_many")

  c.optimizer.learning_rate = 3e-3
  c.optimizer.clip_norm = 1.0
  c.train.batch_size = 32
  c.train.num_steps = 1500
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.eval_batches = 8  # the whole validation split (180 images)
  c.train.checkpoint_every = 500
  return c
