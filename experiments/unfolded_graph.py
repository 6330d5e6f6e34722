"""The unfolded computational graph of a cell, drawn from its traced computation (notes 000).

    python experiments/unfolded_graph.py --output_dir=docs/figures      # elman, lstm, gru
    python experiments/unfolded_graph.py --quick --output_dir=/tmp/g   # CI smoke run

Each cell, followed by the notes' readout o_t = c + V h_t, is unrolled for T steps under
`jax.named_scope(f"step{t}")` and traced with `jax.make_jaxpr`; `analysis.graph` turns
the jaxpr into one node group per step, the shared parameter leaves (U, W, b, V, c, ...)
as single nodes linked to every step that reads them, and the carry edges s_{t-1} -> s_t.
Writes unfolded_graph_<cell>.png and unfolded_graph.md.
"""

import jax
import jax.numpy as jnp
from absl import app, flags

from seqlab import cells
from seqlab.analysis import graph, graph_figure, report

_QUICK = flags.DEFINE_bool("quick", False, "A seconds-long smoke run (elman, 2 steps).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "out/graph", "Where the PNGs and table go.")
_CELLS = flags.DEFINE_list("cells", ["elman", "lstm", "gru"], "Cells to draw.")
_STEPS = flags.DEFINE_integer("steps", 3, "Time steps T to unfold.")
_SIZES = (2, 3, 2)  # input, hidden and output sizes: the drawing does not depend on them


def trace(name: str, steps: int) -> graph.UnfoldedGraph:
  """The unfolded graph of cell `name` with a readout, for `steps` steps."""
  cell = cells.make(name)
  inputs, hidden, outputs = _SIZES
  params = cell.init(jax.random.key(0), inputs, hidden)
  params |= {"V": jnp.zeros((hidden, outputs)), "c": jnp.zeros(outputs)}
  carry = cell.initial_carry(params, ())
  return graph.unfolded_graph(graph.with_readout(cell.step), params, carry,
                              jnp.zeros(inputs), steps)


def main(argv):
  del argv
  names, steps = (["elman"], 2) if _QUICK.value else (_CELLS.value, _STEPS.value)
  rows = []
  for name in names:
    g = trace(name, steps)
    fig = graph_figure.draw(g, title=f"{name} unfolded for T = {steps} steps, readout "
                                     "o_t = c + V h_t (from jax.make_jaxpr)")
    report.save_figure(fig, _OUTPUT_DIR.value, f"unfolded_graph_{name}.png", dpi=80)
    ops = [len(g.step_nodes(t)) for t in range(1, steps + 1)]
    carried = [len({i for i, j in g.edges if g.nodes[i].kind == "op" and g.nodes[i].step == t
                    and g.nodes[j].step == t + 1}) for t in range(1, steps)]
    shared = ", ".join(f"{k} ({len(v)} steps)" for k, v in g.param_uses.items())
    rows.append([name, steps, " / ".join(map(str, ops)), shared,
                 " / ".join(map(str, carried)) or "-", len(g.nodes), len(g.edges)])
  table = report.markdown_table(
      ["cell", "T", "ops per step", "shared parameters (steps using each)",
       "carry edges between steps", "nodes", "edges"], rows)
  report.write_text(_OUTPUT_DIR.value, "unfolded_graph.md",
                    f"# Unfolded computational graphs\n\n{table}")
  print(table)


if __name__ == "__main__":
  app.run(main)
