"""Checking a ``{type: Name, **arguments}`` option against a registry and Name's constructor.

Names are looked up in basicsr's registries (with the closest name for a typo), arguments against the
constructor's signature: names, required ones, and int/float/bool/str annotations.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any

from ehat.errors import did_you_mean
from ehat.options.converters import annotation_converter, as_str
from ehat.options.schema import OptionsError, mapping

__all__ = [
    "check_kwargs",
    "closest",
    "lookup",
    "registered",
    "registry_names",
    "typed_mapping",
    "unknown_argument",
    "unknown_value",
]


def closest(word: str, names: list[str]) -> str:
    """``; did you mean 'x'?`` for a typo of one of ``names``, else the list of valid names."""
    return did_you_mean(word, names) or f"; valid: {', '.join(names[:30])}"


def unknown_value(key: str, value: str, known: Iterable[str], what: str) -> OptionsError:
    """An unknown name (network, optimizer, loss...) given as the value of ``key``."""
    known = sorted(known)
    hint = did_you_mean(value, known) or f"; valid: {', '.join(known[:30])}"
    return OptionsError(key, f"unknown {what} {value!r}{hint}")


def unknown_argument(prefix: str, key: str, known: Iterable[str], owner: str) -> OptionsError:
    known = sorted(known)
    hint = did_you_mean(key, known) or f"; valid arguments: {', '.join(known[:30])}"
    return OptionsError(f"{prefix}.{key}", f"unknown argument of {owner}{hint}")


def registered(registry: Any, name: str) -> bool:
    """Whether basicsr's ``registry.get(name)`` finds ``name`` (it also tries ``<name>_basicsr``)."""
    return name in registry or f"{name}_basicsr" in registry


def lookup(registry: Any, name: str) -> Any:
    """``registry.get(name)`` without basicsr's fallback message on stdout."""
    table = dict(iter(registry))
    return table[name] if name in table else table[f"{name}_basicsr"]


def registry_names(registry: Any) -> list[str]:
    """The names of ``registry`` (basicsr's ``_basicsr`` suffix dropped), sorted."""
    return sorted({n[: -len("_basicsr")] if n.endswith("_basicsr") else n for n in registry.keys()})


def check_kwargs(target: Callable, kwargs: dict, prefix: str, skip: tuple[str, ...] = ("self",)) -> None:
    """Check that ``target(**kwargs)`` names real parameters, gives the required ones, and that values
    for parameters annotated int/float/bool/str have that type. ``prefix`` is the section's key."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return
    owner = getattr(target, "__name__", str(target))
    params = {n: p for n, p in sig.parameters.items() if n not in skip}
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    for k in kwargs:
        if k not in named and not accepts_any:
            raise unknown_argument(prefix, k, named, owner)
    for n, p in params.items():
        if n in named and p.default is inspect.Parameter.empty and n not in kwargs:
            raise OptionsError(f"{prefix}.{n}", f"is required by {owner}")
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # unresolvable annotations: skip type checks  # noqa: BLE001
        hints = {}
    for k, v in kwargs.items():
        convert = annotation_converter(hints.get(k))
        if convert is not None and v is not None:
            convert(v, f"{prefix}.{k}")


def typed_mapping(value: Any, key: str) -> tuple[str, dict]:
    """(``type``, the other keys) of a ``{type: ..., ...}`` mapping."""
    value = mapping(value, key)
    if "type" not in value:
        raise OptionsError(f"{key}.type", "is required")
    kind = as_str(value["type"], f"{key}.type")
    return kind, {k: v for k, v in value.items() if k != "type"}
