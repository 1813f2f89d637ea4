"""Network descriptors: every fact about an architecture, kept in the architecture's own file.

A :class:`NetworkDescriptor` is what the rest of EHAT asks about a network instead of naming its
class: how to recognise its state dict and read its config off it (checkpoints, zoo), the range
of its images (benchmark, export, submission), its scale, the repeated blocks ``torch.compile``
compiles one by one (acceleration), the modules whose source a submission file inlines, the steps
an ONNX export swaps for graph-friendly ones, and the preparation before inference (e.g. fusing
re-parameterisable branches). Adding a network = its arch file (class + descriptor + presets) and
one import line in :mod:`ehat.archs` (or, for a network outside EHAT, importing its module, which
calls :func:`register_network`).

This module imports only torch and :mod:`ehat.errors`: ``ehat.archs`` never imports checkpoints,
training or evaluation code. State-dict problems raise :class:`StateDictError`, which
``ehat.checkpoints`` wraps into its ``CheckpointError`` naming the file.

Example (a complete descriptor, at the bottom of an arch file)::

    register_network(
        NetworkDescriptor(
            name="RLFN",  # network_g.type
            cls=RLFN,
            detect=lambda sd: "conv_1.weight" in sd,
            infer_config=rlfn_config_from_state_dict,  # (state dict) -> constructor kwargs
            layout="conv_1.weight, block_N.c1_r.weight, upsampler.0.weight",
            data_range=255.0,  # RLFN reads and writes [0, 255]
            compile_blocks=(RLFB,),
            source_modules=("ehat.archs.rlfn_arch",),
            export_steps=(ExportStep(RLFN, "pad_input", "ehat.export.graph:rlfn_pad_input"),),
        )
    )
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ehat.errors import EhatError, did_you_mean

__all__ = [
    "ExportStep",
    "NetworkArgumentError",
    "NetworkConfigError",
    "NetworkDescriptor",
    "StateDictError",
    "UnknownLayoutError",
    "descriptor_of",
    "detect_network",
    "list_networks",
    "count_indexed",
    "network_config_from_state_dict",
    "prepare_for_inference",
    "register_basicsr_archs",
    "register_network",
]

StateDict = Mapping[str, torch.Tensor]


class NetworkConfigError(EhatError):
    """A ``network_g`` config (type, preset or argument) that cannot build a network; the message
    starts with the key at fault (``network_g.<key>: ...``)."""

    def __str__(self) -> str:  # KeyError's repr-quoting would otherwise win in the subclasses
        return str(self.args[0]) if self.args else ""


class UnknownNetworkError(NetworkConfigError, KeyError):
    """``network_g.type`` (or a preset name) that is neither a registered class nor a preset.

    Also a ``KeyError``: callers that caught the old ``KeyError`` keep working.
    """


class NetworkArgumentError(NetworkConfigError, TypeError):
    """A ``network_g.<key>`` the network's constructor does not take.

    Also a ``TypeError``: callers that caught the old ``TypeError`` keep working.
    """


class StateDictError(EhatError, ValueError):
    """A state dict that does not describe a known network, or lacks a key its config is read from.

    Raised by :attr:`NetworkDescriptor.infer_config` and :func:`detect_network`; the message names the
    keys. ``ehat.checkpoints`` re-raises it as a ``CheckpointError`` naming the file. Also a
    ``ValueError``, as every checkpoint error is.
    """


class UnknownLayoutError(StateDictError):
    """No registered network recognises the state dict (the message lists the known layouts)."""


@dataclass(frozen=True)
class ExportStep:
    """One step of a network that ONNX export swaps for a graph-friendly equivalent.

    ``owner``: the module class whose instances get the replacement; ``method``: the name of the
    (small, pure) method to replace on each instance; ``replacement``: a function ``(self, *args)``
    computing the same values without Python control flow on the image size, or a
    ``"module:function"`` string naming one (so arch files need not import export code).
    """

    owner: type[nn.Module]
    method: str
    replacement: Callable[..., Any] | str

    def resolve(self) -> Callable[..., Any]:
        """The replacement function (imported when given as ``"module:function"``)."""
        if callable(self.replacement):
            return self.replacement
        module, _, attr = self.replacement.partition(":")
        return getattr(importlib.import_module(module), attr)


def _identity(model: nn.Module) -> nn.Module:
    return model


def _upscale_attribute(model: nn.Module) -> int:
    return int(model.upscale)


@dataclass(frozen=True)
class NetworkDescriptor:
    """What EHAT needs to know about one network class.

    Fields:
        name: the class name used as ``network_g.type`` (``"HAT"``, ``"EHAT"``, ``"RLFN"``).
        cls: the ``nn.Module`` class; its constructor arguments are the network's hyper-parameters.
        detect: ``(state_dict) -> bool``: whether a canonical state dict (``params_ema`` unwrapped,
            no ``module.`` prefix) is this network's. When several say yes, the one whose class is a
            subclass of all the others' wins (EHAT over HAT); otherwise it is an error.
        infer_config: ``(state_dict) -> dict`` of constructor keyword arguments (no ``type``) read off
            the keys and shapes; raises :class:`StateDictError` naming a missing key.
        layout: the keys that identify the layout, for "unknown layout" messages.
        data_range: the range the network reads and writes: 1.0 ([0, 1]) or 255.0 ([0, 255]).
        scale_of: ``(model) -> int``: the upscaling factor of a built model (default: ``model.upscale``).
        compile_blocks: the repeated block classes ``compile_model(model, "blocks")`` compiles one
            by one; empty: the whole forward is compiled.
        source_modules: dotted names of the modules whose source a submission file inlines, bottom-up
            (a module before the ones that use it); they may import only torch, ``ehat``, ``basicsr``
            and ``timm`` (the last three are stripped; see :mod:`ehat.export.submission`).
        export_steps: the :class:`ExportStep`\\ s ONNX export swaps on each instance (none: the eager
            forward traces as it is).
        prepare_for_inference: ``(model) -> model`` computing the same function, applied before
            evaluation, export and submission (identity by default; a re-parameterisable network fuses
            its branches here). It must be idempotent: callers apply it wherever they may get a model.
    """

    name: str
    cls: type[nn.Module]
    detect: Callable[[StateDict], bool]
    infer_config: Callable[[StateDict], dict[str, Any]]
    layout: str = ""
    data_range: float = 1.0
    scale_of: Callable[[nn.Module], int] = _upscale_attribute
    compile_blocks: tuple[type[nn.Module], ...] = ()
    source_modules: tuple[str, ...] = ()
    export_steps: tuple[ExportStep, ...] = ()
    prepare_for_inference: Callable[[nn.Module], nn.Module] = _identity
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data_range not in (1.0, 255.0):
            raise ValueError(f"{self.name}: data_range must be 1.0 or 255.0, not {self.data_range!r}")


_NETWORKS: dict[str, NetworkDescriptor] = {}


def register_network(descriptor: NetworkDescriptor) -> NetworkDescriptor:
    """Register ``descriptor`` under its ``name`` (re-registering the same class replaces it).

    basicsr's ``ARCH_REGISTRY`` gets the class too, but only once basicsr is imported anyway (see
    :func:`register_basicsr_archs`): importing ``ehat.archs`` never imports basicsr.
    """
    old = _NETWORKS.get(descriptor.name)
    if old is not None and old.cls.__qualname__ != descriptor.cls.__qualname__:
        raise ValueError(f"network {descriptor.name!r} is already registered for {old.cls!r}")
    _NETWORKS[descriptor.name] = descriptor
    if "basicsr.utils.registry" in sys.modules:
        register_basicsr_archs()
    return descriptor


def register_basicsr_archs() -> None:
    """Put every registered network class into basicsr's ``ARCH_REGISTRY`` (idempotent).

    Called when basicsr is first imported (the import hook of :mod:`ehat._compat`) and by
    :func:`register_network` afterwards, so BasicSR code that looks networks up by name finds ours.
    """
    from basicsr.utils.registry import ARCH_REGISTRY

    for name, desc in _NETWORKS.items():
        if name not in ARCH_REGISTRY:
            ARCH_REGISTRY._do_register(name, desc.cls)


def list_networks() -> list[str]:
    """The registered network names (``network_g.type`` values), sorted."""
    return sorted(_NETWORKS)


def descriptor_of(network: nn.Module | type[nn.Module] | str) -> NetworkDescriptor:
    """The descriptor of a model, a model class or a type name.

    A model or class is matched by its class, then by its nearest registered base class (a
    subclass of a registered network, such as a submission's ``Team35EHAT``, is described by it).
    Unknown: an :class:`UnknownNetworkError` listing the registered networks.
    """
    if isinstance(network, str):
        if network in _NETWORKS:
            return _NETWORKS[network]
        raise UnknownNetworkError(
            f"network_g.type: unknown network {network!r}{did_you_mean(network, _NETWORKS)}; "
            f"registered networks: {', '.join(list_networks())}"
        )
    cls = network if isinstance(network, type) else type(network)
    for klass in cls.__mro__:
        for desc in _NETWORKS.values():
            if desc.cls is klass:
                return desc
    raise UnknownNetworkError(
        f"{cls.__name__} is not a registered network (registered: {', '.join(list_networks())}); "
        "register it with ehat.archs.register_network(NetworkDescriptor(...)) in its arch file"
    )


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """``model`` in its inference form (its descriptor's ``prepare_for_inference``; unchanged when the
    class is not registered). Evaluation, export and submission call this before using a model."""
    cls = type(model)
    for klass in cls.__mro__:
        for desc in _NETWORKS.values():
            if desc.cls is klass:
                return desc.prepare_for_inference(model)
    return model


def detect_network(state_dict: StateDict) -> NetworkDescriptor:
    """The one registered network whose ``detect`` accepts ``state_dict`` (canonical keys).

    None: an :class:`UnknownLayoutError` listing every known network and its identifying keys.
    """
    found = [d for d in _NETWORKS.values() if d.detect(state_dict)]
    # An extension's layout includes its base's (EHAT's keys contain HAT's): the most derived wins.
    derived = [d for d in found if all(issubclass(d.cls, o.cls) for o in found)]
    if len(derived) == 1:
        return derived[0]
    if found:
        raise StateDictError(
            f"the state dict matches several networks ({', '.join(d.name for d in found)}): "
            "their descriptors' detect() must exclude each other"
        )
    known = "; ".join(f"{d.name} ({d.layout or 'no layout given'})" for d in _NETWORKS.values())
    first = ", ".join(list(state_dict)[:5]) or "none"
    raise UnknownLayoutError(
        f"a state dict of an unknown layout: none of the known networks {known}. Its first keys: {first}. "
        "Give a checkpoint of one of these networks (or convert yours to our key names)."
    )


def network_config_from_state_dict(state_dict: StateDict) -> dict[str, Any]:
    """``{'type': name, **kwargs}`` of the network ``state_dict`` holds (detect, then infer_config)."""
    desc = detect_network(state_dict)
    return {"type": desc.name, **desc.infer_config(state_dict)}


def count_indexed(state_dict: StateDict, prefix: str) -> int:
    """How many ``<prefix>.<i>.`` sub-modules a state dict holds (max index + 1; 0 when none)."""
    pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)\.")
    indices = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    return max(indices) + 1 if indices else 0
