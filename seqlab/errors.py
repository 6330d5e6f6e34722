"""User errors at the command line: one line naming the culprit, exit status 2.

A mistake in the config, the flags or the data (an unknown variant, a misspelt field, a
missing or malformed file) raises ValueError (DataError is one), KeyError or
OSError (a missing file) with a message that names the field or file and the fix; the entry
points print that message as one line `error: ...` and exit with status 2. A traceback is
for bugs: it shows with `--verbosity=1`.
"""

import ast
import contextlib
import re
import sys
import traceback
from collections.abc import Iterator, Sequence

from seqlab.train.loop import NonFiniteError

USER_ERRORS = (ValueError, KeyError, OSError, NonFiniteError)
EXIT_USER_ERROR = 2


def verbose_in(argv: Sequence[str]) -> bool:
  """Whether argv asks for tracebacks (--verbosity=N or -v N with N >= 1), before parsing."""
  for i, arg in enumerate(argv):
    match = re.fullmatch(r"--?(?:verbosity|v)(?:=(-?\d+))?", arg)
    if match:
      value = match.group(1) or (argv[i + 1] if i + 1 < len(argv) else "0")
      return value.lstrip("-").isdigit() and int(value) >= 1
  return False


def one_line(error: BaseException, argv: Sequence[str] = ()) -> str:
  """The error's message on one line, led by the flag it is about when argv names one."""
  message = str(error.args[0]) if len(error.args) == 1 else str(error)
  while isinstance(error, (KeyError, AttributeError)) and message[:1] in "'\"":
    try:  # KeyError and ml_collections' AttributeError quote their message
      message = str(ast.literal_eval(message))
    except (ValueError, SyntaxError):
      break
  lines = [part.strip() for part in message.splitlines() if part.strip()]
  if "Traceback (most recent call last):" in message or "[Errno" in message:
    # ml_collections wraps a config file's own error (or a missing file) in its traceback:
    # keep the flag it names and the last line, the error itself.
    flag = re.match(r"flag (--\S+): ", lines[0]) if lines else None
    error_line = re.sub(r"^[\w.]+(Error|Exception): ", "", lines[-1])
    lines = [f"{flag.group(1)}: {error_line}" if flag else error_line]
  message = " ".join(lines)
  if isinstance(error, (KeyError, AttributeError)):
    key = message.split()[0].strip("'\"") if message else ""
    flag = next((a for a in argv if a.startswith("--config.") and key and key in a), None)
    if flag:
      field = flag.split("=")[0][2:]
      rest = message[len(key) + 2:].strip()
      section = field.rsplit(".", 1)[0]
      return f"{flag}: {section} has no field {key!r}" + (f"; {rest}" if rest else "")
  return message


@contextlib.contextmanager
def user_errors_end_in_one_line(verbose: bool, argv: Sequence[str] = (),
                                also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
  """Turns USER_ERRORS (and `also`) raised inside into `error: <message>` and exit 2."""
  try:
    yield
  except (*USER_ERRORS, *also) as error:
    if verbose:  # the traceback, then the same line and status
      traceback.print_exc()
      print(f"error: {one_line(error, argv)}", file=sys.stderr)
    else:
      print(f"error: {one_line(error, argv)} (--verbosity=1 shows the traceback)",
            file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing for the entry points; a bad flag or config file ends in one line and
  exit status 2."""
  from absl import flags
  with user_errors_end_in_one_line(verbose=verbose_in(argv), argv=argv, also=(Exception,)):
    return flags.FLAGS(argv)
