"""English / French / German sentence pairs generated with num2words and babel.

Three kinds of item, each written out in words in both languages:

    cardinal:71          seventy-one              soixante et onze / einundsiebzig
    ordinal:21           twenty-first             vingt et unième / einundzwanzigste
    date:1999-07-21      July twenty-first, nineteen ninety-nine
                         le vingt et un juillet mille neuf cent quatre-vingt-dix-neuf
                         der einundzwanzigste Juli neunzehnhundertneunundneunzig

Long sentences (`joined`): several items of one split written one after the other,
separated by SEPARATOR ("seventy-one; July twenty-first, nineteen ninety-nine"), the
source lengths of Bahdanau et al.'s (2015) length study.

German puts the units before the tens ("einundsiebzig" = one-and-seventy) and French
and German put the day before the month, so alignment is not monotone. Every item has
a key; the split of an item is decided by a hash of its key, so a held-out number or
date never appears in training.
"""

import datetime
import hashlib

import numpy as np
from babel import dates
from num2words import num2words

LANGS = ("fr", "de")
SEPARATOR = "; "  # between the items of a joined sentence, in every language
JOIN = "|"  # between the item keys of a joined sentence's key


def _month(date: datetime.date, lang: str) -> str:
  return dates.get_month_names("wide", locale=lang)[date.month]


def write_date(date: datetime.date, lang: str) -> str:
  """A date written out in words in English ("en"), French or German."""
  if lang == "en":
    day = num2words(date.day, lang="en", to="ordinal")
    return f"{_month(date, 'en')} {day}, {num2words(date.year, lang='en', to='year')}"
  if lang == "fr":
    day = "premier" if date.day == 1 else num2words(date.day, lang="fr")
    return f"le {day} {_month(date, 'fr')} {num2words(date.year, lang='fr')}"
  if lang == "de":
    day = num2words(date.day, lang="de", to="ordinal")
    return f"der {day} {_month(date, 'de')} {num2words(date.year, lang='de', to='year')}"
  raise ValueError(f"unknown language {lang!r}; known: ['en', {', '.join(map(repr, LANGS))}]")


def write(key: str, lang: str) -> str:
  """The item `key` ("cardinal:71", "ordinal:21", "date:1999-07-21") written in `lang`."""
  kind, value = key.split(":", 1)
  if kind == "cardinal":
    return num2words(int(value), lang=lang)
  if kind == "ordinal":
    return num2words(int(value), lang=lang, to="ordinal")
  if kind == "date":
    return write_date(datetime.date.fromisoformat(value), lang)
  raise ValueError(f"unknown item kind {kind!r} in {key!r}")


def item_keys(max_number: int, max_ordinal: int, num_dates: int, seed: int) -> list[str]:
  """Cardinals 0..max_number, ordinals 1..max_ordinal and distinct dates in 1800..2099."""
  first, last = datetime.date(1800, 1, 1).toordinal(), datetime.date(2099, 12, 31).toordinal()
  rng = np.random.default_rng(seed)
  days = np.sort(rng.choice(last - first + 1, size=num_dates, replace=False)) + first
  return (
      [f"cardinal:{n}" for n in range(max_number + 1)]
      + [f"ordinal:{n}" for n in range(1, max_ordinal + 1)]
      + [f"date:{datetime.date.fromordinal(int(d)).isoformat()}" for d in days]
  )


def split_of(key: str, validation_fraction: float, test_fraction: float) -> str:
  """"test", "validation" or "train", from a hash of the key (stable across runs)."""
  u = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64
  if u < test_fraction:
    return "test"
  if u < test_fraction + validation_fraction:
    return "validation"
  return "train"


def write_joined(key: str, lang: str) -> str:
  """A joined key ("cardinal:71|date:1999-07-21") written in `lang`, items separated."""
  return SEPARATOR.join(write(k, lang) for k in key.split(JOIN))


def joined(keys: list[str], max_items: int, validation_fraction: float, test_fraction: float,
           seed: int) -> list[str]:
  """Joined keys: per split, as many sentences as the split has items, each of 1..max_items
  (uniform) distinct items of that split, so held-out items stay held out."""
  rng = np.random.default_rng([seed, max_items])
  by_split: dict[str, list[str]] = {}
  for k in keys:
    by_split.setdefault(split_of(k, validation_fraction, test_fraction), []).append(k)
  out = []
  for split in sorted(by_split):
    items = by_split[split]
    for _ in items:
      count = min(int(rng.integers(1, max_items + 1)), len(items))
      out.append(JOIN.join(items[j] for j in rng.choice(len(items), count, replace=False)))
  return out
