"""Local text, TSV and CSV files, read with errors that name the file, the line and the fix.

Every bad input either raises `DataError` or, with `on_error="skip"`, is counted in a
`Skipped` tally that the builder logs and stores with the data: nothing is dropped
silently.
"""

import collections
import csv
import logging
import math
import pathlib

import numpy as np

ON_ERROR = ("raise", "skip")


class DataError(ValueError):
  """Bad input data; the message names the file, the line and the fix."""


class EmptyFileError(DataError):
  """A file with no text in it."""


class Skipped:
  """A tally of skipped inputs by reason, logged once at the end of a preparation."""

  def __init__(self):
    self.counts: collections.Counter[str] = collections.Counter()
    self.first: dict[str, str] = {}

  def add(self, reason: str, where: str) -> None:
    """Count one skipped input (the first place of each reason is kept for the log)."""
    self.counts[reason] += 1
    self.first.setdefault(reason, where)

  @property
  def total(self) -> int:
    """How many inputs were skipped in all."""
    return sum(self.counts.values())

  def log(self, what: str, kept: int) -> None:
    """Log how many were skipped and why (nothing when none were)."""
    if not self.total:
      return
    reasons = ", ".join(
        f"{n} {reason} (first at {self.first[reason]})" for reason, n in sorted(self.counts.items())
    )
    logging.warning("skipped %d %s, kept %d: %s", self.total, what, kept, reasons)


def check_on_error(on_error: str) -> None:
  """Raise unless `on_error` is one of "raise" or "skip"."""
  if on_error not in ON_ERROR:
    raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


def list_files(path: str | pathlib.Path) -> list[pathlib.Path]:
  """The file itself, or every non-hidden file under a folder in sorted order."""
  path = pathlib.Path(path).expanduser()
  if path.is_file():
    return [path]
  if not path.exists():
    raise DataError(
        f"{path}: no such file or folder; fix: point the task's `path` at an existing "
        "UTF-8 file or folder (or leave it unset for the default data)"
    )
  files = sorted(
      p for p in path.rglob("*")
      if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
  )
  if not files:
    raise DataError(f"{path}: the folder holds no files; fix: put UTF-8 text files in it")
  return files


def _undecodable(path: pathlib.Path, lineno: int, line: bytes, error: UnicodeDecodeError) -> str:
  """The message for a line that is not UTF-8."""
  bad = line[error.start:error.end]
  return (
      f"{path}:{lineno}: bytes {bad!r} at column {error.start + 1} are not valid UTF-8; "
      "fix: re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`) "
      "or set on_error='skip' to skip such lines"
  )


def read_lines(path: pathlib.Path, on_error: str, skipped: Skipped) -> list[str]:
  """The file's lines (without line ends) decoded as UTF-8; bad lines raise or are skipped."""
  check_on_error(on_error)
  path = pathlib.Path(path)
  if not path.is_file():
    list_files(path)  # raises the missing-file message
  raw = path.read_bytes()
  if not raw.strip():
    raise EmptyFileError(
        f"{path}: the file is empty; fix: point `path` at a file with text in it "
        "(or remove the empty file from the folder)"
    )
  lines = raw.split(b"\n")
  if lines[-1] == b"":
    lines.pop()  # the final line end closes the last line; it starts no new one
  try:
    return raw.decode("utf-8").split("\n")[: len(lines)]
  except UnicodeDecodeError:
    pass  # find the offending lines
  out = []
  for lineno, line in enumerate(lines, start=1):
    try:
      out.append(line.decode("utf-8"))
    except UnicodeDecodeError as e:
      if on_error == "raise":
        raise DataError(_undecodable(path, lineno, line, e)) from None
      skipped.add("lines that are not UTF-8", f"{path}:{lineno}")
  return out


def read_tsv(
    path: pathlib.Path, columns: tuple[int, ...], on_error: str, skipped: Skipped
) -> list[tuple[str, list[str]]]:
  """(file:line, fields) for each row with an allowed number of tab-separated columns."""
  rows = []
  allowed = " or ".join(str(c) for c in columns)
  for lineno, line in enumerate(read_lines(path, on_error, skipped), start=1):
    fields = line.rstrip("\r").split("\t")
    where = f"{path}:{lineno}"
    if len(fields) not in columns:
      if on_error == "raise":
        raise DataError(
            f"{where}: expected {allowed} tab-separated columns (source, target[, note]), "
            f"found {len(fields)}; fix: repair that row (a tab inside a sentence splits it) "
            "or set on_error='skip' to skip such rows"
        )
      skipped.add("rows with the wrong number of columns", where)
      continue
    rows.append((where, fields))
  return rows


def read_csv_column(path: str | pathlib.Path, column: str, on_error: str,
                    skipped: Skipped) -> np.ndarray:
  """The numbers of one column (its header name, or a 0-based index for a file without a
  header) of a comma-separated file, in file order; bad cells raise or are skipped."""
  path = pathlib.Path(path).expanduser()
  rows = list(csv.reader(read_lines(path, on_error, skipped)))
  if column.isdigit():
    index, first = int(column), 1
  else:
    header = [name.strip() for name in rows[0]]
    if column not in header:
      raise DataError(f"{path}:1: no column {column!r} in the header {header}; fix: set the "
                      "task's `column` to one of them (or a 0-based index without a header)")
    index, first = header.index(column), 2
  values = []
  for lineno, row in enumerate(rows[first - 1:], start=first):
    try:
      values.append(float(row[index]))
      if not math.isfinite(values[-1]):
        values.pop()
        raise ValueError
    except (IndexError, ValueError):
      cell = row[index] if index < len(row) else "(missing)"
      if on_error == "raise":
        raise DataError(f"{path}:{lineno}: column {column!r} holds {cell!r}, not a finite "
                        "number; fix: repair or remove that row, or set on_error='skip'") from None
      skipped.add("rows without a number", f"{path}:{lineno}")
  return np.asarray(values, np.float64)
