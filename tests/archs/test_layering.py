"""Layers point down: ``import ehat.archs`` loads no basicsr, training or evaluation code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ARCHS = Path(__file__).resolve().parents[2] / "ehat" / "archs"


def test_import_ehat_archs_loads_no_basicsr_timm_training_or_evaluation_code():
    code = (
        "import json, sys; import ehat.archs; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('basicsr', 'timm', 'torchvision') "
        "or m.startswith(('ehat.train', 'ehat.evaluation', 'ehat.checkpoints', 'ehat.options', 'ehat.data', "
        "'ehat.export')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _imports(nodes: list[ast.AST]) -> list[str]:
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module or "")
    return names


def test_archs_never_import_checkpoints_training_or_evaluation():
    """Not even inside a function; basicsr only inside one (the lazy ARCH_REGISTRY registration)."""
    upward = ("ehat.checkpoints", "ehat.train", "ehat.evaluation", "ehat.options", "ehat.export", "ehat.data")
    found = []
    for path in sorted(ARCHS.glob("*.py")):
        tree = ast.parse(path.read_text())
        found += [f"{path.name}: {n}" for n in _imports(list(ast.walk(tree))) if n.startswith(upward)]
        found += [f"{path.name}: {n}" for n in _imports(tree.body) if n.startswith(("basicsr", "timm"))]
    assert found == []


def test_basicsr_finds_our_networks_once_it_is_imported():
    code = (
        "import ehat.archs; from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY; "
        "from ehat.archs import list_networks; "
        "print(all(ARCH_REGISTRY.get(n) is ehat.archs.descriptor_of(n).cls for n in list_networks()), "
        "'MultiRootPairedDataset' in DATASET_REGISTRY)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split() == ["True", "True"]


def test_own_init_and_drop_path_equal_timms():
    timm_layers = pytest.importorskip("timm.layers")
    from ehat.archs.hat_arch import DropPath, trunc_normal_

    for shape, std in (((50, 40), 0.02), ((7,), 1.0)):
        torch.manual_seed(1)
        ref = timm_layers.trunc_normal_(torch.empty(shape), std=std)
        torch.manual_seed(1)
        assert torch.equal(trunc_normal_(torch.empty(shape), std=std), ref)
    x = torch.randn(8, 5, 6)
    torch.manual_seed(2)
    ref = timm_layers.DropPath(0.3)(x)
    torch.manual_seed(2)
    assert torch.equal(DropPath(0.3)(x), ref)
    assert torch.equal(DropPath(0.3).eval()(x), x)
