"""Sentence pairs for translation: a local TSV, or numbers and dates written out.

A TSV has one pair a line, "source<TAB>target" with an optional third column (the
Tatoeba / ManyThings exports: "Go.<TAB>Va !<TAB>CC-BY 2.0 ..."). Its split follows a
hash of the source sentence, so a sentence never sits in two splits. Without a path,
pairs are generated (`number_pairs`): English -> French or German; the split follows
a hash of the item (the number or date), so held-out items never appear in training.

Vocabularies (character and word level, source and target) are built from the train
split and saved next to the data; a model reads ids:

    inputs = source <eos>,  decoder_inputs = <bos> target,  targets = target <eos>
"""

import dataclasses

import tensorflow_datasets as tfds
import tqdm

from seqlab.data import builder, files
from seqlab.data.builders import number_pairs
from seqlab.data.vocab import LEVELS, Vocab

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class TranslationConfig(tfds.core.BuilderConfig):
  """Translation options; `path` None generates English -> `target_lang` number pairs."""

  path: str | None = None
  target_lang: str = "fr"
  max_number: int = 9_999
  max_ordinal: int = 999
  num_dates: int = 5_000
  join: int = 1  # generated pairs: each sentence joins 1..join items (number_pairs.joined)
  max_length: int = 200  # characters, source and target alike
  on_error: str = "raise"  # or "skip": bad rows and too-long pairs are skipped and counted
  validation_fraction: float = 0.1
  test_fraction: float = 0.1
  seed: int = 0


class TranslationPairs(builder.Builder):
  """Sentence pairs (source, target) from a TSV, or numbers and dates written out."""

  name = "translation_pairs"
  BUILDER_CONFIGS = [TranslationConfig(name="default")]
  READ_OPTIONS = {"level": "char"}
  VOCABS = tuple(f"{side}-{level}" for side in ("source", "target") for level in LEVELS)

  def features(self):
    return tfds.features.FeaturesDict({
        "source": tfds.features.Text(),
        "target": tfds.features.Text(),
        "key": tfds.features.Text(),  # the item ("cardinal:71") or the TSV's file:line
    })

  def metadata(self):
    c = self.builder_config
    files.check_on_error(c.on_error)
    if c.path is None and c.target_lang not in number_pairs.LANGS:
      raise ValueError(f"target_lang must be one of {number_pairs.LANGS}, got {c.target_lang!r}")
    if c.join < 1:
      raise ValueError(f"join (items per generated sentence, at most) must be >= 1, got {c.join}")
    if c.path is None:
      return {"source_lang": "en", "target_lang": c.target_lang}
    return {"path": str(c.path)}

  def _pairs(self, skipped: files.Skipped) -> list[tuple[str, str, str, str]]:
    """(split, key, source, target) for every pair kept."""
    c = self.builder_config
    if c.path is None:
      keys = number_pairs.item_keys(c.max_number, c.max_ordinal, c.num_dates, c.seed)
      if c.join > 1:  # the split of a joined sentence is that of its items (its first's)
        keys = number_pairs.joined(keys, c.join, c.validation_fraction, c.test_fraction, c.seed)
      rows = [
          (k.split(number_pairs.JOIN)[0], k,
           [number_pairs.write_joined(k, "en"), number_pairs.write_joined(k, c.target_lang)])
          for k in tqdm.tqdm(keys, desc=f"writing en-{c.target_lang} pairs", unit=" pairs")
      ]
    else:
      rows = []
      for path in files.list_files(c.path):
        rows += [(fields[0], where, fields) for where, fields in
                 files.read_tsv(path, (2, 3), c.on_error, skipped)]
    pairs = []
    for split_key, where, fields in rows:
      source, target = fields[0].strip(), fields[1].strip()
      longest = max(len(source), len(target))
      if source and target and longest <= c.max_length:
        split = number_pairs.split_of(split_key, c.validation_fraction, c.test_fraction)
        pairs.append((split, where, source, target))
        continue
      if not source or not target:
        reason = "rows with an empty source or target"
        message = "the row has an empty source or target; fix: fill in both sentences"
      else:
        reason = f"pairs longer than max_length={c.max_length}"
        message = (f"the pair is {longest} characters long, longer than max_length="
                   f"{c.max_length}; fix: raise max_length to >= {longest}")
      if c.on_error == "raise":
        raise files.DataError(f"{where}: {message}, or set on_error='skip' to skip such rows")
      skipped.add(reason, where)
    return pairs

  def _split_generators(self, dl_manager):
    del dl_manager
    skipped = files.Skipped()
    pairs = self._pairs(skipped)
    if not pairs:
      raise files.DataError(f"{self.builder_config.path}: no pairs left to build from")
    skipped.log("sentence pairs", len(pairs))
    self.record(skipped=dict(skipped.counts))
    train = [p for p in pairs if p[0] == "train"]
    for i, side in enumerate(("source", "target")):
      for level in LEVELS:
        vocab = Vocab.build((p[2 + i] for p in train), level)
        vocab.save(self.vocab_path(f"{side}-{level}"))
        self.record(**{f"{side}_{level}_vocab_size": len(vocab)})
    return {
        split: self._generate_examples(self.counted(split, [
            {"source": s, "target": t, "key": k} for sp, k, s, t in pairs if sp == split
        ]))
        for split in self.keep_non_empty({s: sum(p[0] == s for p in pairs) for s in SPLITS})
    }

  def encode(self, example, vocabs, level="char"):
    """inputs = source <eos>; decoder_inputs = <bos> target; targets = target <eos>."""
    source = vocabs[f"source-{level}"].encode(example["source"].decode("utf-8"), eos=True)
    target = vocabs[f"target-{level}"].encode(
        example["target"].decode("utf-8"), bos=True, eos=True
    )
    return {"inputs": source, "decoder_inputs": target[:-1], "targets": target[1:]}

  def time_keys(self, level="char"):
    del level
    return {"inputs": "source_lengths", "decoder_inputs": "lengths", "targets": "lengths"}

