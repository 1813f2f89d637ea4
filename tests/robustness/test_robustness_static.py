"""Untrusted files: no code path may unpickle arbitrary objects or construct arbitrary YAML objects.

A static scan of every Python file of the project (ehat/, scripts/, the entry points, tests/): each
``torch.load`` passes ``weights_only=True``; YAML goes through ``yaml.safe_load`` (never ``yaml.load``,
``unsafe_load``, ``full_load`` or their loaders); no ``pickle.load``/``loads``, and no
``np.load(..., allow_pickle=True)``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

SCANNED = ("ehat", "scripts", "tests")

YAML_FORBIDDEN = {
    "load",
    "load_all",
    "unsafe_load",
    "unsafe_load_all",
    "full_load",
    "full_load_all",
    "Loader",
    "FullLoader",
    "UnsafeLoader",
}
PICKLE_FORBIDDEN = {"load", "loads", "Unpickler"}


def _dotted(node: ast.AST) -> str:
    """``torch.load`` for ``Attribute(Name('torch'), 'load')``; '' for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _keyword_is_true(call: ast.Call, name: str) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords
    )


def unsafe_uses(source: str, filename: str = "<string>") -> list[str]:
    """Every unsafe deserialisation in ``source`` as ``file:line: what``."""
    tree = ast.parse(source, filename)
    found = []
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module in ("yaml", "pickle", "dill", "cloudpickle"):
            forbidden = YAML_FORBIDDEN if node.module == "yaml" else PICKLE_FORBIDDEN
            for alias in node.names:
                if alias.name in forbidden:
                    found.append(f"{where}: from {node.module} import {alias.name}")
        if isinstance(node, ast.ImportFrom) and node.module == "torch":
            found += [f"{where}: from torch import load" for a in node.names if a.name == "load"]
        if isinstance(node, ast.Attribute):
            name = _dotted(node)
            head, _, attr = name.rpartition(".")
            if head == "yaml" and attr in YAML_FORBIDDEN:
                found.append(f"{where}: {name}")
            if head in ("pickle", "dill", "cloudpickle") and attr in PICKLE_FORBIDDEN:
                found.append(f"{where}: {name}")
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name == "torch.load" and not _keyword_is_true(node, "weights_only"):
                found.append(f"{where}: torch.load without weights_only=True")
            if name in ("np.load", "numpy.load") and _keyword_is_true(node, "allow_pickle"):
                found.append(f"{where}: {name}(allow_pickle=True)")
    return found


def _project_files() -> list[Path]:
    files = sorted(REPO_ROOT.glob("*.py"))
    for d in SCANNED:
        files += sorted((REPO_ROOT / d).rglob("*.py"))
    return [f for f in files if ".venv" not in f.parts]


def test_the_scan_covers_the_package_scripts_and_entry_points():
    names = {f.relative_to(REPO_ROOT).as_posix() for f in _project_files()}
    for expected in ("train.py", "test_demo.py", "ehat/checkpoints.py", "ehat/options/train.py"):
        assert expected in names


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load(p)",
        "import torch\ntorch.load(p, map_location='cpu', weights_only=False)",
        "import torch\ntorch.load(\n    p,\n    map_location='cpu',\n)",
        "from torch import load",
        "import yaml\nyaml.load(f, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.unsafe_load(f)",
        "import yaml\nyaml.full_load(f)",
        "import yaml\nyaml.load(f, Loader=yaml.FullLoader)",
        "from yaml import Loader",
        "import pickle\npickle.loads(b)",
        "import numpy as np\nnp.load(f, allow_pickle=True)",
    ],
)
def test_the_scan_flags_unsafe_loading(snippet):
    assert unsafe_uses(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load(p, map_location='cpu', weights_only=True)",
        "import torch\ntorch.load(\n    p,\n    weights_only=True,\n)",
        "import yaml\nyaml.safe_load(f)",
        "import yaml\nyaml.safe_dump(d)",
        "import pickle\npickle.dumps(x)",
    ],
)
def test_the_scan_accepts_safe_loading(snippet):
    assert unsafe_uses(snippet) == []


def test_no_project_file_loads_untrusted_data_unsafely():
    found = []
    for f in _project_files():
        found += unsafe_uses(f.read_text(encoding="utf-8"), f.relative_to(REPO_ROOT).as_posix())
    assert found == [], "unsafe deserialisation (use weights_only=True / yaml.safe_load):\n" + "\n".join(
        found
    )
