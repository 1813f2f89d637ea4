"""The README and docs/*.md cite only what exists: tests, relative links (and their anchors), files.

A citation is ``tests/<path>.py`` or ``tests/<path>.py::name[::name]`` anywhere in the text, code
blocks included; every ``::`` part must be a class or function defined in that file (a
parametrize id ``[...]`` is ignored). A relative link ``](x.md)`` / ``](x.md#anchor)`` must point at
an existing file, and its anchor at a heading of that file (GitHub's slugs). A repository path in
backticks or a command (``scripts/x.py``, ``options/train/x.yml``, ``ehat/x.py``) must exist, and
every ``ehat <command>`` must be a sub-command of the ``ehat`` console command.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest


def _repo_root() -> Path:
    """The folder holding README.md and ehat/ (this file may sit in a sub-folder of tests/)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "README.md").is_file() and (parent / "ehat").is_dir():
            return parent
    raise RuntimeError(f"no repository root above {__file__}")


REPO = _repo_root()
README_MAX_LINES = 200  # issue 13: the README keeps ~150 lines; the rest lives in docs/

CITATION = re.compile(r"\btests/[\w./-]*?\.py(?:::[\w]+(?:\[[^\]\s]*\])?)*")
LINK = re.compile(r"\]\(([^)\s]+)\)")
REPO_PATH = re.compile(r"(?<![\w/.-])((?:scripts|options|ehat|docs)/[\w./-]+\.(?:py|sh|yml|yaml|md))\b")
FENCE = re.compile(r"^\s*(```|~~~)")
EHAT_COMMAND = re.compile(r"(?:^|(?<=[`\s/]))ehat ([a-z_]+)", re.M)


def doc_files(root: Path = REPO) -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def defined_names(py: Path) -> set[str]:
    """Names of the classes and functions defined in ``py`` (methods under ``Class::method``)."""
    tree = ast.parse(py.read_text(encoding="utf-8"), filename=str(py))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}::{sub.name}")
    return names


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"`|\*\*|__", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [label](url) -> label
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(md: Path) -> set[str]:
    """Every heading anchor of ``md`` (headings inside code fences are not headings)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    in_fence = False
    for line in md.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and not in_fence:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_citations(md: Path, root: Path = REPO) -> list[str]:
    """``md``'s test citations whose file or test name does not exist."""
    problems = []
    cache: dict[Path, set[str]] = {}
    for cite in sorted(set(CITATION.findall(md.read_text(encoding="utf-8")))):
        path, *parts = cite.split("::")
        file = root / path
        if not file.is_file():
            problems.append(f"{md.name}: {cite}: no file {path}")
            continue
        if not parts:
            continue
        names = cache.setdefault(file, defined_names(file))
        name = "::".join(re.sub(r"\[.*\]$", "", p) for p in parts)
        if name not in names:
            problems.append(f"{md.name}: {cite}: {path} defines no {name}")
    return problems


