"""ehat/export/graph.py holds graph-friendly *steps* only: no second copy of a block's forward."""

from __future__ import annotations

import ast
from pathlib import Path

import ehat.export.graph as graph
from ehat.archs import descriptor_of, list_networks

SOURCE = Path(graph.__file__).read_text()
TREE = ast.parse(SOURCE)


def test_graph_defines_no_forward_of_hab_ocab_or_window_attention():
    names = [n.name for n in ast.walk(TREE) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assert not [n for n in names if n == "forward" or n.endswith("_forward")], names
    # A restated block forward would call the blocks' own layers; the steps receive their inputs.
    layers = {"norm1", "norm2", "mlp", "proj", "qkv", "conv_block", "drop_path"}
    used = {n.attr for n in ast.walk(TREE) if isinstance(n, ast.Attribute)} & layers
    assert not used, f"graph.py uses block layers {used}: it restates a forward"


def test_graph_assigns_no_module_attribute():
    targets = []
    for node in ast.walk(TREE):
        if isinstance(node, ast.Assign):
            targets += node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets.append(node.target)
    attrs = [ast.unparse(t) for t in targets if isinstance(t, ast.Attribute)]
    assert not attrs, f"graph.py assigns attributes {attrs} (a module-global swap?)"
    globals_ = [n for n in ast.walk(TREE) if isinstance(n, ast.Global)]
    assert not globals_


def test_every_export_step_names_an_existing_method_and_a_function():
    for name in list_networks():
        for step in descriptor_of(name).export_steps:
            assert callable(getattr(step.owner, step.method, None)), (name, step)
            assert callable(step.resolve()), (name, step)
