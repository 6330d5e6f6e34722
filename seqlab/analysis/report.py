"""Writing a study's outputs: markdown tables and small PNG figures."""

import math
import pathlib
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402


def _cell(value: Any, digits: int) -> str:
  """A table cell: floats with `digits` significant digits, everything else by str."""
  if isinstance(value, float):
    if math.isnan(value) or math.isinf(value):
      return str(value)
    return f"{value:.{digits}g}"
  return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
  """A GitHub markdown table with a header row."""
  lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
  lines += ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in rows]
  return "\n".join(lines) + "\n"


def parse_markdown_table(text: str) -> list[dict[str, str]]:
  """The rows of the first markdown table in `text` as dicts keyed by the header."""
  lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
  headers = [h.strip() for h in lines[0].strip("|").split("|")]
  return [dict(zip(headers, (c.strip() for c in ln.strip("|").split("|")), strict=True))
          for ln in lines[2:]]


def write_text(output_dir: str, name: str, text: str) -> pathlib.Path:
  """Write `text` to output_dir/name (creating the directory); returns the path."""
  path = pathlib.Path(output_dir) / name
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  return path


def save_figure(fig: plt.Figure, output_dir: str, name: str, dpi: int = 110) -> pathlib.Path:
  """Save `fig` as output_dir/name (PNG) and close it; returns the path."""
  path = pathlib.Path(output_dir) / name
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return path
