"""Load and validate a training option file (BasicSR's YAML format) before any heavy work.

Every mistake is an :class:`OptionsError` naming the dotted key at fault, with the closest valid
key for a typo: unknown keys, wrong types, out-of-range values, missing dataset folders and
pretrained files, arch/optimizer/scheduler/loss/metric arguments the constructor does not take.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
import typing
from pathlib import Path
from typing import Any, Callable

import yaml

from ehat.train.schema import (
    DATASET_COMMON,
    DATASET_EXTRA,
    DATASET_TRAIN,
    REQUIRED,
    SCHEDULERS,
    TOP_LEVEL,
    TRAIN_DYNAMIC,
    Field,
    OptionsError,
    Section,
    as_str,
)

__all__ = ["OptionsError", "load_options", "validate_options", "experiments_root"]

_PHASE = re.compile(r"^(train|val|test)(_.+)?$")
LOSS_KEYS = ("pixel_opt", "perceptual_opt")
BUILTIN_METRICS = ("psnr", "psnr_y", "ssim_y")
"""Metrics every validation reports (``ehat.evaluation.metrics.image_metrics``)."""


def _suggest(key: str, known: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _unknown(prefix: str, key: Any, known: typing.Iterable[str], what: str = "key") -> OptionsError:
    """An unknown key ``prefix.key``, with the closest valid one."""
    shown = str(key) if str(key).strip() else repr(key)
    dotted = f"{prefix}.{shown}" if prefix else shown
    known = sorted(known)
    hint = _suggest(str(key), known) or f"; valid {what}s: {', '.join(known[:30])}"
    return OptionsError(dotted, f"unknown {what}{hint}")


def _unknown_value(key: str, value: str, known: typing.Iterable[str], what: str) -> OptionsError:
    """An unknown name (network, optimizer, loss...) given as the value of ``key``."""
    known = sorted(known)
    hint = _suggest(value, known) or f"; valid: {', '.join(known[:30])}"
    return OptionsError(key, f"unknown {what} {value!r}{hint}")


def _registered(registry: Any, name: str) -> bool:
    """Whether basicsr's ``registry.get(name)`` finds ``name`` (it also tries ``<name>_basicsr``)."""
    return name in registry or f"{name}_basicsr" in registry


def lookup(registry: Any, name: str) -> Any:
    """``registry.get(name)`` without basicsr's fallback message on stdout."""
    table = dict(iter(registry))
    return table[name] if name in table else table[f"{name}_basicsr"]


def _registry_names(registry: Any) -> list[str]:
    return sorted({n[: -len("_basicsr")] if n.endswith("_basicsr") else n for n in registry.keys()})


def _mapping(value: Any, key: str) -> dict:
    if not isinstance(value, dict):
        raise OptionsError(key or "<file>", f"expected a mapping of keys, got {type(value).__name__}")
    for k in value:
        if not isinstance(k, str):
            raise OptionsError(f"{key}.{k!r}" if key else repr(k), "keys must be strings")
    return value


def _check_section(section: Section, value: Any, prefix: str, skip: typing.Iterable[str] = ()) -> dict | None:
    """Validate ``value`` against ``section``; returns a new dict with defaults filled."""
    if value is None:
        if section.nullable:
            return None
        value = {}
    value = _mapping(value, prefix)
    skip = set(skip)
    for k in value:
        if k not in section.fields and k not in skip:
            raise _unknown(prefix, k, list(section.fields) + sorted(skip))
    out: dict[str, Any] = {}
    for k, spec in section.fields.items():
        dotted = f"{prefix}.{k}" if prefix else k
        if isinstance(spec, Section):
            out[k] = _check_section(spec, value.get(k), dotted)
        elif k in value:
            out[k] = spec.check(value[k], dotted)
        elif spec.default is REQUIRED:
            raise OptionsError(dotted, "is required")
        else:
            out[k] = spec.default
    return out


# ----------------------------------------------------------------------------------- constructors
def _annotation_converter(annotation: Any) -> Callable[[Any, str], Any] | None:
    """A converter for simple annotations (int, float, bool, str); None = not checked."""
    from ehat.train import schema

    return {int: schema.as_int, float: schema.as_float, bool: schema.as_bool, str: schema.as_str}.get(
        annotation
    )


