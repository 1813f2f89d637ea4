"""Every converter of option values, in one place: ``(value, key) -> converted value``.

A converter raises :class:`~ehat.options.schema.OptionsError` naming ``key``; :func:`converter` tags
it with the type the docs show and the Python types it accepts (a typo is answered only with keys
of the same kind). Scalars (int, float, bool, str), lists, paths, probabilities and ranges, the
compile mode, blur kernel names, and the converter for a constructor argument's annotation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from ehat.acceleration import COMPILE_MODES
from ehat.options.schema import Converter, OptionsError, describe

__all__ = [
    "KERNELS",
    "annotation_converter",
    "as_bool",
    "as_compile_mode",
    "as_float",
    "as_int",
    "as_str",
    "converter",
    "int_or_auto",
    "int_or_list",
    "int_or_nulls",
    "kernel_list",
    "list_of",
    "probabilities3",
    "probability",
    "range2",
    "str_or_list",
]

T = TypeVar("T")
KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
"""basicsr's blur kernel kinds (RealESRGANDataset's ``kernel_list``)."""


def converter(label: str, *types: type) -> Callable[[T], T]:
    """Tag a converter with the type name the docs show and the Python types it can accept
    (used to suggest only keys of the same kind for a typo)."""

    def tag(fn: T) -> T:
        fn.label = label  # type: ignore[attr-defined]
        fn.types = types  # type: ignore[attr-defined]
        return fn

    return tag


@converter("int", int, float)
def as_int(value: Any, key: str) -> int:
    """An int; integral floats such as YAML's ``!!float 5e3`` are accepted (BasicSR configs use them)."""
    if isinstance(value, bool):
        raise OptionsError(key, f"expected an integer, got the boolean {value}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise OptionsError(key, f"expected an integer, got {describe(value)}")


@converter("float", int, float)
def as_float(value: Any, key: str) -> float:
    """A finite float (ints accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionsError(key, f"expected a number, got {describe(value)}")
    if not math.isfinite(value):
        raise OptionsError(key, f"expected a finite number, got {value}")
    return float(value)


@converter("bool", bool)
def as_bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise OptionsError(key, f"expected true or false, got {describe(value)}")
    return value


@converter("str", str)
def as_str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise OptionsError(key, f"expected a non-empty string, got {describe(value)}")
    return value


def list_of(convert: Converter) -> Converter:
    """A list whose items pass ``convert`` (a scalar is not promoted)."""

    @converter(f"list[{getattr(convert, 'label', 'any')}]", list, tuple)
    def check(value: Any, key: str) -> list:
        if not isinstance(value, (list, tuple)):
            raise OptionsError(key, f"expected a list, got {describe(value)}")
        return [convert(v, f"{key}[{i}]") for i, v in enumerate(value)]

    return check


@converter("str | list[str]", str, list, tuple)
def str_or_list(value: Any, key: str) -> str | list[str]:
    """A path or a list of paths (several folders concatenated)."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise OptionsError(key, "expected at least one path, got an empty list")
        return list_of(as_str)(value, key)
    return as_str(value, key)


@converter("int | 'auto'", int, float, str)
def int_or_auto(value: Any, key: str) -> int | str:
    if value == "auto":
        return "auto"
    return as_int(value, key)


@converter("false | 'blocks' | 'full' (true = 'full')", bool, str)
def as_compile_mode(value: Any, key: str) -> str:
    """``train.compile``: YAML booleans kept for old configs (true -> 'full', false -> 'false')."""
    if isinstance(value, bool):
        return "full" if value else "false"
    if isinstance(value, str) and value.lower() in COMPILE_MODES:
        return value.lower()
    raise OptionsError(key, f"expected false, blocks or full (true means full), got {value!r}")


@converter("float in [0, 1]", int, float)
def probability(value: Any, key: str) -> float:
    """A probability: a number in [0, 1]."""
    p = as_float(value, key)
    if not 0.0 <= p <= 1.0:
        raise OptionsError(key, f"{p} is a probability: expected a number in [0, 1]")
    return p


@converter("[p_up, p_down, p_keep]", list, tuple)
def probabilities3(value: Any, key: str) -> list[float]:
    """A resize's [P(up), P(down), P(keep)], with a positive sum."""
    probs = list_of(probability)(value, key)
    if len(probs) != 3 or sum(probs) <= 0:
        raise OptionsError(
            key, f"expected three probabilities [up, down, keep] with a positive sum, got {value}"
        )
    return probs


@converter("[low, high]", list, tuple)
def range2(value: Any, key: str) -> list[float]:
    """A [low, high] range with low <= high."""
    pair = list_of(as_float)(value, key)
    if len(pair) != 2 or pair[0] > pair[1]:
        raise OptionsError(key, f"expected [low, high] with low <= high, got {value}")
    return pair


@converter("int | list[int]", int, float, list, tuple)
def int_or_list(value: Any, key: str) -> int | list[int]:
    """One int for every root, or one per root."""
    return list_of(as_int)(value, key) if isinstance(value, (list, tuple)) else as_int(value, key)


@converter("int | list[int | null]", int, float, list, tuple)
def int_or_nulls(value: Any, key: str) -> int | list[int | None]:
    """One int for every root, or one per root (null: no limit)."""
    if isinstance(value, (list, tuple)):
        return [None if x is None else as_int(x, f"{key}[{i}]") for i, x in enumerate(value)]
    return as_int(value, key)


@converter("list[str]", list, tuple)
def kernel_list(value: Any, key: str) -> list[str]:
    """Blur kernel kinds, each one of :data:`KERNELS`."""
    names = list_of(as_str)(value, key)
    for i, n in enumerate(names):
        if n not in KERNELS:
            raise OptionsError(f"{key}[{i}]", f"unknown blur kernel {n!r}; valid: {', '.join(KERNELS)}")
    return names


def annotation_converter(annotation: Any) -> Callable[[Any, str], Any] | None:
    """The converter of a constructor argument annotated int, float, bool or str; None = not checked."""
    return {int: as_int, float: as_float, bool: as_bool, str: as_str}.get(annotation)
