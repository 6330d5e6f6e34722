"""The README and the guides cannot drift: their commands run, flags exist and links resolve.

Every `python -m seqlab...` command in a ```bash block or an inline code span of README.md and
docs/*.md runs shortened (a couple of steps, small data, temporary work, output and data
directories; commands of the long configs are `slow`). Every flag of every documented command,
including `python experiments/...` and `python scripts/...`, is checked against the config and
the script that reads it, and every relative link and image path resolves (anchors included).
"""

import dataclasses
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ml_collections import ConfigDict

from seqlab import config as base
from seqlab import problems

ROOT = Path(__file__).resolve().parent.parent
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = [*GUIDES, *sorted((ROOT / "docs" / "figures").glob("*.md"))]
ENTRY_POINTS = {  # module -> the files whose absl flags it parses
    "seqlab.main": ("seqlab/main.py", "seqlab/train/distributed.py"),
    "seqlab.sweep": ("seqlab/sweep/__main__.py", "seqlab/train/distributed.py"),
    "seqlab.demo": ("seqlab/demo.py",),
    "seqlab.unroll": ("seqlab/unroll/__main__.py",),
}
ABSL_FLAGS = {"verbosity", "v", "logtostderr", "alsologtostderr", "help", "helpshort",
              "helpfull", "only_check_args", "log_dir"}
ARG_FLAGS = {"help", "h"}
PASS_THROUGH = {"scripts/dev.py"}  # hands its arguments on to seqlab.main or pytest
# Shortening, each applied where the command's config has the field.
SHORT = {"train.num_steps": 2, "train.log_every": 1, "train.eval_every": 2,
         "train.checkpoint_every": 2, "train.eval_batches": 1, "train.batch_size": 8,
         "task.options.num_train": 64, "task.options.num_validation": 16,
         "task.options.num_test": 16, "task.options.max_chars": 20_000,
         "task.options.max_number": 60,
         "task.options.max_ordinal": 5, "task.options.num_dates": 0, "decode.max_len": 8,
         "decode.beam_width": 2, "optimizer.warmup_steps": 0, "search.batch": 2}
SLOW_CONFIGS = ("translation", "word_lm", "model=grid")  # each tiny run compiles for minutes
MODE_FLAGS = ("mode", "prefix", "sentence", "replay")  # they read a trained output


@dataclasses.dataclass
class Command:
  """One documented command: where it is written, its environment, its argv."""

  where: str
  env: dict
  argv: list
  background: bool = False  # ends in `&`: runs beside the next command (several processes)
  partner: "Command | None" = None

  @property
  def module(self) -> str | None:
    return self.argv[2] if self.argv[1:2] == ["-m"] else None

  @property
  def script(self) -> str | None:
    return None if self.module else self.argv[1]

  def flags(self) -> dict[str, list[str]]:
    """--name=value and --name (value "") flags, by name."""
    out: dict[str, list[str]] = {}
    for arg in self.argv[3 if self.module else 2:]:
      if arg.startswith("--"):
        name, _, value = arg[2:].partition("=")
        out.setdefault(name, []).append(value)
    return out

  def __str__(self):
    return f"{self.where}: {shlex.join(self.argv)}"


def _without_fences(text: str) -> str:
  return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _logical_lines(block: str):
  """Lines of a shell block with backslash continuations joined."""
  return block.replace("\\\n", " ").splitlines()


def _command(where: str, line: str, inline: bool = False) -> Command | None:
  """A python command of this project, or None (pip, tensorboard, placeholders...)."""
  try:
    tokens = shlex.split(line, comments=True)
  except ValueError:
    return None
  env = {}
  while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):
    key, _, value = tokens.pop(0).partition("=")
    env[key] = value
  background = bool(tokens) and tokens[-1] == "&"
  tokens = [t for t in tokens if t != "&"]
  if len(tokens) < 2 or tokens[0] not in ("python", "python3") or any("..." in t for t in tokens):
    return None
  if inline and not any(t.startswith("--") for t in tokens):
    return None  # a module named in a sentence, not a command
  if tokens[1] == "-m" and tokens[2].split(".")[0] == "seqlab":
    return Command(where, env, tokens, background)
  if tokens[1].startswith(("experiments/", "scripts/")):
    return Command(where, env, tokens, background)
  return None