def check_kwargs(target: Callable, kwargs: dict, prefix: str, skip: tuple[str, ...] = ("self",)) -> None:
    """Check that ``target(**kwargs)`` names real parameters, gives the required ones, and that values
    for parameters annotated int/float/bool/str have that type. ``prefix`` is the section's key."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return
    params = {n: p for n, p in sig.parameters.items() if n not in skip}
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    for k in kwargs:
        if k not in named and not accepts_any:
            raise _unknown(prefix, k, named, what=f"argument of {getattr(target, '__name__', target)}")
    for n, p in params.items():
        if n in named and p.default is inspect.Parameter.empty and n not in kwargs:
            raise OptionsError(f"{prefix}.{n}", f"is required by {getattr(target, '__name__', target)}")
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # unresolvable annotations: skip type checks  # noqa: BLE001
        hints = {}
    for k, v in kwargs.items():
        convert = _annotation_converter(hints.get(k))
        if convert is not None and v is not None:
            convert(v, f"{prefix}.{k}")


def _typed_mapping(value: Any, key: str) -> tuple[str, dict]:
    value = _mapping(value, key)
    if "type" not in value:
        raise OptionsError(f"{key}.type", "is required")
    kind = as_str(value["type"], f"{key}.type")
    return kind, {k: v for k, v in value.items() if k != "type"}


def _check_network(value: Any) -> dict:
    """``network_g``: a registered class or a preset name, plus constructor arguments checked by name and,
    where annotated int/float/bool/str, by type."""
    from basicsr.utils.registry import ARCH_REGISTRY

    import ehat.archs as archs

    kind, kwargs = _typed_mapping(value, "network_g")
    presets = archs.list_presets()
    if kind in presets:
        cls = lookup(ARCH_REGISTRY, archs.preset_config(kind)["type"])
    elif _registered(ARCH_REGISTRY, kind):
        cls = lookup(ARCH_REGISTRY, kind)
    else:
        raise _unknown_value("network_g.type", kind, _registry_names(ARCH_REGISTRY) + presets, "network type")
    valid = archs.network_kwargs(cls)
    for k in kwargs:
        if k not in valid:
            raise _unknown("network_g", k, valid, what=f"argument of {cls.__name__}")
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in klass.__dict__ and klass.__module__.startswith("ehat"):
            try:
                hints.update(typing.get_type_hints(klass.__init__))
            except Exception:  # noqa: BLE001  (unresolvable annotation: skip type checks)
                pass
    for k, v in kwargs.items():
        convert = _annotation_converter(hints.get(k))
        if convert is not None and v is not None:
            convert(v, f"network_g.{k}")
    return {"type": kind, **kwargs}


def _check_optimizer(value: Any) -> dict:
    import torch

    kind, kwargs = _typed_mapping(value, "train.optim_g")
    names = [
        n for n, c in vars(torch.optim).items() if inspect.isclass(c) and issubclass(c, torch.optim.Optimizer)
    ]
    if kind not in names or kind == "Optimizer":
        raise _unknown_value("train.optim_g.type", kind, [n for n in names if n != "Optimizer"], "optimizer")
    check_kwargs(getattr(torch.optim, kind), kwargs, "train.optim_g", skip=("self", "params"))
    if "lr" not in kwargs:
        raise OptionsError("train.optim_g.lr", "is required")
    return {"type": kind, **kwargs}


def _check_scheduler(value: Any, total_iter: int) -> dict | None:
    if value is None:
        return None
    from basicsr.models import lr_scheduler

    kind, kwargs = _typed_mapping(value, "train.scheduler")
    if kind not in SCHEDULERS:
        raise _unknown_value("train.scheduler.type", kind, SCHEDULERS, "scheduler")
    target = (
        lr_scheduler.CosineAnnealingRestartLR
        if kind == "CosineAnnealingRestartLR"
        else lr_scheduler.MultiStepRestartLR
    )
    check_kwargs(target, kwargs, "train.scheduler", skip=("self", "optimizer", "last_epoch"))
    from ehat.train.schema import as_float, as_int, list_of

    if kind == "CosineAnnealingRestartLR":
        periods = list_of(as_int)(kwargs["periods"], "train.scheduler.periods")
        weights = list_of(as_float)(kwargs.get("restart_weights", [1]), "train.scheduler.restart_weights")
        if len(periods) != len(weights):
            raise OptionsError("train.scheduler.restart_weights", "needs one weight per entry of 'periods'")
        if sum(periods) < total_iter:
            raise OptionsError(
                "train.scheduler.periods", f"sum {sum(periods)} must cover train.total_iter ({total_iter})"
            )
    else:
        list_of(as_int)(kwargs["milestones"], "train.scheduler.milestones")
        restarts = list_of(as_int)(kwargs.get("restarts", [0]), "train.scheduler.restarts")
        weights = list_of(as_float)(kwargs.get("restart_weights", [1]), "train.scheduler.restart_weights")
        if len(restarts) != len(weights):
            raise OptionsError("train.scheduler.restart_weights", "needs one weight per entry of 'restarts'")
    return {"type": kind, **kwargs}


def _check_loss(value: Any, key: str) -> dict | None:
    if value is None:
        return None
    import basicsr.losses  # noqa: F401  (fills LOSS_REGISTRY)
    from basicsr.utils.registry import LOSS_REGISTRY

    kind, kwargs = _typed_mapping(value, key)
    if not _registered(LOSS_REGISTRY, kind):
        raise _unknown_value(f"{key}.type", kind, _registry_names(LOSS_REGISTRY), "loss")
    check_kwargs(lookup(LOSS_REGISTRY, kind), kwargs, key)
    return {"type": kind, **kwargs}


def _check_metrics(value: Any) -> dict | None:
    if value is None:
        return None
    import basicsr.metrics  # noqa: F401  (fills METRIC_REGISTRY)
    from basicsr.utils.registry import METRIC_REGISTRY

    out = {}
    for name, spec in _mapping(value, "val.metrics").items():
        key = f"val.metrics.{name}"
        kind, kwargs = _typed_mapping(spec, key)
        if not _registered(METRIC_REGISTRY, kind):
            raise _unknown_value(f"{key}.type", kind, _registry_names(METRIC_REGISTRY), "metric")
        better = kwargs.pop("better", "higher")
        if better not in ("higher", "lower"):
            raise OptionsError(f"{key}.better", f"expected 'higher' or 'lower', got {better!r}")
        check_kwargs(lookup(METRIC_REGISTRY, kind), kwargs, key, skip=("self", "img", "img2"))
        out[name] = {"type": kind, "better": better, **kwargs}
    return out


def _dataset_extra_keys(kind: str) -> dict[str, Field]:
    """Keys a dataset type takes beyond BasicSR's: our table, or the class attribute ``OPTION_KEYS``."""
    from basicsr.utils.registry import DATASET_REGISTRY

    declared = getattr(lookup(DATASET_REGISTRY, kind), "OPTION_KEYS", None)
    if isinstance(declared, dict):
        return {k: v for k, v in declared.items() if isinstance(v, Field)}
    return dict(DATASET_EXTRA.get(kind, {}))


