"""Character- and word-level vocabularies with pad/bos/eos/unk, saved as JSON.

    ids 0..3 = <pad>, <bos>, <eos>, <unk>; ids 4.. = tokens, most frequent first

Character level: a token is one Unicode character, decode joins with "". Word level:
a token is a run of word characters or one punctuation mark (`\\w+|[^\\w\\s]`), decode
joins with " ".
"""

import collections
import json
import pathlib
import re
from collections.abc import Iterable, Sequence

import numpy as np

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
LEVELS = ("char", "word")
_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str, level: str) -> list[str]:
  """The tokens of `text` at `level` ("char" or "word")."""
  if level == "char":
    return list(text)
  if level == "word":
    return _WORD.findall(text)
  raise ValueError(f"unknown vocabulary level {level!r}; known levels: {list(LEVELS)}")


class Vocab:
  """A token <-> id table; ids 0..3 are the specials pad, bos, eos, unk."""

  def __init__(self, tokens: Sequence[str], level: str):
    tokenize("", level)  # checks the level
    tokens = list(tokens)
    if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
      tokens = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
    if len(set(tokens)) != len(tokens):
      raise ValueError("vocabulary tokens must be unique")
    self.level = level
    self.tokens = tokens
    self.index = {t: i for i, t in enumerate(tokens)}
    self._table = None
    if level == "char":
      # codepoint -> id lookup table for fast character encoding
      chars = tokens[len(SPECIALS):]
      top = max((ord(c) for c in chars), default=0)
      self._table = np.full(top + 1, UNK, np.int32)
      for c in chars:
        self._table[ord(c)] = self.index[c]

  @classmethod
  def build(
      cls, texts: Iterable[str], level: str, min_count: int = 1, max_size: int | None = None
  ) -> "Vocab":
    """The tokens seen at least `min_count` times, most frequent first (ties by token)."""
    counts = collections.Counter()
    for text in texts:
      counts.update(tokenize(text, level))
    kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
    if max_size is not None:
      kept = kept[: max(0, max_size - len(SPECIALS))]
    return cls(list(SPECIALS) + kept, level)

  def __len__(self) -> int:
    return len(self.tokens)

  def __eq__(self, other: object) -> bool:
    return isinstance(other, Vocab) and (self.level, self.tokens) == (other.level, other.tokens)

  def __repr__(self) -> str:
    return f"Vocab(level={self.level!r}, size={len(self)})"

  def encode(self, text: str, bos: bool = False, eos: bool = False) -> np.ndarray:
    """int32 ids of the tokens of `text` (unknown tokens -> <unk>), optionally framed."""
    if self._table is not None:
      codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
      known = codes < len(self._table)
      ids = np.where(known, self._table[np.where(known, codes, 0)], UNK).astype(np.int32)
    else:
      ids = np.array([self.index.get(t, UNK) for t in tokenize(text, self.level)], np.int32)
    if bos or eos:
      ids = np.concatenate([[BOS] * bos, ids, [EOS] * eos]).astype(np.int32)
    return ids

  def decode(self, ids: Iterable[int]) -> str:
    """The text of `ids`: stops at the first <eos>, leaves out <pad> and <bos>."""
    out = []
    for i in np.asarray(ids).reshape(-1).tolist():
      if i == EOS:
        break
      if i not in (PAD, BOS):
        out.append(self.tokens[i])
    return ("" if self.level == "char" else " ").join(out)

  def save(self, path: str | pathlib.Path) -> None:
    """Write the vocabulary as UTF-8 JSON."""
    data = {"level": self.level, "tokens": self.tokens}
    pathlib.Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=0), "utf-8")

  @classmethod
  def load(cls, path: str | pathlib.Path) -> "Vocab":
    """Read a vocabulary written by `save`."""
    data = json.loads(pathlib.Path(path).read_text("utf-8"))
    return cls(data["tokens"], data["level"])