def documented_commands() -> list[Command]:
  commands = []
  for path in GUIDES:
    text, name = path.read_text(), path.relative_to(ROOT)
    for match in re.finditer(r"^```(bash|sh)\n(.*?)^```", text, flags=re.S | re.M):
      lineno = text[:match.start()].count("\n") + 2
      pending = None
      for line in _logical_lines(match.group(2)):
        command = _command(f"{name}:{lineno}", line)
        if command is not None:
          if pending is not None:
            pending.partner, pending = command, None
          elif command.background:
            pending = command
          commands.append(command)
      assert pending is None, f"{name}: a background command with nothing after it"
    for match in re.finditer(r"`(python3? [^`]+)`", _without_fences(text)):
      command = _command(f"{name} (inline)", match.group(1), inline=True)
      if command is not None:
        commands.append(command)
  return commands


COMMANDS = documented_commands()
GROUPS = [c for c in COMMANDS if c.partner is not None]  # `cmd &` then `cmd`: one program
_IN_GROUPS = {id(c) for g in GROUPS for c in (g, g.partner)}
SEQLAB = list({(c.module, *sorted(c.argv[3:])): c for c in reversed(COMMANDS)  # the first of
               if c.module in ENTRY_POINTS and id(c) not in _IN_GROUPS}.values())[::-1]  # repeats


def _config(command: Command) -> ConfigDict | None:
  """The command's config as its --config names it (None for commands without one)."""
  spec = command.flags().get("config", [None])[0]
  if spec is None and command.module == "seqlab.demo":
    spec = "configs/demo.py"
  if spec is None:
    return None
  path, _, variant = spec.partition(":")
  return base.load_file(ROOT / path, variant or None)


def _has_field(config: ConfigDict, dotted: str) -> bool:
  node = config
  for part in dotted.split("."):
    if not isinstance(node, ConfigDict) or part not in node:
      return False
    node = node[part]
  return True


def _defined_flags(files) -> set[str]:
  names = set()
  for file in files:
    source = (ROOT / file).read_text()
    names |= set(re.findall(r"DEFINE_\w+\(\s*[\"'](\w+)[\"']", source))
    names |= {n.replace("-", "_") for n in re.findall(r"add_argument\(\s*[\"']--([\w-]+)", source)}
    if "config_flags.DEFINE_config_file" in source:
      names.add("config")
  return names


def _ids(commands):
  return [f"{i:02d}-{c.where.replace('/', '_').replace(' (inline)', '-inline')}"
          for i, c in enumerate(commands)]


# ---------------------------------------------------------------------------
# Flags: every documented flag exists (fast, every command, also the slow ones).
# ---------------------------------------------------------------------------


def test_the_guides_document_commands():
  """The extraction itself works: the front page's tour and the guides' commands are found."""
  modules = {c.module for c in COMMANDS}
  assert {"seqlab.main", "seqlab.sweep", "seqlab.demo"} <= modules, modules
  assert any(c.script and c.script.startswith("experiments/") for c in COMMANDS)
  assert len(SEQLAB) >= 15, [str(c) for c in SEQLAB]


@pytest.mark.parametrize("command", COMMANDS, ids=_ids(COMMANDS))
def test_every_documented_flag_exists(command):
  if command.script in PASS_THROUGH:
    assert (ROOT / command.script).is_file(), command
    return
  if command.module:
    assert command.module in ENTRY_POINTS, f"{command}: no such entry point"
    known = _defined_flags(ENTRY_POINTS[command.module]) | ABSL_FLAGS
  else:
    script = ROOT / command.script
    assert script.is_file(), f"{command}: {command.script} does not exist"
    known = _defined_flags([command.script]) | ABSL_FLAGS | ARG_FLAGS
  config = _config(command)  # a bad variant raises here, naming it
  for name in command.flags():
    if name.startswith("config."):
      assert config is not None, f"{command}: --{name} without --config"
      assert _has_field(config, name[len("config."):]), f"{command}: no config field {name}"
    else:
      owner = command.module or command.script
      assert name in known, f"{command}: --{name} is not a flag of {owner}"


# ---------------------------------------------------------------------------
# Runs: every python -m seqlab... command, shortened.
# ---------------------------------------------------------------------------


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _shortened(command: Command, tmp: Path, data_dir: Path, port: int) -> list[str]:
  """The argv to run: paths into `tmp`, tiny data and few steps, the same flags otherwise."""
  argv = [sys.executable, "-m", command.module]
  for arg in command.argv[3:]:
    name, _, value = arg[2:].partition("=")
    if name in ("workdir", "output_dir"):
      arg = f"--{name}={tmp / value}"
    elif name == "storage" and value.startswith("postgresql://"):
      arg = f"--storage=sqlite:///{tmp / 'shared.db'}"  # the PostgreSQL server stands aside
    elif name == "coordinator_address":
      arg = f"--coordinator_address=localhost:{port}"
    argv.append(arg)
  config = _config(command)
  if config is not None:
    given = command.flags()
    if "config.task.data_dir" not in given and _has_field(config, "task.data_dir"):
      argv.append(f"--config.task.data_dir={data_dir}")
    argv += [f"--config.{k}={v}" for k, v in SHORT.items() if _has_field(config, k)]
    if _has_field(config, "optimizer.decay_steps") and config.optimizer.decay_steps:
      argv.append("--config.optimizer.decay_steps=2")
  if command.module == "seqlab.sweep" and "trials" in command.flags():
    argv.append("--trials=2")
  return argv


