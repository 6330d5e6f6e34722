"""Writing a study's outputs: markdown tables and small PNG figures."""

import math
import pathlib
import re
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402


def _cell(value: Any, digits: int) -> str:
  """A table cell: floats with `digits` significant digits, everything else by str."""
  if isinstance(value, float) and math.isfinite(value):
    value = f"{value:.{digits}g}"
  return str(value).replace("|", "\\|")  # a literal | (as in ||W||) is escaped


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
  """A GitHub markdown table with a header row; | inside cells is escaped as \\|."""
  lines = ["| " + " | ".join(_cell(h, digits) for h in headers) + " |",
           "|" + "---|" * len(headers)]
  lines += ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in rows]
  return "\n".join(lines) + "\n"


def _split_row(line: str) -> list[str]:
  """The cells of one table row, split at unescaped | and unescaped."""
  cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
  return [c.strip().replace("\\|", "|") for c in cells]


def parse_markdown_table(text: str) -> list[dict[str, str]]:
  """The rows of the first markdown table in `text` as dicts keyed by the (unescaped) header."""
  lines: list[str] = []
  for line in text.splitlines():
    if line.strip().startswith("|"):
      lines.append(line.strip())
    elif lines:
      break  # the end of the first table
  headers = _split_row(lines[0])
  return [dict(zip(headers, _split_row(ln), strict=True)) for ln in lines[2:]]


def write_text(output_dir: str, name: str, text: str) -> pathlib.Path:
  """Write `text` to output_dir/name (creating the directory); returns the path."""
  path = pathlib.Path(output_dir) / name
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  return path


def save_figure(fig: plt.Figure, output_dir: str, name: str, dpi: int = 100) -> pathlib.Path:
  """Save `fig` as output_dir/name (PNG) and close it; returns the path."""
  path = pathlib.Path(output_dir) / name
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return path
