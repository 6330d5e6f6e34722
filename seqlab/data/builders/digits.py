"""The 8x8 handwritten digits that scikit-learn ships (1797 images, UCI optdigits test set).

    sequential_digits: read an image row by row, inputs [8, 8] (or pixel by pixel,
                       [64, 1]); target = the digit (many-to-one classification)
    digits_caption:    the image as one context vector [64]; target = the digit's
                       name written out, "seven" (one-to-many: captioning in miniature)

Pixels are scaled from 0..16 to [0, 1]. Both tasks split the images the same way: a
permutation drawn from `seed`, 70% train, 10% validation, 20% test.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds
from sklearn import datasets

from seqlab.data import builder
from seqlab.data.vocab import Vocab

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS = {"train": (0.0, 0.7), "validation": (0.7, 0.8), "test": (0.8, 1.0)}


@dataclasses.dataclass
class DigitsConfig(tfds.core.BuilderConfig):
  """Digits options: the split permutation's seed."""

  seed: int = 0


def split_indices(num_images: int, seed: int) -> dict[str, np.ndarray]:
  """Image indices of each split: consecutive slices of one seeded permutation."""
  order = np.random.default_rng(seed).permutation(num_images)
  return {
      split: np.sort(order[round(lo * num_images):round(hi * num_images)])
      for split, (lo, hi) in SPLITS.items()
  }


class _Digits(builder.Builder, skip_registration=True):
  """Shared generation: images and labels, split by a seeded permutation."""

  BUILDER_CONFIGS = [DigitsConfig(name="default")]

  def _split_generators(self, dl_manager):
    del dl_manager
    digits = datasets.load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    self.prepare_extra()
    return {
        split: self._generate_examples(self.counted(split, (
            self.make_example(int(i), images[i], int(labels[i])) for i in idx
        )))
        for split, idx in split_indices(len(labels), self.builder_config.seed).items()
    }

  def prepare_extra(self) -> None:
    """Anything to save next to the data before the examples are written."""

  def make_example(self, index: int, image: np.ndarray, label: int) -> dict:
    raise NotImplementedError


class SequentialDigits(_Digits):
  """8x8 digits read row by row (or pixel by pixel): many-to-one classification."""

  name = "sequential_digits"
  READ_OPTIONS = {"order": "rows"}

  def features(self):
    return tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(8, 8), dtype=np.float32),
        "label": tfds.features.ClassLabel(names=list(NAMES)),
        "index": tfds.features.Scalar(dtype=np.int64),
    })

  def metadata(self):
    return {"num_classes": 10, "baseline": 0.1, "baseline_metric": "accuracy of chance"}

  def make_example(self, index, image, label):
    return {"image": image, "label": label, "index": index}

  def time_keys(self, order="rows"):
    del order
    return {"inputs": "lengths"}

  def encode(self, example, vocabs, order="rows"):
    """inputs [8, 8] rows as steps ("rows") or [64, 1] ("pixels"); targets [] the digit."""
    del vocabs
    if order not in ("rows", "pixels"):
      raise ValueError(f"order must be 'rows' or 'pixels', got {order!r}")
    image = example["image"]
    inputs = image if order == "rows" else image.reshape(64, 1)
    return {"inputs": inputs, "targets": np.int32(example["label"])}


class DigitsCaption(_Digits):
  """8x8 digits as a context vector, captioned with the digit's name: one-to-many."""

  name = "digits_caption"
  VOCABS = ("caption",)
  TIME_KEYS = {"decoder_inputs": "lengths", "targets": "lengths"}

  def features(self):
    return tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(64,), dtype=np.float32),
        "caption": tfds.features.Text(),
        "label": tfds.features.ClassLabel(names=list(NAMES)),
        "index": tfds.features.Scalar(dtype=np.int64),
    })

  def metadata(self):
    return {"num_inputs": 64, "vocab_size": len(Vocab.build(NAMES, "char"))}

  def prepare_extra(self):
    Vocab.build(NAMES, "char").save(self.vocab_path("caption"))

  def make_example(self, index, image, label):
    return {"image": image.reshape(64), "caption": NAMES[label], "label": label, "index": index}

  def encode(self, example, vocabs):
    """inputs [64]; decoder_inputs = <bos> name, targets = name <eos> (char ids)."""
    ids = vocabs["caption"].encode(example["caption"].decode("utf-8"), bos=True, eos=True)
    return {"inputs": example["image"], "decoder_inputs": ids[:-1], "targets": ids[1:]}
