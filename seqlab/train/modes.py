"""The modes of `python -m seqlab.main`: train, evaluate, sample, complete and translate.

Train runs the problem's report at the end; the others start from a workdir's checkpoint.
Importing this defines no flags: tests and scripts run a mode in process with
`modes.train(config, workdir)`."""

from typing import Any

import jax
import ml_collections

from seqlab import problems
from seqlab.train import checkpoint, loop, optim
from seqlab.train import mesh as mesh_lib

MODE_METHODS = {"sample": "sample", "complete": "complete", "translate": "translate"}


def restore_params(problem, config, workdir: str):
  """The params of the workdir's latest checkpoint; raises if there is none."""
  ckpt = checkpoint.Checkpoints(workdir)
  if ckpt.latest_step() is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}; train first (--mode=train)")
  ckpt.check_config(config.to_dict())
  optimizer = optim.make_optimizer(config.optimizer)
  like = loop.initial_state(problem, optimizer, config.seed,
                            next(problem.train_batches(config.seed, 0)))
  _, state = ckpt.restore_intact(like, config.train.resume_step or None)
  ckpt.close()
  return state["params"]


def evaluate_splits(problem, params, splits=("validation", "test")) -> dict:
  """Full passes over the evaluation splits."""
  eval_fn = jax.jit(problem.eval_sums)
  return {split: loop.evaluate(problem, eval_fn, params, split, None) for split in splits
          if split in problem.task.splits}


def run(mode: str, problem, config, workdir: str, prefixes=(), sentences=()) -> None:
  """--mode=eval|sample|complete|translate."""
  if mode != "eval" and not hasattr(problem, MODE_METHODS[mode]):
    raise ValueError(f"--mode={mode} is not available for task {config.task.name!r}")
  params = restore_params(problem, config, workdir)
  if mode == "eval":
    for split, metrics in evaluate_splits(problem, params).items():
      print(f"{split}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
  elif mode == "sample":
    for text in problem.sample(params, jax.random.key(config.seed)):
      print(text)
  elif mode == "complete":
    for prefix, completion in zip(prefixes, problem.complete(params, prefixes), strict=True):
      print(f"{prefix!r} -> {completion!r}")
  elif mode == "translate":
    for sentence, translation in zip(sentences, problem.translate(params, sentences),
                                     strict=True):
      print(f"{sentence} -> {translation}")


def after_training(problem, config, workdir: str, params=None) -> None:
  """What a problem shows at the end of training (e.g. completions of a few prefixes), from
  `params` (default: the workdir's checkpoint); process 0 only."""
  if hasattr(problem, "report") and mesh_lib.is_primary():
    params = (restore_params(problem, config, workdir) if params is None
              else mesh_lib.to_host(params))
    problem.report(params, workdir)


def curriculum_stages(config) -> list[tuple[Any, int]]:
  """(value of task.options.<curriculum_option>, last step) per stage of config.task.curriculum,
  ((fraction of the option's value, fraction of train.num_steps), ...); the last stage ends at
  train.num_steps. No curriculum: one stage, the task as configured."""
  task, steps = config.task, config.train.num_steps
  plan = tuple(task.get("curriculum") or ())
  if not plan:
    return [(None, steps)]
  option = task.curriculum_option
  if option not in task.options:
    raise ValueError(f"config.task.curriculum_option={option!r}: the task has no such option "
                     f"(its options: {sorted(task.options)})")
  full, stages, end = task.options[option], [], 0
  for k, (fraction, share) in enumerate(plan):
    if not (0 < fraction <= 1 and 0 < share <= 1):
      raise ValueError(f"config.task.curriculum stage {k}: {(fraction, share)} should be "
                       "(fraction of the option's value, fraction of the steps), each in (0, 1]")
    end = steps if k == len(plan) - 1 else min(steps, end + max(1, round(share * steps)))
    stages.append((max(1, round(fraction * full)) if k < len(plan) - 1 else full, end))
  # With very few steps a stage can come out empty; the last (the task itself) always stays.
  return [s for k, s in enumerate(stages) if k == len(stages) - 1 or s[1] < steps and (
      k == 0 or s[1] > stages[k - 1][1])]


def train(config, workdir: str, problem=None) -> None:
  """--mode=train: build the problem (unless given), train (or resume) in `workdir`, then its
  report. A curriculum trains stage after stage, each its own task, the state carried; a
  rerun resumes inside the stage its checkpoint belongs to."""
  stages = curriculum_stages(config)
  done = 0
  if len(stages) > 1:
    ckpt = checkpoint.Checkpoints(workdir)
    done = ckpt.latest_step() or 0
    ckpt.close()
  for k, (value, end) in enumerate(stages):
    if len(stages) > 1:
      if end <= done:
        continue  # finished before the run was resumed
      stage = ml_collections.ConfigDict(config.to_dict())
      stage.task.options[config.task.curriculum_option] = value
      stage.train.num_steps = end
      start = stages[k - 1][1] + 1 if k else 1
      if mesh_lib.is_primary():
        print(f"curriculum stage {k + 1}/{len(stages)}: {config.task.curriculum_option} "
              f"{value}, steps {start}-{end}", flush=True)
      problem = problems.build_problem(stage)
      state = loop.train(problem, stage, workdir, saved_config=config)
    else:
      problem = problem if problem is not None else problems.build_problem(config)
      state = loop.train(problem, config, workdir)
  after_training(problem, config, workdir, state["params"])
