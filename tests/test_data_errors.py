"""Bad input raises an error naming the file, the line and the fix, or is skipped and logged."""

import logging
import re

import pytest

from seqlab import data
from seqlab.data import DataError


@pytest.fixture
def data_dir(tmp_path):
  return str(tmp_path / "data")


def write_tsv(path, lines: list[bytes]) -> str:
  path.write_bytes(b"\n".join(lines) + b"\n")
  return str(path)


GOOD = [b"Go.\tVa !", b"Hi.\tSalut !", b"Run!\tCours !", b"Who?\tQui ?",
        "Wow!\tÇa alors !".encode()]


def test_missing_file(data_dir, tmp_path):
  missing = tmp_path / "nowhere.txt"
  with pytest.raises(DataError, match=re.escape(
      f"{missing}: no such file or folder; fix: point the task's `path` at an existing")):
    data.get_task("char_corpus", data_dir, path=str(missing))
  with pytest.raises(DataError, match=re.escape(f"{missing}: no such file or folder")):
    data.get_task("translation_pairs", data_dir, path=str(missing))


def test_empty_file(data_dir, tmp_path):
  empty = tmp_path / "empty.txt"
  empty.write_bytes(b"\n  \n")
  with pytest.raises(DataError, match=re.escape(
      f"{empty}: the file is empty; fix: point `path` at a file with text in it")):
    data.get_task("char_corpus", data_dir, path=str(empty))
  with pytest.raises(DataError, match=re.escape(f"{empty}: the file is empty")):
    data.get_task("translation_pairs", data_dir, path=str(empty))


def test_non_utf8_bytes_name_the_line(data_dir, tmp_path):
  path = tmp_path / "latin1.txt"
  path.write_bytes(b"line one\nline two\ncaf\xe9 au lait\nline four\n")
  with pytest.raises(DataError, match=re.escape(
      f"{path}:3: bytes b'\\xe9' at column 4 are not valid UTF-8; fix: re-encode the file "
      "as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`) or set on_error='skip'")):
    data.get_task("char_corpus", data_dir, path=str(path))


def test_tsv_row_with_the_wrong_number_of_columns(data_dir, tmp_path):
  path = write_tsv(tmp_path / "pairs.tsv", GOOD[:2] + [b"Stop! Arrete !"] + GOOD[2:])
  with pytest.raises(DataError, match=re.escape(
      f"{path}:3: expected 2 or 3 tab-separated columns (source, target[, note]), found 1; "
      "fix: repair that row (a tab inside a sentence splits it) or set on_error='skip'")):
    data.get_task("translation_pairs", data_dir, path=path)
  four = write_tsv(tmp_path / "four.tsv", GOOD + [b"a\tb\tc\td"])
  with pytest.raises(DataError, match=re.escape(f"{four}:6: expected 2 or 3 tab-separated "
                                                "columns (source, target[, note]), found 4")):
    data.get_task("translation_pairs", data_dir, path=four)


def test_sequence_longer_than_the_configured_maximum(data_dir, tmp_path):
  long_row = b"This sentence is rather long.\tCette phrase est plut\xc3\xb4t longue."
  path = write_tsv(tmp_path / "pairs.tsv", GOOD + [long_row])
  with pytest.raises(DataError, match=re.escape(
      f"{path}:6: the pair is 31 characters long, longer than max_length=20; "
      "fix: raise max_length to >= 31, or set on_error='skip'")):
    data.get_task("translation_pairs", data_dir, path=path, max_length=20)
  task = data.get_task("copy", data_dir, num_train=16, num_validation=8, num_test=8, delay=10)
  with pytest.raises(DataError, match=re.escape(
      "a sequence of length 30 is longer than the configured maximum 25; "
      "fix: raise max_length (or the largest bucket boundary)")):
    next(task.batches("train", 4, max_length=25, num_threads=0))


def test_skip_mode_logs_how_many_were_skipped(data_dir, tmp_path, caplog):
  lines = GOOD + [b"no tab here", b"Fire!\tAu feu !", b"bad \xff byte\tmauvais",
                  b"A sentence much too long for the limit.\tUne phrase bien trop longue.",
                  b"\tempty source", b"Help!\t\xc3\x80 l'aide !"]
  path = write_tsv(tmp_path / "pairs.tsv", lines)
  with caplog.at_level(logging.WARNING):
    task = data.get_task("translation_pairs", data_dir, path=path, max_length=30,
                         on_error="skip")
  kept = sum(len(task.source(s)) for s in task.splits)  # a split left empty is left out
  assert kept == len(lines) - 4
  assert task.metadata["skipped"] == {
      "lines that are not UTF-8": 1,
      "rows with the wrong number of columns": 1,
      "pairs longer than max_length=30": 1,
      "rows with an empty source or target": 1,
  }
  message = " ".join(r.getMessage() for r in caplog.records)
  assert f"skipped 4 sentence pairs, kept {kept}:" in message
  assert f"1 rows with the wrong number of columns (first at {path}:6)" in message
  assert f"1 lines that are not UTF-8 (first at {path}:8)" in message


def test_skip_mode_for_a_corpus_folder(data_dir, tmp_path, caplog):
  folder = tmp_path / "corpus"
  folder.mkdir()
  (folder / "a.txt").write_bytes(b"first line\nsecond \xff line\nthird line\n" * 20)
  (folder / "b.txt").write_bytes(b"")
  with caplog.at_level(logging.WARNING):
    task = data.get_task("char_corpus", data_dir, path=str(folder), on_error="skip",
                         chunk_length=32)
  assert task.metadata["skipped"] == {"lines that are not UTF-8": 20, "empty files": 1}
  assert "skipped 21 inputs of the corpus" in caplog.text
  text = task.vocabs["text"].decode(task.token_stream("train"))
  assert "second" not in text and text.startswith("first line\nthird line\nfirst line\n")


def test_unknown_names_list_the_known_ones(data_dir):
  with pytest.raises(ValueError, match=re.escape(
      "unknown task 'cpy'; known tasks: ['adding', 'bracket_depth', 'char_corpus', 'copy',")):
    data.get_task("cpy", data_dir)
  with pytest.raises(ValueError, match=re.escape(
      "unknown option(s) ['dealy'] for task 'copy'; its options are: ['alphabet_size', 'delay',")):
    data.get_task("copy", data_dir, dealy=10)
  with pytest.raises(ValueError, match=re.escape("on_error must be one of ('raise', 'skip')")):
    data.get_task("translation_pairs", data_dir, on_error="ignore")
