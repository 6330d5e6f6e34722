"""The unfolded computational graph of a cell, read from the traced computation.

Notes 000 ("unfolding computational graphs"): unfolding s_t = f(s_{t-1}, x_t; theta)
for T steps gives a chain of T copies of f that all share theta. Here the T steps are
unrolled in Python under `jax.named_scope(f"step{t}")` and traced by `jax.make_jaxpr`;
every primitive of the jaxpr becomes a node in the group of the step whose scope
emitted it, every parameter leaf (U, W, b, V, ...) is one node linked to every step
that reads it, and the carry links step t - 1 to step t.
"""

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend import core as jex_core

Array = jax.Array

_LABELS = {"dot_general": "matmul", "logistic": "sigmoid", "add": "+", "mul": "*", "sub": "-",
           "neg": "-", "max": "max", "concatenate": "concat", "custom_jvp_call": "f"}


@dataclasses.dataclass(frozen=True)
class Node:
  """One node: kind is 'param', 'carry' (s_0), 'input' (x_t), 'op' or 'output'."""

  label: str
  kind: str
  step: int  # 1..T for a step's nodes; 0 for s_0 and the parameters


@dataclasses.dataclass(frozen=True)
class UnfoldedGraph:
  """Nodes, directed edges (i, j) between node indices, and which steps read each param."""

  steps: int
  nodes: tuple[Node, ...]
  edges: tuple[tuple[int, int], ...]
  param_uses: dict[str, tuple[int, ...]]

  def step_nodes(self, t: int) -> list[int]:
    """Indices of the op nodes of step t."""
    return [i for i, n in enumerate(self.nodes) if n.kind == "op" and n.step == t]


def with_readout(step: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, Any]]:
  """The step followed by the notes' readout o_t = c + V h_t; params gain 'V' and 'c'."""

  def readout_step(params, carry, x):
    cell_params = {k: v for k, v in params.items() if k not in ("V", "c")}
    carry, h = step(cell_params, carry, x)
    return carry, h @ params["V"] + params["c"]

  return readout_step


def _label(eqn: Any) -> str:
  """A short readable name for a jaxpr equation (custom_jvp/jit calls by their name)."""
  name = eqn.params.get("name")
  inner = eqn.params.get("call_jaxpr")
  if name is None and inner is not None:
    inner = getattr(inner, "jaxpr", inner)
    if inner.eqns:
      name = _label(inner.eqns[-1])
  name = name or eqn.primitive.name
  return _LABELS.get(name, name)


def _name(path: tuple[Any, ...]) -> str:
  """'U' for a path ['U'], 'h' for a NamedTuple field, joined by '/' when nested."""
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
  return "/".join(parts)


def _step_of(eqn: Any) -> int | None:
  """The t of the innermost `step{t}` scope in the equation's name stack."""
  found = re.findall(r"step(\d+)", str(eqn.source_info.name_stack))
  return int(found[-1]) if found else None


def unfolded_graph(
    step: Callable[..., tuple[Any, Any]], params: Any, carry: Any, x: Any, steps: int
) -> UnfoldedGraph:
  """Trace `steps` steps of `step` (the same x at each step) into an UnfoldedGraph."""

  def unrolled(params, carry, xs):
    ys = []
    for t in range(1, steps + 1):
      with jax.named_scope(f"step{t}"):
        carry, y = step(params, carry, xs[t - 1])
      ys.append(y)
    return carry, ys

  xs = tuple(jax.tree.map(jnp.asarray, x) for _ in range(steps))
  jaxpr = jax.make_jaxpr(unrolled)(params, carry, xs).jaxpr
  paths = [p for p, _ in jax.tree_util.tree_flatten_with_path((params, carry, xs))[0]]
  nodes: list[Node] = []
  edges: list[tuple[int, int]] = []
  producer: dict[Any, int] = {}
  param_of: dict[int, str] = {}
  carry_leaves = len(jax.tree.leaves(carry))
  for var, path in zip(jaxpr.invars, paths, strict=True):
    group, rest = path[0].idx, path[1:]
    if group == 0:
      label, kind, t = _name(rest), "param", 0
      param_of[len(nodes)] = label
    elif group == 1:
      label, kind, t = (_name(rest) or "h") + "_0", "carry", 0
    else:
      t = rest[0].idx + 1
      label, kind = "x" + (_name(rest[1:]) and f"[{_name(rest[1:])}]") + f"_{t}", "input"
    producer[var] = len(nodes)
    nodes.append(Node(label, kind, t))
  uses: dict[str, set[int]] = {name: set() for name in param_of.values()}
  for eqn in jaxpr.eqns:
    t = _step_of(eqn) or 0
    me = len(nodes)
    nodes.append(Node(_label(eqn), "op", t))
    for var in eqn.invars:
      if isinstance(var, jex_core.Literal) or var not in producer:
        continue  # literals and closed-over constants
      edges.append((producer[var], me))
      if producer[var] in param_of:
        uses[param_of[producer[var]]].add(t)
    for var in eqn.outvars:
      producer[var] = me
  carry_names = [_name(p[1:]) or "h" for p in paths if p[0].idx == 1]
  final, ys = jaxpr.outvars[:carry_leaves], jaxpr.outvars[carry_leaves:]
  per_step = max(len(ys) // steps, 1)
  for i, var in enumerate(ys):
    t = i // per_step + 1
    if not isinstance(var, jex_core.Literal) and var in producer:
      edges.append((producer[var], len(nodes)))
    nodes.append(Node(f"y_{t}", "output", t))
  for name, var in zip(carry_names, final, strict=True):
    if not isinstance(var, jex_core.Literal) and var in producer:
      edges.append((producer[var], len(nodes)))
    nodes.append(Node(f"{name}_{steps}", "output", steps))
  return UnfoldedGraph(steps, tuple(nodes), tuple(edges),
                       {k: tuple(sorted(v)) for k, v in uses.items()})