def _check_dataset(phase_key: str, value: Any, scale: int, check_paths: bool) -> dict:
    import basicsr.data  # noqa: F401  (fills DATASET_REGISTRY)
    from basicsr.utils.registry import DATASET_REGISTRY

    prefix = f"datasets.{phase_key}"
    value = _mapping(value, prefix)
    kind = as_str(value.get("type"), f"{prefix}.type") if "type" in value else None
    if kind is None:
        raise OptionsError(f"{prefix}.type", "is required")
    if not _registered(DATASET_REGISTRY, kind):
        raise _unknown_value(f"{prefix}.type", kind, _registry_names(DATASET_REGISTRY), "dataset type")
    phase = phase_key.split("_")[0]
    fields = dict(DATASET_COMMON)
    if phase == "train":
        fields.update(DATASET_TRAIN)
    fields.update(_dataset_extra_keys(kind))
    out = _check_section(Section(fields), value, prefix)
    out["phase"] = phase
    out["scale"] = scale
    out["name"] = out["name"] or phase_key
    if phase == "train" and out["gt_size"] % scale:
        raise OptionsError(f"{prefix}.gt_size", f"{out['gt_size']} must be a multiple of scale {scale}")
    gt, lq = out["dataroot_gt"], out["dataroot_lq"]
    if isinstance(gt, list) and isinstance(lq, list) and len(gt) != len(lq):
        raise OptionsError(f"{prefix}.dataroot_lq", f"has {len(lq)} entries but dataroot_gt has {len(gt)}")
    if check_paths:
        for k in ("dataroot_gt", "dataroot_lq", "meta_info_file"):
            paths = out.get(k) or []
            for i, p in enumerate(paths if isinstance(paths, list) else [paths]):
                if not os.path.exists(p):
                    where = f"{prefix}.{k}" + (f"[{i}]" if isinstance(paths, list) else "")
                    raise OptionsError(
                        where, f"path does not exist: {p} (relative paths start at {os.getcwd()})"
                    )
    return out


