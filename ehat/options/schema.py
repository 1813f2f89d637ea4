"""The machinery of typed option files: per-key specs, and one validator for every section.

An options class is a frozen, keyword-only dataclass whose fields are declared with :func:`option`
(a value: converter, default, range, allowed values, doc) or :func:`section` (a nested options
class). :func:`build` turns a parsed YAML mapping into an instance: unknown keys are refused with
the closest key of the same section and kind, every value is converted (:mod:`ehat.options.converters`)
and range-checked, defaults are filled, then the class's ``check(prefix)`` runs its cross-key rules.
Every mistake is an :class:`OptionsError` naming the dotted key. ``docs/options.md`` is generated
from the same field specs (:mod:`ehat.options.docs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ehat.errors import EhatError, did_you_mean

__all__ = [
    "REQUIRED",
    "Component",
    "Field",
    "OptionsError",
    "build",
    "describe",
    "mapping",
    "option",
    "option_fields",
    "section",
    "to_plain",
    "unknown_key",
]

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()
"""Marker: a key without a default must be given."""

T = TypeVar("T")
Converter = Callable[..., Any]


class OptionsError(EhatError):
    """An invalid option file. ``key`` is the dotted path of the offending key (e.g. ``train.total_iter``)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"option '{key}': {message}")


def describe(value: Any) -> str:
    """``repr(value)`` cut to 60 characters, for messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------------------ key specs
def _kind_of_type(t: type) -> str:
    return "mapping" if issubclass(t, Mapping) else "list" if issubclass(t, (list, tuple)) else "scalar"


def _kind(value: Any) -> str:
    return _kind_of_type(type(value))


@dataclass(frozen=True)
class Field:
    """One option key.

    ``convert(value, key, **needs)`` raises OptionsError; ``needs`` names sibling keys (declared
    earlier) whose converted values it receives. ``refused``: (value, message) pairs of values that
    are valid YAML but not supported; ``unsupported``: a BasicSR key EHAT does not implement (any
    non-null value is refused with this reason). ``section``: a nested options class instead of a
    converter.
    """

    convert: Converter | None
    default: Any = REQUIRED
    nullable: bool = False
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""
    refused: tuple[tuple[Any, str], ...] = ()
    unsupported: str = ""
    needs: tuple[str, ...] = ()
    section: type | None = None

    @property
    def label(self) -> str:
        """The type as the docs show it."""
        label = self.section.__name__ if self.section else getattr(self.convert, "label", "mapping")
        return f"{label} | null" if self.nullable else label

    def accepts_kind(self, value: Any) -> bool:
        """Whether ``value`` is of a kind this key takes: a mapping, a list or a scalar (YAML's scalars
        are loosely typed, so any scalar counts; null counts everywhere)."""
        if value is None:
            return True
        if self.section is not None:
            return _kind(value) == "mapping"
        types = getattr(self.convert, "types", None)
        return types is None or _kind(value) in {_kind_of_type(t) for t in types}

    def parse(self, value: Any, key: str, siblings: Mapping[str, Any]) -> Any:
        if self.unsupported and value is not None:
            raise OptionsError(key, f"not supported by EHAT: {self.unsupported}")
        if self.section is not None:
            if value is None and self.nullable:
                return None
            return build(self.section, {} if value is None else value, key)
        if value is None:
            if self.nullable:
                return None
            raise OptionsError(key, "must not be empty (null)")
        for refused, message in self.refused:
            if value == refused and type(value) is type(refused):
                raise OptionsError(key, message)
        assert self.convert is not None
        out = self.convert(value, key, **{n: siblings[n] for n in self.needs})
        if self.choices and out not in self.choices:
            raise OptionsError(key, f"{describe(out)} is not one of {list(self.choices)}")
        for v in out if isinstance(out, list) else [out]:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if self.minimum is not None and v < self.minimum:
                    raise OptionsError(key, f"{v} is below the minimum {self.minimum}")
                if self.maximum is not None and v > self.maximum:
                    raise OptionsError(key, f"{v} is above the maximum {self.maximum}")
        return out


def option(convert: Converter, default: Any = REQUIRED, **spec: Any) -> Any:
    """A dataclass field for one option key (see :class:`Field` for ``spec``)."""
    meta = {"option": Field(convert, default, **spec)}
    if default is REQUIRED:
        return dataclasses.field(metadata=meta)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type, *, nullable: bool = False, required: bool = False, doc: str = "") -> Any:
    """A dataclass field holding a nested options class (``null`` or absent = defaults, or None
    when ``nullable``)."""
    default = REQUIRED if required else (None if nullable else dataclasses.MISSING)
    meta = {"option": Field(None, default, nullable=nullable, doc=doc, section=cls)}
    if required:
        return dataclasses.field(metadata=meta)
    if nullable:
        return dataclasses.field(default=None, metadata=meta)
    return dataclasses.field(default_factory=cls, metadata=meta)


def option_fields(cls: type) -> dict[str, Field]:
    """The option keys of an options class, in declaration order."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(cls) if "option" in f.metadata}


