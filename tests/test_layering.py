"""Import layering: every ``ehat`` module imports only its own layer and the layers below, and no
modules import each other in a circle, function-level imports included.

The layers, lowest first (:data:`LAYERS`; a module may import its own layer and the layers below)::

    base         errors, atomic, device, logs, precision, cpu_allocator, cpu_inference
    archs        ehat.archs.*: the networks and their descriptors
    checkpoints  checkpoints, networks (build network_<x> + load its weights), acceleration, zoo
    data         ehat.data.*: image I/O, pairing, datasets
    imaging      ehat.imaging.*: tensor <-> uint8, metrics, tiled forward, pictures
    options      ehat.options.*: the typed options of train.py and test.py
    evaluation | train | export   three peers: none imports another
    apps         ehat (the package), _compat, upscale, demo, cli

An edge is a module's ``import``/``from ... import`` of an ``ehat`` module at any depth (module level
or inside a function), except under ``if TYPE_CHECKING:`` (never run). ``from pkg import sub`` points at
``pkg.sub``; an explicit ``import ehat`` is no edge (the package runs before any of its modules).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

LAYERS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    (
        "base",
        (
            "ehat.errors",
            "ehat.atomic",
            "ehat.device",
            "ehat.logs",
            "ehat.precision",
            "ehat.cpu_allocator",
            "ehat.cpu_inference",
        ),
        False,
    ),
    ("archs", ("ehat.archs",), False),
    ("checkpoints", ("ehat.checkpoints", "ehat.networks", "ehat.acceleration", "ehat.zoo"), False),
    ("data", ("ehat.data",), False),
    ("imaging", ("ehat.imaging",), False),
    ("options", ("ehat.options",), False),
    ("tasks", ("ehat.evaluation", "ehat.train", "ehat.export"), True),
    ("apps", ("ehat", "ehat._compat", "ehat.upscale", "ehat.demo", "ehat.cli"), False),
)
"""(name, module prefixes, peers) per layer, lowest first. In a layer of peers no prefix imports another
(``ehat.train`` never imports ``ehat.evaluation``); elsewhere a layer's modules may import each other."""


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Line numbers inside ``if TYPE_CHECKING:`` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def module_graph(root: Path, package: str = "ehat") -> dict[str, set[str]]:
    """{module: the package's modules it imports} for every ``.py`` file under ``root / package``."""
    files = {module_name(f, root): f for f in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skip = _type_checking_lines(tree)
        targets: set[str] = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in files else base)
        graph[name] = {_owner(t, files) for t in targets if t.split(".")[0] == package} - {
            name,
            package,
            None,
        }
    return graph


def _owner(target: str, files: Iterable[str]) -> str | None:
    """The module a dotted import name lands in (``a.b.func`` -> ``a.b``)."""
    known = set(files)
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, the prefix that placed it) by the longest matching prefix of :data:`LAYERS`."""
    best: tuple[int, str] | None = None
    for i, (_, prefixes, _peers) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > len(best[1])):
                best = (i, p)
    if best is None:
        raise KeyError(module)
    return best


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every edge into a higher layer, or into a peer of the same layer (below the top one)."""
    out = []
    for a, targets in sorted(graph.items()):
        (la, pa) = layer_of(a)
        for b in sorted(targets):
            (lb, pb) = layer_of(b)
            if lb > la or (lb == la and pa != pb and LAYERS[la][2]):
                out.append(f"{a} ({pa}) imports {b} ({pb})")
    return out


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return module_graph(REPO_ROOT)


def test_every_module_has_a_layer(graph):
    missing = []
    for m in graph:
        try:
            layer_of(m)
        except KeyError:
            missing.append(m)
    assert not missing, f"add these modules to LAYERS in tests/test_layering.py: {missing}"


def test_no_module_imports_a_higher_layer_or_a_peer(graph):
    assert upward_imports(graph) == []


KNOWN_CYCLES: dict[str, str] = {}
"""Circles being removed as this test lands, each by its owner: one module of each circle, and why.
An entry that no longer closes a circle fails :func:`test_no_import_cycle`: delete it then."""


def test_no_import_cycle(graph):
    cycles = import_cycles(graph)
    unknown = [c for c in cycles if not set(c) & set(KNOWN_CYCLES)]
    assert unknown == [], f"import circles: {unknown}"
    in_cycles = {m for c in cycles for m in c}
    assert [m for m in KNOWN_CYCLES if m not in in_cycles] == [], "fixed: remove it from KNOWN_CYCLES"


def test_train_and_evaluation_share_only_lower_modules(graph):
    """What both use (metrics, tiling, tensor <-> uint8, pictures) comes from ehat.imaging."""
    for a, targets in graph.items():
        for b in targets:
            assert not (a.startswith("ehat.train") and b.startswith("ehat.evaluation")), (a, b)
            assert not (a.startswith("ehat.evaluation") and b.startswith("ehat.train")), (a, b)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_find_an_upward_import_and_a_hidden_circle(tmp_path):
    """A synthetic package: errors imports train (upward, inside a function), imaging.metrics and
    imaging.tiling import each other (one at module level, one inside a function), and a
    TYPE_CHECKING import (never run) is no edge."""
    _write(
        tmp_path,
        {
            "ehat/__init__.py": "",
            "ehat/errors.py": "def f():\n    from ehat.train import loop\n",
            "ehat/train/__init__.py": "",
            "ehat/train/loop.py": "from ehat.errors import f\n",
            "ehat/imaging/__init__.py": "",
            "ehat/imaging/metrics.py": "from ehat.imaging.tiling import g\n",
            "ehat/imaging/tiling.py": "def g():\n    from . import metrics\n",
            "ehat/data/__init__.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ehat.options import x\n"
            ),
            "ehat/options/__init__.py": "",
        },
    )
    fake = module_graph(tmp_path)
    assert fake["ehat.errors"] == {"ehat.train.loop"} and fake["ehat.data"] == set()
    assert upward_imports(fake) == ["ehat.errors (ehat.errors) imports ehat.train.loop (ehat.train)"]
    assert import_cycles(fake) == [
        ["ehat.errors", "ehat.train.loop"],
        ["ehat.imaging.metrics", "ehat.imaging.tiling"],
    ]
    _write(tmp_path, {"ehat/evaluation/__init__.py": "", "ehat/evaluation/x.py": "import ehat.train.loop\n"})
    assert "ehat.evaluation.x (ehat.evaluation) imports ehat.train.loop (ehat.train)" in upward_imports(
        module_graph(tmp_path)
    )


def test_no_test_file_imports_another_test_file():
    """Shared test code lives in tests/helpers.py or conftest.py: a test module imported by another
    runs its module-level code twice and ties unrelated files together."""
    root = Path(__file__).resolve().parent
    offenders = []
    for path in sorted(root.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [
                f"{path.relative_to(root)} imports {n}" for n in names if n.split(".")[-1].startswith("test_")
            ]
    assert offenders == []
