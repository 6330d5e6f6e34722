"""Drawing an UnfoldedGraph with matplotlib: one column per time step.

The shared parameters appear once along the top, the carry s_{t-1} -> s_t edges in red."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import patches  # noqa: E402

from seqlab.analysis.graph import UnfoldedGraph  # noqa: E402

_FILL = {"param": "#f6d55c", "carry": "#f4a6a6", "input": "#a8e6a1", "op": "#cfe3f7",
         "output": "#dccbf2"}


def _depths(graph: UnfoldedGraph) -> tuple[list[int], int]:
  """Level of every node inside its step (x_t at 0, ops above their producers), max level."""
  producers: list[list[int]] = [[] for _ in graph.nodes]
  for i, j in graph.edges:
    producers[j].append(i)
  depth = [0] * len(graph.nodes)
  for j, node in enumerate(graph.nodes):  # nodes are in topological order
    if node.kind == "op":
      inside = [depth[i] for i in producers[j]
                if graph.nodes[i].kind in ("op", "input") and graph.nodes[i].step == node.step]
      depth[j] = 1 + max(inside, default=0)
  top = max((d for d, n in zip(depth, graph.nodes, strict=True) if n.kind == "op"), default=0)
  for j, node in enumerate(graph.nodes):
    if node.kind == "output":
      depth[j] = top + 1
  return depth, top


def positions(graph: UnfoldedGraph) -> tuple[dict[int, tuple[float, float]], float, int]:
  """(x, y) of every node, the column width and the top op level."""
  depth, top = _depths(graph)
  levels: dict[tuple[int, int], list[int]] = {}
  for j, node in enumerate(graph.nodes):
    if node.kind in ("op", "input", "output"):
      levels.setdefault((node.step, depth[j]), []).append(j)
  col = max(max((len(v) for v in levels.values()), default=1), 2) * 1.1 + 1.2
  producers: dict[int, list[int]] = {}
  for i, j in graph.edges:
    producers.setdefault(j, []).append(i)
  pos: dict[int, tuple[float, float]] = {}
  carries = [j for j, n in enumerate(graph.nodes) if n.kind == "carry"]
  for k, j in enumerate(carries):
    pos[j] = (0.0, top / 2 + k)
  for (t, level), members in sorted(levels.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    centre = lambda j: sum(pos[i][0] for i in producers.get(j, []) if i in pos) / max(
        sum(1 for i in producers.get(j, []) if i in pos), 1)
    members = sorted(members, key=lambda j: (centre(j) if producers.get(j) else t * col, j))
    for k, j in enumerate(members):
      pos[j] = (t * col + 1.1 * (k - (len(members) - 1) / 2), float(level))
  params = [j for j, n in enumerate(graph.nodes) if n.kind == "param"]
  span = (graph.steps - 1) * col
  for k, j in enumerate(params):
    pos[j] = (col + span * (k + 0.5) / max(len(params), 1), top + 2.8)
  return pos, col, top


def draw(graph: UnfoldedGraph, title: str = "") -> plt.Figure:
  """The unfolded graph as a matplotlib Figure (save it with fig.savefig)."""
  pos, col, top = positions(graph)
  fig, ax = plt.subplots(figsize=(1.0 + 0.55 * col * (graph.steps + 1), 1.6 + 0.5 * (top + 4)))
  for t in range(1, graph.steps + 1):
    ax.add_patch(patches.FancyBboxPatch(
        (t * col - col / 2 + 0.25, -0.6), col - 0.5, top + 2.1, boxstyle="round,pad=0.1",
        fc="#f3f3f3", ec="#bbbbbb", lw=0.8, zorder=0))
    ax.text(t * col, -1.1, f"step t = {t}", ha="center", va="top", fontsize=9, color="#555555")
  cmap = plt.get_cmap("tab10")
  param_colour = {j: cmap(k % 10) for k, j in
                  enumerate(j for j, n in enumerate(graph.nodes) if n.kind == "param")}
  for i, j in graph.edges:
    a, b = graph.nodes[i], graph.nodes[j]
    if a.kind == "param":
      style = dict(color=param_colour[i], lw=0.7, alpha=0.45)
    elif a.kind == "carry" or (a.kind == "op" and b.step != a.step):
      style = dict(color="#c0392b", lw=1.6, alpha=0.9)  # the recurrence s_{t-1} -> s_t
    else:
      style = dict(color="#777777", lw=0.7, alpha=0.8)
    ax.annotate("", xy=pos[j], xytext=pos[i], zorder=1,
                arrowprops=dict(arrowstyle="-|>", shrinkA=7, shrinkB=7, mutation_scale=7,
                                **style))
  for j, node in enumerate(graph.nodes):
    edge = param_colour.get(j, "#555555")
    ax.text(*pos[j], node.label, ha="center", va="center", zorder=3,
            fontsize=9 if node.kind != "op" else 7,
            fontweight="bold" if node.kind == "param" else "normal",
            bbox=dict(boxstyle="round,pad=0.25", fc=_FILL[node.kind], ec=edge, lw=0.8))
  xs = [p[0] for p in pos.values()] + [(graph.steps + 0.5) * col]
  ax.set_xlim(min(xs) - 1.0, max(xs) + 0.2)
  ax.set_ylim(-1.6, top + 3.5)
  ax.axis("off")
  uses = "; ".join(f"{k} -> steps {', '.join(map(str, v))}" for k, v in graph.param_uses.items())
  ax.set_title(title + ("\n" if title else "") + f"shared parameters: {uses}", fontsize=9)
  fig.tight_layout()
  return fig
