"""Reading an option file: YAML (``yaml.safe_load``) with one-line errors, BasicSR's ``--force_yml``
overrides, then a validator; every mistake is an OptionsError naming the file."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ehat.options.schema import OptionsError

__all__ = ["apply_force_yml", "load_file", "read_yaml", "yaml_problem"]

T = TypeVar("T")


def read_yaml(path: Path) -> Any:
    """The parsed YAML document of ``path``; unreadable, invalid or empty files are OptionsErrors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OptionsError("<file>", f"cannot read option file {path}: {exc.strerror or exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OptionsError("<file>", f"{path} is not valid YAML: {yaml_problem(exc)}") from None
    if raw is None:
        raise OptionsError("<file>", f"{path} is empty")
    return raw


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: ``line L, column C: <problem>`` (PyYAML's marks are 0-based)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context:
        problem = f"{problem} ({context}" + (f" started at line {cmark.line + 1})" if cmark else ")")
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def apply_force_yml(raw: Any, entries: Sequence[str]) -> Any:
    """BasicSR's ``--force_yml``: each ``a:b:c=value`` sets ``raw['a']['b']['c']`` to ``value`` read as YAML
    (``7``, ``true``, ``~``, ``[1, 2]``); missing sections are created. A malformed entry or a path through a
    non-mapping is an :class:`OptionsError` naming the entry."""
    for entry in entries:
        keys, sep, text = entry.partition("=")
        parts = [k.strip() for k in keys.split(":")]
        if not sep or not all(parts):
            raise OptionsError("--force_yml", f"{entry!r} is not of the form key:subkey=value")
        try:
            value = yaml.safe_load(text.strip()) if text.strip() else None
        except yaml.YAMLError as exc:
            raise OptionsError(
                "--force_yml", f"{entry!r}: the value is not valid YAML ({yaml_problem(exc)})"
            ) from None
        node = raw
        for i, k in enumerate(parts[:-1]):
            child = node.setdefault(k, {})
            if child is None:
                child = node[k] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise OptionsError("--force_yml", f"{entry!r}: option '{where}' is not a section")
            node = child
        node[parts[-1]] = value
    return raw


def load_file(
    path: str | os.PathLike,
    validate: Callable[..., T],
    check_paths: bool,
    force_yml: Sequence[str] = (),
) -> T:
    """Read ``path``, apply ``force_yml``, then ``validate(raw, check_paths=...)``; an OptionsError
    raised by the validator gets ``(in <path>)`` appended."""
    path = Path(path)
    raw = read_yaml(path)
    if force_yml:
        if not isinstance(raw, dict):
            raise OptionsError("<file>", f"{path} is not a mapping of options")
        raw = apply_force_yml(raw, force_yml)
    try:
        return validate(raw, check_paths=check_paths)
    except OptionsError as exc:
        raise OptionsError(exc.key, f"{exc.message} (in {path})") from None
