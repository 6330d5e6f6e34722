"""Sweeps in one compiled program: the members trained together by a vmapped train step.

The members differ in shape-preserving hyperparameters (seed, optimizer numbers, initial
values).

    config.sweep.axes = (("optimizer.learning_rate", (1e-3, 3e-3)), ("seed", (0, 1, 2)))
    pop = sweep.build(config)
    result = sweep.train(pop)                  # one jit-compiled program for all 6 members
    print(sweep.table(pop.members, sweep.evaluate(pop, result.state["params"])))
"""

from seqlab.sweep.population import (
    Population,
    Result,
    batches,
    build,
    evaluate,
    from_members,
    initial_state,
    member,
    member_batch,
    program,
    stack,
    train,
    train_alone,
)
from seqlab.sweep.space import axes, axis_kind, label, member_config, members, table

__all__ = [
    "Population", "Result", "axes", "axis_kind", "batches", "build", "evaluate", "from_members",
    "initial_state", "label", "member", "member_batch", "member_config", "members", "program",
    "stack", "table", "train", "train_alone",
]
