"""English -> French translation of numbers and dates written out in words, by three models.

Characters by default; an LSTM encoder-decoder with attention (Bahdanau et al. 2015), without
attention (Cho et al. 2014; Sutskever et al. 2014), or the Transformer baseline (Vaswani et
al. 2017).

Launch:    python -m seqlab.main --config=configs/translation.py --workdir=runs/translation
Translate: python -m seqlab.main --config=configs/translation.py --workdir=runs/translation \
               --mode=translate --sentence="three hundred and twelve" \
               --sentence="March first, nineteen eighty-four"
Variants:  model in {attention, noattention, transformer}; attention in {additive, dot, general};
           e.g. configs/translation.py:model=transformer, configs/translation.py:attention=dot;
           data in {items, long}: long = sentences of 1..8 items joined by "; " (1-79 words,
           4-358 characters), word level: configs/translation.py:model=noattention,data=long
           cell (recurrent models): a seqlab.config.CELL_PRESETS name; a bidirectional
           encoder: --config.model.bidirectional=True
Your data: --config.task.options.path=pairs.tsv (source<TAB>target[<TAB>note] per line, UTF-8,
           e.g. a ManyThings/Tatoeba file) --config.task.options.level=word (or char)
           --config.task.options.max_length=200 (characters; longer pairs raise, or are
           skipped and counted with --config.task.options.on_error=skip)
Scheduled sampling (recurrent decoder): --config.problem.teacher_forcing=inverse_sigmoid
           --config.problem.teacher_forcing_k=300 (or linear with k = slope, exponential k < 1)
Runtime:   1000 steps, batch 64, characters, measured on 2 CPU cores shared with other jobs
           (load ~6): attention ~4 min (4.4 steps/s), noattention ~3 min (7.3 steps/s),
           transformer ~5.5 min (3.2 steps/s), data preparation (~15 s, first run) and the
           final test decoding included; an idle machine is faster.
Expected:  test BLEU (sacrebleu, beam 4) attention ~95.7 (greedy 94.8), noattention ~20.6
           (it needs ~3x the steps: 92.5 after 3000), transformer ~99.9; the mean
           log P(y | x) of the beam outputs is above greedy's. After training: a few test
           translations, workdir/attention.png and workdir/translation_report.json.
"""

from ml_collections.config_dict import placeholder

from seqlab import config as base

LONG_MAX_TOKENS = 96  # data=long: decoding limit in words (the longest French target: 89)


def get_config(arg: str | None = None):
  """The translation experiment; `arg` = 'model=attention|noattention|transformer,attention=...,
  data=items|long,cell=...'."""
  variant = base.parse_variant(arg, {"model": "attention", "attention": "additive",
                                     "data": "items", "cell": "lstm"})
  if variant["model"] not in ("attention", "noattention", "transformer"):
    raise ValueError(f"unknown model variant {variant['model']!r}; known: attention, "
                     "noattention, transformer")
  if variant["data"] not in ("items", "long"):
    raise ValueError(f"unknown data variant {variant['data']!r}; known: items, long")
  c = base.base_config()
  c.problem = base.problem("translation")
  c.task.name = "translation_pairs"
  c.task.options.path = placeholder(str)  # a TSV of pairs; None: generated number pairs
  c.task.options.target_lang = "fr"
  c.task.options.level = "char"  # or "word"
  c.task.options.max_length = 200  # characters, source and target alike
  c.task.options.on_error = "raise"  # or "skip": bad rows and too-long pairs are counted
  c.task.options.max_number = 9_999  # cardinals 0..max_number (smaller: quicker tests)
  c.task.options.max_ordinal = 999  # ordinals 1..max_ordinal
  c.task.options.num_dates = 5_000  # dates in 1800..2099

  c.optimizer.learning_rate = 3e-3
  c.optimizer.schedule = "cosine"
  c.optimizer.decay_steps = 1000
  c.optimizer.end_learning_rate = 1e-4
  c.optimizer.clip_norm = 1.0

  if variant["model"] == "transformer":
    c.model.name = "transformer"
    c.model.d_model = 64
    c.model.num_heads = 4
    c.model.num_layers = 2
    c.model.d_ff = 128
    c.model.dropout_rate = 0.0
    c.model.vocab_size = placeholder(int)  # fixed by the data
    c.model.output_size = placeholder(int)  # fixed by the data
    c.optimizer.warmup_steps = 200
    c.optimizer.decay_steps = 800  # warmup + decay = num_steps
  else:
    c.model.name = "seq2seq"
    c.model.cell, c.model.cell_options = base.cell_preset(variant["cell"])
    c.model.bidirectional = False
    c.model.hidden_size = 128
    c.model.embed_size = 32
    c.model.attention = (variant["attention"] if variant["model"] == "attention"
                         else placeholder(str))  # None: no attention
    c.model.attention_size = 32  # the additive score's MLP width (its tanh dominates on CPU)
    c.model.length_strategy = "eos"
    c.model.max_length = 80
    c.model.vocab_size = placeholder(int)  # fixed by the data
    c.model.output_size = placeholder(int)  # fixed by the data

  c.train.batch_size = 64
  c.train.num_steps = 1000
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.eval_batches = 4
  c.train.checkpoint_every = 500
  c.train.pad_multiple = 16

  c.decode.max_len = 80  # characters: the longest French target is 70 + <eos>
  c.decode.beam_width = 4
  c.decode.length_penalty = 0.6
  if variant["data"] == "long":  # sentences of 1..8 items, in words: Bahdanau et al.'s lengths
    c.task.options.join = 8
    c.task.options.level = "word"
    c.task.options.max_length = 400  # characters
    c.decode.max_len = LONG_MAX_TOKENS
    if variant["model"] != "transformer":
      c.model.max_length = LONG_MAX_TOKENS
  return c