def broken_links(md: Path) -> list[str]:
    """``md``'s relative links whose target file, or heading anchor, does not exist."""
    problems = []
    for target in LINK.findall(md.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (md.parent / path).resolve() if path else md
        if not file.exists():
            problems.append(f"{md.name}: link ({target}): no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            problems.append(f"{md.name}: link ({target}): {file.name} has no heading with anchor #{anchor}")
    return problems


def missing_paths(md: Path, root: Path = REPO) -> list[str]:
    """Repository paths (scripts/, options/, ehat/, docs/) named in ``md`` that do not exist."""
    found = set(REPO_PATH.findall(md.read_text(encoding="utf-8")))
    return [f"{md.name}: {p} does not exist" for p in sorted(found) if not (root / p).exists()]


def ehat_subcommands() -> set[str]:
    """The sub-commands of the ``ehat`` console command (``ehat.cli``)."""
    from ehat.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def unknown_ehat_commands(md: Path, commands: set[str]) -> list[str]:
    """``ehat <word>`` in ``md`` (prose or code) whose word is not one of ``commands``."""
    found = set(EHAT_COMMAND.findall(md.read_text(encoding="utf-8")))
    return [f"{md.name}: 'ehat {c}' is not an ehat command" for c in sorted(found - commands)]


@pytest.mark.parametrize("md", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_cited_tests_exist(md: Path):
    assert broken_citations(md) == []


@pytest.mark.parametrize("md", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_at_existing_files_and_headings(md: Path):
    assert broken_links(md) == []


@pytest.mark.parametrize("md", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_named_repository_paths_exist(md: Path):
    assert missing_paths(md) == []


@pytest.mark.parametrize("md", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_ehat_commands_named_in_the_docs_exist(md: Path):
    assert unknown_ehat_commands(md, ehat_subcommands()) == []


def test_ehat_subcommands_are_found():
    """The check above would pass vacuously if the parser lookup found nothing."""
    assert {"upscale", "export", "submission", "train", "eval", "convert"} <= ehat_subcommands()


@pytest.mark.parametrize("md", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_code_fences_are_closed(md: Path):
    """An unclosed fence turns the rest of the page into code."""
    fences = [line for line in md.read_text(encoding="utf-8").splitlines() if FENCE.match(line)]
    assert len(fences) % 2 == 0, f"{md.name}: {len(fences)} code fence lines (one is not closed)"


@pytest.mark.parametrize("md", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_table_rows_have_the_header_row_cells(md: Path):
    """A stray (unescaped) ``|`` in a cell, even inside backticks, shifts GitHub's table columns."""
    problems, cells, in_fence = [], None, False
    for n, line in enumerate(md.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
        if in_fence or not line.startswith("|"):
            cells = None
            continue
        count = len(re.findall(r"(?<!\\)\|", line))
        cells = count if cells is None else cells
        if count != cells:
            problems.append(f"{md.name}:{n}: {count - 1} cells, the header has {cells - 1}")
    assert problems == []


def test_docs_cite_tests_at_all():
    """The checks above would pass vacuously if the pattern stopped matching the docs' style."""
    cites = [c for md in doc_files() for c in CITATION.findall(md.read_text(encoding="utf-8"))]
    assert sum("::test_" in c for c in cites) >= 20


def test_readme_stays_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move details into docs/"


def test_the_checks_catch_what_they_should(tmp_path: Path):
    """A bogus citation, test name, link, anchor and path are each reported."""
    (tmp_path / "tests" / "archs").mkdir(parents=True)
    (tmp_path / "tests" / "archs" / "test_a.py").write_text(
        "def test_real():\n    pass\n\nclass TestK:\n    def test_m(self):\n        pass\n"
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# Big images: memory\n\n```bash\n# not a heading\n```\n")
    md = tmp_path / "README.md"
    md.write_text(
        "`tests/archs/test_a.py::test_real`, `tests/archs/test_a.py::test_real[x-1]`,\n"
        "`tests/archs/test_a.py::TestK::test_m`, `tests/archs/test_a.py`\n"
        "`tests/archs/test_a.py::test_gone`, `tests/test_a.py::test_real`, `tests/archs/test_a.py::TestK::nope`\n"
        "[ok](docs/b.md#big-images-memory) [web](https://example.com/x) [self](#nowhere)\n"
        "[gone](docs/missing.md) [anchor](docs/b.md#not-a-heading)\n"
        "`docs/b.md` and `scripts/nope.py`\n"
        "`ehat upscale x.png`, $ ehat export 102 a.onnx, the ehat/ folder, Real-EHAT run, `ehat upscal x.png`\n"
    )
    assert broken_citations(md, tmp_path) == [
        "README.md: tests/archs/test_a.py::TestK::nope: tests/archs/test_a.py defines no TestK::nope",
        "README.md: tests/archs/test_a.py::test_gone: tests/archs/test_a.py defines no test_gone",
        "README.md: tests/test_a.py::test_real: no file tests/test_a.py",
    ]
    links = broken_links(md)
    assert [p.split(": ")[1] for p in links] == [
        "link (#nowhere)",
        "link (docs/missing.md)",
        "link (docs/b.md#not-a-heading)",
    ]
    assert missing_paths(md, tmp_path) == [
        "README.md: docs/missing.md does not exist",
        "README.md: scripts/nope.py does not exist",
    ]
    assert unknown_ehat_commands(md, {"upscale", "export"}) == [
        "README.md: 'ehat upscal' is not an ehat command"
    ]
