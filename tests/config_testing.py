"""Load configs/<name>.py as `--config=configs/<name>.py:<arg>` does (tests only)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_config(name: str, arg: str | None = None):
  """get_config(arg) of configs/<name>.py."""
  spec = importlib.util.spec_from_file_location(f"configs_{name}", ROOT / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)
