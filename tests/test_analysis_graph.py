"""The unfolded graph read from the traced T-step unroll: shared params, one group per step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqlab import cells
from seqlab.analysis import graph, graph_figure

I, H, O, T = 2, 3, 2, 3


def _graph(name, steps=T):
  cell = cells.make(name)
  shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), I, H))
  params = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes)
  params |= {"V": jnp.ones((H, O)), "c": jnp.zeros(O)}
  carry = cell.initial_carry(params, ())
  return graph.unfolded_graph(graph.with_readout(cell.step), params, carry, jnp.ones(I), steps)


@pytest.mark.parametrize("name, carry_leaves", [("elman", 1), ("lstm", 2), ("gru", 1)])
def test_every_shared_parameter_is_one_node_linked_to_every_step(name, carry_leaves):
  g = _graph(name)
  params = [n.label for n in g.nodes if n.kind == "param"]
  assert sorted(params) == sorted(list(g.param_uses)) and {"U", "W", "b", "V", "c"} <= set(params)
  assert all(steps == (1, 2, 3) for steps in g.param_uses.values())
  # The same computation at every step: equal op counts, each one step's jaxpr.
  one_step = len(_graph(name, steps=1).step_nodes(1))
  assert [len(g.step_nodes(t)) for t in range(1, T + 1)] == [one_step] * T
  # The recurrence: edges that leave a step's ops for the next step (h; h and c for the LSTM).
  for t in range(1, T):
    crossing = {i for i, j in g.edges if g.nodes[i].kind == "op" and g.nodes[i].step == t
                and g.nodes[j].step == t + 1}
    assert len(crossing) == carry_leaves
  inputs = [n.label for n in g.nodes if n.kind == "input"]
  outputs = [n.label for n in g.nodes if n.kind == "output"]
  assert inputs == ["x_1", "x_2", "x_3"] and outputs[:3] == ["y_1", "y_2", "y_3"]


def test_elman_step_is_two_matmuls_two_adds_and_a_tanh_plus_the_readout():
  g = _graph("elman", steps=1)
  labels = sorted(g.nodes[i].label for i in g.step_nodes(1))
  assert labels == sorted(["matmul", "+", "matmul", "+", "tanh", "matmul", "+"])


def test_figure_renders(tmp_path):
  fig = graph_figure.draw(_graph("lstm"), title="lstm")
  path = tmp_path / "graph.png"
  fig.savefig(path, dpi=60)
  assert path.stat().st_size > 10_000
  pos, _, _ = graph_figure.positions(_graph("elman"))
  assert np.isfinite(np.asarray(list(pos.values()))).all()