def _prepare_data(command: Command, data_dir: Path) -> None:
  """Prepare the shortened command's dataset in this process."""
  config = _config(command)
  config.task.data_dir = str(data_dir)
  config.update_from_flattened_dict({k: v for k, v in SHORT.items()
                                     if k.startswith("task.") and _has_field(config, k)})
  problems.build_problem(config)


def _slow(command: Command) -> bool:
  spec = command.flags().get("config", [""])[0]
  return any(s in spec for s in SLOW_CONFIGS)


def _run(argv, env, cwd):
  return subprocess.Popen(argv, cwd=cwd, env={**os.environ, **env}, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(process, command):
  out, err = process.communicate(timeout=900)
  assert process.returncode == 0, f"{command}\nexit {process.returncode}\n{err[-3000:]}"
  assert "error:" not in err, f"{command}\n{err[-3000:]}"
  return out


@pytest.fixture(scope="session")
def docs_data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("docs_data")


_RUNS = [pytest.param(c, marks=pytest.mark.slow) if _slow(c) else c for c in SEQLAB]


@pytest.mark.parametrize("command", _RUNS, ids=_ids(SEQLAB))
def test_every_documented_command_runs(command, tmp_path, docs_data_dir):
  """The command, shortened, exits 0; a decoding mode or a PBT replay first trains its
  workdir or output_dir."""
  port = _free_port()
  given = command.flags()
  if given.get("mode", ["train"])[0] != "train" or "replay" in given:  # eval, complete, ...
    train = dataclasses.replace(command, argv=[a for a in command.argv
                                               if a[2:].partition("=")[0] not in MODE_FLAGS])
    _finish(_run(_shortened(train, tmp_path, docs_data_dir, port), command.env, ROOT), train)
  _finish(_run(_shortened(command, tmp_path, docs_data_dir, port), command.env, ROOT), command)


@pytest.mark.slow
@pytest.mark.parametrize("first", GROUPS, ids=_ids(GROUPS))
def test_every_documented_process_group_runs(first, tmp_path, docs_data_dir):
  """Commands started together (`cmd &` then `cmd`): several processes of one program."""
  port = _free_port()
  group = [first, first.partner]
  _prepare_data(first, docs_data_dir)  # before the processes, so that no two build it at once
  processes = [_run(_shortened(c, tmp_path, docs_data_dir, port), c.env, ROOT) for c in group]
  for command, process in zip(group, processes, strict=True):
    _finish(process, command)


# ---------------------------------------------------------------------------
# Links and images.
# ---------------------------------------------------------------------------


def _slug(heading: str) -> str:
  """GitHub's anchor of a heading."""
  text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
  return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
  text = _without_fences(path.read_text())
  return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def _links(path: Path):
  text = _without_fences(path.read_text())
  text = re.sub(r"`[^`\n]*`", "", text)
  return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("path", LINKED, ids=[str(p.relative_to(ROOT)) for p in LINKED])
def test_every_relative_link_and_image_resolves(path):
  broken = []
  for target in _links(path):
    if re.match(r"[a-z]+:", target):
      continue  # https:, mailto:
    file, _, anchor = target.partition("#")
    resolved = (path.parent / file).resolve() if file else path
    if not resolved.exists():
      shown = resolved.relative_to(ROOT) if ROOT in resolved.parents else resolved
      broken.append(f"{target} (no {shown})")
    elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
      broken.append(f"{target} (no heading #{anchor} in {resolved.name})")
  assert not broken, f"{path.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_front_page_reaches_every_guide_in_one_click():
  """Install, the demo, own data, sweeping and the studies: each one link from the README."""
  targets = {t.partition("#")[0] for t in _links(ROOT / "README.md")}
  for guide in ("docs/getting-started.md", "docs/configs.md", "docs/data.md",
                "docs/scaling.md", "docs/studies.md", "docs/performance.md",
                "docs/models.md", "docs/testing.md"):
    assert guide in targets, f"README.md does not link {guide}"
  assert len((ROOT / "README.md").read_text().splitlines()) <= 200
