"""seqlab's entry point: train, evaluate or decode an experiment from an ml_collections config.

    python -m seqlab.main --config=configs/copy.py:cell=gru --workdir=runs/copy
    python -m seqlab.main --config=configs/char_lstm.py --workdir=runs/char --mode=complete \
        --prefix="Romeo:" --prefix="deep lea"

Rerunning a train command resumes from the workdir's latest checkpoint. Devices:
--config.mesh.data=-1 splits each batch over all devices; many processes: see
seqlab/train/distributed.py (--coordinator_address, --num_processes, --process_id).
A mistake in the config, the flags or the data ends in one line `error: ...` naming the
culprit and exit status 2; `--verbosity=1` shows the traceback as well.
"""

import logging
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from seqlab import config_check, errors, problems
from seqlab.train import distributed, modes

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "sample", "complete", "translate"],
                          "What to do.")
_PREFIX = flags.DEFINE_multi_string("prefix", [], "Prefixes to autocomplete (--mode=complete).")
_SENTENCE = flags.DEFINE_multi_string("sentence", [], "Sentences to translate (--mode=translate).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # orbax and jax log every save at INFO
    absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
  with errors.user_errors_end_in_one_line(verbose=flags.FLAGS.verbosity >= 1, argv=sys.argv):
    distributed.initialize()
    config, workdir = _CONFIG.value, _WORKDIR.value  # the config file loads here
    config_check.check(config)
    problem = problems.build_problem(config)
    if _MODE.value == "train":
      modes.train(config, workdir, problem)
    else:
      modes.run(_MODE.value, problem, config, workdir, prefixes=_PREFIX.value,
                sentences=_SENTENCE.value)


if __name__ == "__main__":
  app.run(main, flags_parser=errors.parse_flags)
  sys.exit(0)