def _check_datasets(value: Any, scale: int, check_paths: bool) -> dict:
    value = _mapping(value, "datasets")
    out = {}
    for phase_key, spec in value.items():
        if not _PHASE.match(phase_key):
            raise OptionsError(
                f"datasets.{phase_key}", "dataset keys must be 'train', 'val', 'val_<n>' or 'test_<n>'"
            )
        out[phase_key] = _check_dataset(phase_key, spec, scale, check_paths)
    if "train" not in out:
        raise OptionsError("datasets.train", "is required")
    return out


# --------------------------------------------------------------------------------------- public
def validate_options(opt: Any, *, check_paths: bool = True) -> dict:
    """Validate a parsed option mapping; returns a new dict with every default filled.

    ``check_paths``: also require dataset folders, meta-info files, ``path.pretrain_network_g`` and
    ``path.resume_state`` to exist (turn off to check a config written for another machine).
    Raises :class:`OptionsError` naming the key.
    """
    opt = _mapping(opt, "")
    dynamic = ("datasets", "network_g", "val", "train")
    top = Section({k: v for k, v in TOP_LEVEL.fields.items() if k not in dynamic})
    out = _check_section(top, {k: v for k, v in opt.items() if k not in dynamic}, "", skip=dynamic)
    if "network_g" not in opt:
        raise OptionsError("network_g", "is required")
    if "datasets" not in opt:
        raise OptionsError("datasets", "is required")
    if "train" not in opt:
        raise OptionsError("train", "is required")
    train_in = _mapping(opt["train"], "train")
    losses = [k for k in train_in if k.endswith("_opt")]
    out["train"] = _check_section(
        TOP_LEVEL.fields["train"], train_in, "train", skip=TRAIN_DYNAMIC + tuple(losses)
    )
    if "optim_g" not in train_in:
        raise OptionsError("train.optim_g", "is required")
    out["train"]["optim_g"] = _check_optimizer(train_in["optim_g"])
    out["train"]["scheduler"] = _check_scheduler(train_in.get("scheduler"), out["train"]["total_iter"])
    for k in losses:
        if k not in LOSS_KEYS:
            raise _unknown("train", k, LOSS_KEYS, what="loss key")
        out["train"][k] = _check_loss(train_in[k], f"train.{k}")
    if not any(out["train"].get(k) for k in LOSS_KEYS):
        raise OptionsError("train.pixel_opt", "at least one loss (pixel_opt or perceptual_opt) is required")
    if out["train"]["new_param_keys"] and out["train"]["new_param_lr"] is None:
        raise OptionsError("train.new_param_lr", "is required when train.new_param_keys is given")

    val_in = opt.get("val")
    val_in = _mapping(val_in, "val") if val_in is not None else None
    out["val"] = _check_section(TOP_LEVEL.fields["val"], val_in, "val", skip=("metrics",))
    if out["val"] is not None:
        out["val"]["metrics"] = _check_metrics(val_in.get("metrics"))
        names = set(BUILTIN_METRICS) | set(out["val"]["metrics"] or {})
        if out["val"]["best_metric"] not in names:
            raise _unknown_value("val.best_metric", out["val"]["best_metric"], names, "metric")

    out["network_g"] = _check_network(opt["network_g"])
    out["datasets"] = _check_datasets(opt["datasets"], out["scale"], check_paths)
    if out["path"]["strict_load_g"] is False:
        raise OptionsError(
            "path.strict_load_g",
            "non-strict loading is not supported (it hides mistakes): convert the checkpoint with "
            "ehat.checkpoints instead, or remove the key",
        )
    if check_paths:
        for k in ("pretrain_network_g", "resume_state"):
            p = out["path"][k]
            if p is not None and not os.path.isfile(p):
                raise OptionsError(f"path.{k}", f"file does not exist: {p}")
    return out


def load_options(path: str | os.PathLike, *, check_paths: bool = True) -> dict:
    """Read a YAML option file with ``yaml.safe_load`` and validate it (see :func:`validate_options`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OptionsError("<file>", f"cannot read option file {path}: {exc.strerror or exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OptionsError("<file>", f"{path} is not valid YAML: {exc}") from exc
    if raw is None:
        raise OptionsError("<file>", f"{path} is empty")
    try:
        return validate_options(raw, check_paths=check_paths)
    except OptionsError as exc:
        raise OptionsError(exc.key, f"{exc.message} (in {path})") from None


def experiments_root(opt: dict) -> Path:
    """Where a run writes: ``path.experiments_root``, else ``./experiments/<name>`` (current folder)."""
    root = opt["path"].get("experiments_root")
    return Path(root) if root else Path.cwd() / "experiments" / opt["name"]
