"""The user's own data from the command line: a TSV of sentence pairs (translation), a
text file (language model), a CSV column (time series). Each trains in-process as
`python -m seqlab.main --config=... --config.task.options.path=FILE` would; bad files
raise errors that name the file, the line and the fix."""

import numpy as np
import pytest
from config_testing import make_config, train_and_check

from seqlab.data.files import DataError
from seqlab.train import modes

WORDS = "red green blue black white big small old new cat dog bird fish tree".split()
TRANSLATION = {"train.pad_multiple": 16, "decode.max_len": 10, "decode.beam_width": 2,
               "optimizer.warmup_steps": 0, "optimizer.decay_steps": 12,
               "optimizer.learning_rate": 1e-2, "model.hidden_size": 16,
               "model.embed_size": 8, "model.attention_size": 8}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def write_pairs(path, num_pairs=300, seed=0):
  """source<TAB>target: 2-5 words and the same words reversed in capitals."""
  rng = np.random.default_rng(seed)
  lines = []
  for _ in range(num_pairs):
    words = list(rng.choice(WORDS, rng.integers(2, 6)))
    lines.append(" ".join(words) + "\t" + " ".join(w.upper() for w in reversed(words)))
  path.write_text("\n".join(lines) + "\n", "utf-8")
  return path


def test_translation_from_a_user_tsv_at_word_level(tmp_path, data_dir):
  tsv = write_pairs(tmp_path / "pairs.tsv")
  run = ("translation", "model=attention", {**TRANSLATION, "task.options.path": str(tsv),
                                            "task.options.level": "word"})
  train_and_check(run, tmp_path / "run", data_dir)
  report = (tmp_path / "run" / "translation_report.json").read_text("utf-8")
  assert "RED" in report or "CAT" in report or "TREE" in report  # word-level targets


def test_bad_tsv_rows_are_named_or_skipped_and_counted(tmp_path, data_dir):
  tsv = write_pairs(tmp_path / "bad.tsv", num_pairs=200, seed=1)
  lines = tsv.read_text("utf-8").splitlines()
  lines[6] = "a row without its translation"
  tsv.write_text("\n".join(lines) + "\n", "utf-8")
  run = ("translation", "model=attention", {**TRANSLATION, "task.options.path": str(tsv)})
  with pytest.raises(DataError, match=r"bad\.tsv:7: expected 2 or 3 tab-separated columns"):
    modes.train(make_config(*run, data_dir), str(tmp_path / "run"))
  skip = {**run[2], "task.options.on_error": "skip", "task.options.max_length": 30}
  train_and_check((*run[:2], skip), tmp_path / "skipped", data_dir)


def test_language_model_from_a_user_text_file(tmp_path, data_dir):
  text = tmp_path / "notes.txt"
  rng = np.random.default_rng(2)
  text.write_text("\n".join(" ".join(rng.choice(WORDS, 8)) for _ in range(400)) + "\n", "utf-8")
  run = ("char_lstm", "cell=gru", {
      "task.options.path": str(text), "model.hidden_size": 16, "train.seq_len": 16,
      "train.tbptt_k2": 16, "decode.max_len": 4, "decode.prefixes": ("red",),
      "optimizer.learning_rate": 1e-2})
  train_and_check(run, tmp_path / "run", data_dir)
  bad = tmp_path / "latin1.txt"
  bad.write_bytes("caf\u00e9 au lait\n".encode("utf-8") + "caf\u00e9 noir\n".encode("latin-1"))
  run[2]["task.options.path"] = str(bad)
  with pytest.raises(DataError, match=r"latin1\.txt:2: bytes b'\\xe9' .* not valid UTF-8"):
    modes.train(make_config(*run, data_dir), str(tmp_path / "bad"))


def test_time_series_from_a_user_csv_column(tmp_path, data_dir):
  csv = tmp_path / "load.csv"
  t = np.arange(1500)
  value = np.sin(2 * np.pi * t / 50) + 0.5 * np.sin(2 * np.pi * t / 17)
  csv.write_text("time,value\n" + "".join(f"{i},{v:.6f}\n" for i, v in zip(t, value,
                                                                          strict=True)))
  overrides = {"task.options.path": str(csv), "task.options.column": "value",
               "task.options.window": 100, "model.hidden_size": 20,
               "problem.readout_fit": "gradient", "problem.washout": 10,
               "optimizer.learning_rate": 1e-2}
  train_and_check(("esn", "series=csv", overrides), tmp_path / "run", data_dir)
  lines = csv.read_text().splitlines()
  lines[41] = "40,n/a"
  csv.write_text("\n".join(lines) + "\n")
  with pytest.raises(DataError, match=r"load\.csv:42: column 'value' holds 'n/a', not a finite"):
    modes.train(make_config("esn", "series=csv", overrides, data_dir), str(tmp_path / "b"))
  missing = {**overrides, "task.options.column": "price"}
  with pytest.raises(DataError, match=r"no column 'price' in the header \['time', 'value'\]"):
    modes.train(make_config("esn", "series=csv", missing, data_dir), str(tmp_path / "c"))
