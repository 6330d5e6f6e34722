"""The classical baseline of the character LM: n-gram models with interpolated Kneser-Ney.

    python experiments/ngram_baseline.py --output_dir=docs/figures [--orders=2,3,4,5,6,7]

Counts orders 2-7 (seqlab/ngram.py) on the train split of `configs/char_lstm.py`'s corpus
(the same data, split and vocabulary the LSTM reads; `--path` for your own text) and prints
validation bits per character over the whole validation split, with the time each order
took. Writes ngram_baseline.md to --output_dir.
"""

import time

from absl import app, flags

from seqlab import data
from seqlab.analysis import report
from seqlab.config import load_file
from seqlab.ngram import KneserNey

_ORDERS = flags.DEFINE_list("orders", ["2", "3", "4", "5", "6", "7"], "n-gram orders.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data", "Where the prepared corpus is cached.")
_PATH = flags.DEFINE_string("path", None, "A UTF-8 file or folder (default: Shakespeare).")
_MAX_CHARS = flags.DEFINE_integer("max_chars", None, "Keep only the first max_chars.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where ngram_baseline.md goes.")
_QUICK = flags.DEFINE_bool("quick", False, "Smoke run: 200k characters, orders 2 and 3.")


def main(argv):
  del argv
  config = load_file("configs/char_lstm.py")
  options = {**config.task.options.to_dict(), "path": _PATH.value,
             "max_chars": 200_000 if _QUICK.value else _MAX_CHARS.value}
  task = data.get_task(config.task.name, data_dir=_DATA_DIR.value, **options)
  (key, vocab), = task.vocabs.items()
  del key
  train, validation = task.token_stream("train"), task.token_stream("validation")
  orders = [2, 3] if _QUICK.value else [int(n) for n in _ORDERS.value]
  print(f"{len(train):,} train and {len(validation):,} validation characters, "
        f"{len(vocab)} tokens")
  rows = []
  for order in orders:
    start = time.perf_counter()
    bits = KneserNey(train, order, len(vocab)).bits_per_token(validation)
    rows.append((order, bits, time.perf_counter() - start))
    print(f"order {order}: {bits:.4f} bits per character ({rows[-1][2]:.1f} s)", flush=True)
  best = min(rows, key=lambda row: row[1])
  text = (f"Character n-grams with interpolated Kneser-Ney, trained on the train split of "
          f"`configs/char_lstm.py`'s corpus ({len(train):,} characters), validation bits per "
          f"character over the whole validation split ({len(validation):,} characters); "
          f"`python experiments/ngram_baseline.py`:\n\n"
          + report.markdown_table(["order", "validation bits/char", "seconds"], rows)
          + f"\n\nBest: order {best[0]}, {best[1]:.4f} bits per character.\n")
  print(text)
  if _OUTPUT_DIR.value:
    report.write_text(_OUTPUT_DIR.value, "ngram_baseline.md", text)


if __name__ == "__main__":
  app.run(main)