@dataclass(frozen=True)
class Component:
    """A ``{type: Name, **arguments}`` mapping (optimizer, scheduler, loss) checked against Name's
    constructor; ``args`` are the constructor's keyword arguments."""

    type: str
    args: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.args}


# ------------------------------------------------------------------------------------ validation
def mapping(value: Any, key: str) -> dict:
    """``value`` as a dict with string keys, else OptionsError at ``key``."""
    if not isinstance(value, dict):
        raise OptionsError(key or "<file>", f"expected a mapping of keys, got {type(value).__name__}")
    for k in value:
        if not isinstance(k, str):
            raise OptionsError(f"{key}.{k!r}" if key else repr(k), "keys must be strings")
    return value


def _join(prefix: str, key: Any) -> str:
    shown = str(key) if str(key).strip() else repr(key)
    return f"{prefix}.{shown}" if prefix else shown


def unknown_key(prefix: str, key: str, value: Any, specs: Mapping[str, Field]) -> OptionsError:
    """An unknown key of one section: the closest key of that section that can take a value of
    this kind (a list is not 'corrected' to a flag), else the list of valid keys."""
    same_kind = [name for name, spec in specs.items() if spec.accepts_kind(value)]
    hint = did_you_mean(str(key), same_kind) or f"; valid keys: {', '.join(sorted(specs))}"
    return OptionsError(_join(prefix, key), f"unknown key{hint}")


def build(cls: type[T], value: Any, prefix: str, *, extra: Mapping[str, Field] | None = None) -> T:
    """Validate the mapping ``value`` against options class ``cls``; return an instance.

    ``extra``: further keys (a dataset type's own) collected, converted, into the ``extra`` field.
    The class's ``REFUSED`` (key -> reason) names keys refused on purpose; its ``check(prefix)``
    method, when present, runs the rules that involve several keys.
    """
    value = mapping(value, prefix)
    specs = option_fields(cls)
    extra = dict(extra or {})
    refused: Mapping[str, str] = getattr(cls, "REFUSED", {})
    for k in value:
        if k in specs or k in extra:
            continue
        if k in refused:
            raise OptionsError(_join(prefix, k), refused[k])
        raise unknown_key(prefix, k, value[k], {**specs, **extra})
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        key = _join(prefix, name)
        if name in value:
            out[name] = spec.parse(value[name], key, out)
        elif spec.default is REQUIRED:
            raise OptionsError(key, "is required")
        elif spec.section is not None and not spec.nullable:
            out[name] = build(spec.section, {}, key)
        else:
            out[name] = spec.default
    if extra:
        out["extra"] = {
            k: spec.parse(value[k], _join(prefix, k), out) if k in value else spec.default
            for k, spec in extra.items()
        }
    obj = cls(**out)
    check = getattr(obj, "check", None)
    if check is not None:
        check(prefix)
    return obj


def to_plain(value: Any) -> Any:
    """Options back to plain YAML-able data in BasicSR's layout (the inverse of :func:`build`)."""
    if isinstance(value, Component) or hasattr(value, "to_dict"):
        return to_plain(value.to_dict())
    if dataclasses.is_dataclass(value):
        return {name: to_plain(getattr(value, name)) for name in option_fields(type(value))}
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
