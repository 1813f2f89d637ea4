"""Every checkpoint format EHAT accepts, in one place: read, convert, infer the config, load, save.

Accepted: BasicSR files (``params_ema`` preferred, ``params`` fallback), bare state dicts,
``module.`` (DataParallel/DDP) prefixes, ``.pth`` and ``.safetensors``, official HAT / HAT-L
weights and ``preHAT_L_x4.pth`` (into HAT or EHAT), and team SKDADDYS's ``SKDADDYS_Ehat.pth``
whose BSA vectors are repeated under every sub-module prefix
(``...__branchattentionmodule__.weight_0``), and RLFN's ``rlfn_x4.pth`` / ``rlfn_ntire_x4.pth``.
Files are read with ``weights_only=True`` only.

Every problem a user can cause raises :class:`CheckpointError` (an :class:`ehat.errors.EhatError`):
a missing file, a folder given as a file (its checkpoint files are listed), an unreadable or
code-carrying file, a state dict of an unknown layout, and any mismatch (missing, unexpected,
wrong shape, wrong scale, other depths), naming the file and keys. The only keys allowed to be absent are EHAT's new parameters when the file is a
plain HAT checkpoint; they keep their identity initialization and are listed in the report. A
non-strict load (``strict_load_g: false``, HAT's x2 -> x4 fine-tuning) loads every key whose shape
fits and reports every key it did not load.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ehat.atomic import atomic_torch_save, atomic_write_bytes
from ehat.errors import EhatError

TEAM_BSA_MODULE = "__branchattentionmodule__"
BSA_KEYS = ("branch_weights.weight_0", "branch_weights.weight_1")
_EHAT_NEW_PREFIXES = ("branch_weights.", "dual_attention.")
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")


class CheckpointError(EhatError, ValueError):
    """A checkpoint could not be read or does not fit the network; the message names keys/files.

    Also a ``ValueError``: callers that caught ``ValueError`` around loading keep working.
    """


@dataclass
class LoadReport:
    """What :func:`load_weights` did: the EHAT parameters left at their identity initialization, and for
    a non-strict load every key left at its initial value, every unexpected key and every shape that
    did not fit (all listed, none hidden)."""

    source: str
    new_parameters: list[str] = field(default_factory=list)
    left_at_init: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_shape: list[str] = field(default_factory=list)
    loaded: int = 0
    """Number of tensors copied from the file."""

    @property
    def complete(self) -> bool:
        """Whether every key of the model came from the file (EHAT's identity-initialized ones aside)."""
        return not (self.left_at_init or self.unexpected or self.wrong_shape)

    def summary(self) -> str:
        if self.complete and not self.new_parameters:
            return f"loaded {self.source}: all keys matched"
        if self.complete:
            return (
                f"loaded {self.source}: a HAT checkpoint; {len(self.new_parameters)} new EHAT parameters keep "
                f"their identity initialization: {', '.join(self.new_parameters)}"
            )
        lines = [f"loaded {self.source} NON-STRICTLY: {self.loaded} tensors copied; not loaded:"]
        for title, keys in (
            ("keys left at their initial value (absent from the file)", self.left_at_init),
            ("shapes that did not fit (left at their initial value)", self.wrong_shape),
            ("unexpected keys in the file (ignored)", self.unexpected),
            ("new EHAT parameters at their identity initialization", self.new_parameters),
        ):
            if keys:
                lines.append(f"  {len(keys)} {title}:")
                lines += [f"    {k}" for k in keys]
        return "\n".join(lines)


# --------------------------------------------------------------------------- reading


def checkpoint_file(path: str | os.PathLike, what: str = "checkpoint file") -> Path:
    """``path`` as a Path if it is a file; else a :class:`CheckpointError` saying what it is instead.

    A folder is named as one, with the checkpoint files (``.pth``/``.pt``/``.ckpt``/``.safetensors``)
    inside it, so that a training-run folder given by mistake points at the file to pick.
    """
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        try:
            found = sorted(p.name for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and p.is_file())
        except OSError as err:
            found, unreadable = [], f" (cannot list it: {err.strerror or err})"
        else:
            unreadable = ""
        if found:
            shown = ", ".join(found[:10]) + (f", ... ({len(found)} in all)" if len(found) > 10 else "")
            inside = f"; checkpoint files in it: {shown}"
        else:
            inside = f"; it holds no .pth/.pt/.ckpt/.safetensors file{unreadable}"
        raise CheckpointError(
            f"{path} is a folder, not a {what}: give a .pth or .safetensors file (e.g. {path}/net_g_latest.pth)"
            f"{inside}"
        )
    raise CheckpointError(f"{what} not found: {path}")


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a .pth/.pt/.ckpt (weights_only) or .safetensors file into a dict, with clear errors."""
    path = checkpoint_file(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file is empty (0 bytes): {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
                meta = f.metadata() or {}
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(f"{path} is not a valid .safetensors file: {err}") from err
        if "arch" in meta:
            return {"params": tensors, "arch": json.loads(meta["arch"])}
        return tensors
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects beyond tensors and plain containers "
            f"(weights_only=True rejected it; a checkpoint that runs code is never loaded). Details: {err}"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {err}"
        ) from err
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a dict of weights")
    return dict(obj)


def unwrap_state_dict(
    obj: Mapping[str, Any], param_key: str = "auto", source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Pick the network weights out of a checkpoint dict, in our canonical layout.

    ``param_key='auto'`` takes ``params_ema``, then ``params``, then ``state_dict``/``model``, else the
    dict itself. A named key that is absent is an error listing the keys present.
    """
    return collapse_team_bsa(_pick_state_dict(obj, param_key, source), source)


def _pick_state_dict(obj: Mapping[str, Any], param_key: str, source: str) -> dict[str, torch.Tensor]:
    """The weights entry of ``obj`` with ``module.`` prefixes removed, still in the file's layout."""
    if param_key != "auto":
        if param_key not in obj:
            raise CheckpointError(f"{source} has no '{param_key}' entry (it has: {', '.join(map(str, obj))})")
        sd = obj[param_key]
    else:
        sd = obj
        for key in ("params_ema", "params", "state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                sd = obj[key]
                break
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"{source}: the '{param_key}' entry is not a dict of tensors")
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor")
        out[key[len("module.") :] if key.startswith("module.") else key] = value
    return out


def read_state_dict(
    source: str | os.PathLike | Mapping[str, Any], param_key: str = "auto"
) -> dict[str, torch.Tensor]:
    """A canonical state dict from a file path or an already-loaded dict (see :func:`unwrap_state_dict`)."""
    if isinstance(source, Mapping):
        return unwrap_state_dict(source, param_key, "state dict")
    return unwrap_state_dict(read_checkpoint(source), param_key, str(source))


# --------------------------------------------------------------------------- team SKDADDYS layout


def collapse_team_bsa(sd: dict[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Replace the release's repeated ``<prefix>__branchattentionmodule__.weight_{0,1}`` entries by
    ``branch_weights.weight_{0,1}``; every copy must be identical."""
    copies: dict[str, list[tuple[str, torch.Tensor]]] = {"weight_0": [], "weight_1": []}
    out = {}
    for key, value in sd.items():
        match = re.fullmatch(rf"(?:.*\.)?{TEAM_BSA_MODULE}\.(weight_[01])", key)
        if match:
            copies[match.group(1)].append((key, value))
        else:
            out[key] = value
    for name, found in copies.items():
        if not found:
            continue
        ref_key, ref = found[0]
        differing = [k for k, v in found[1:] if v.shape != ref.shape or not torch.equal(v, ref)]
        if differing:
            raise CheckpointError(
                f"{source}: the {len(found)} copies of the BSA vector {name} disagree: {differing[:5]} "
                f"{'(and more) ' if len(differing) > 5 else ''}differ from {ref_key}. The file is inconsistent; "
                "re-export it from the model that trained it."
            )
        out[f"branch_weights.{name}"] = ref
    return out


def team_bsa_prefixes(depths: list[int]) -> list[str]:
    """Every prefix under which the release repeats its BSA module (181 for HAT-L)."""
    prefixes = [""]
    for i, depth in enumerate(depths):
        group = f"layers.{i}.residual_group."
        prefixes += [f"layers.{i}.", group]
        for j in range(depth):
            prefixes += [f"{group}blocks.{j}.", f"{group}blocks.{j}.conv_block."]
        prefixes.append(f"{group}overlap_attn.")
    return prefixes


def expand_team_bsa(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict -> the release's layout (BSA vectors repeated under every prefix)."""
    if not all(k in sd for k in BSA_KEYS):
        raise CheckpointError("the team's layout needs BSA weights: this state dict has no branch_weights")
    extra = [k for k in sd if k.startswith("dual_attention.")]
    if extra:
        raise CheckpointError(
            f"the team's layout has no dual attention; these keys cannot be expressed: {extra[:4]}"
        )
    out = {k: v for k, v in sd.items() if k not in BSA_KEYS}
    for prefix in team_bsa_prefixes(infer_config(sd)["depths"]):
        for name in ("weight_0", "weight_1"):
            out[f"{prefix}{TEAM_BSA_MODULE}.{name}"] = sd[f"branch_weights.{name}"].clone()
    return out


# --------------------------------------------------------------------------- config inference


def infer_config(sd: Mapping[str, torch.Tensor], source: str | None = None) -> dict[str, Any]:
    """Network config {'type': ..., **kwargs} read off a (canonical) state dict's keys and shapes.

    The registered network whose descriptor detects the layout reads it
    (:func:`ehat.archs.descriptor.network_config_from_state_dict`); values no state dict records keep
    the published defaults. A dict of another layout, or one lacking a key the config is read from,
    raises :class:`CheckpointError` (prefixed with ``source`` when given).
    """
    from ehat.archs import network_config_from_state_dict
    from ehat.archs.descriptor import StateDictError

    try:
        return network_config_from_state_dict(sd)
    except StateDictError as err:
        raise CheckpointError(f"{source}: {err}" if source else str(err)) from err


# --------------------------------------------------------------------------- loading into a model


def _is_new_ehat_key(key: str) -> bool:
    return key.startswith(_EHAT_NEW_PREFIXES)


def load_weights(
    model: nn.Module,
    source: str | os.PathLike | Mapping[str, Any],
    param_key: str = "auto",
    *,
    name: str | None = None,
    hint: str | None = None,
    strict: bool = True,
) -> LoadReport:
    """Load weights strictly into ``model``; raise :class:`CheckpointError` naming every mismatch.

    Allowed: a plain HAT checkpoint into EHAT (the new BSA / dual-attention parameters stay at
    their identity init and are listed in the returned report). ``name`` names an already-read
    ``source`` dict in messages (a path names itself); ``hint`` replaces the closing line of a
    mismatch message (what the caller's user should do).

    ``strict=False`` (BasicSR's ``strict_load_g: false``, HAT's x2 -> x4 fine-tuning): every key whose
    shape fits is loaded; the report lists every key left at its initial value, every unexpected key
    and every shape that did not fit (log :meth:`LoadReport.summary`). A file sharing no key with the
    model is still an error.
    """
    if isinstance(source, Mapping):
        name, raw = name or "state dict", source
    else:
        name, raw = name or str(source), read_checkpoint(source)
    picked = _pick_state_dict(raw, param_key, name)
    team_layout = any(TEAM_BSA_MODULE in k for k in picked)
    sd = collapse_team_bsa(picked, name)
    own = model.state_dict()
    unexpected = sorted(k for k in sd if k not in own)
    missing = sorted(k for k in own if k not in sd)
    wrong_shape = sorted(
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sd
        if k in own and sd[k].shape != own[k].shape
    )
    file_is_hat = not any(_is_new_ehat_key(k) for k in sd)
    new_params = [k for k in missing if _is_new_ehat_key(k)] if file_is_hat else []
    missing = [k for k in missing if k not in new_params]
    if not strict:
        fits = {k: v for k, v in sd.items() if k in own and v.shape == own[k].shape}
        if not fits:
            raise CheckpointError(
                _mismatch_message(name, model, sd, unexpected, missing, wrong_shape, team_layout, hint)
                + "\n  (not one key fits, so even a non-strict load would load nothing)"
            )
        model.load_state_dict({**own, **fits}, strict=True)
        return LoadReport(name, new_params, missing, unexpected, wrong_shape, loaded=len(fits))
    if unexpected or missing or wrong_shape:
        raise CheckpointError(
            _mismatch_message(name, model, sd, unexpected, missing, wrong_shape, team_layout, hint)
        )
    model.load_state_dict({**{k: own[k] for k in new_params}, **sd}, strict=True)
    return LoadReport(name, new_params, loaded=len(sd))


def _shape_of(cfg: Mapping[str, Any]) -> str:
    """``depths [..] (embed_dim N)`` for HAT/EHAT configs, RLFN's widths otherwise."""
    if "depths" in cfg:
        return f"depths {list(cfg['depths'])} (embed_dim {cfg.get('embed_dim')})"
    return ", ".join(f"{k} {cfg[k]}" for k in ("feature_channels", "mid_channels", "num_blocks") if k in cfg)


def _mismatch_message(
    name: str,
    model: nn.Module,
    sd: Mapping[str, torch.Tensor],
    unexpected: list[str],
    missing: list[str],
    wrong_shape: list[str],
    team_layout: bool = False,
    hint: str | None = None,
) -> str:
    lines = [f"checkpoint {name} does not fit {type(model).__name__}:"]
    try:
        file_cfg: dict[str, Any] | None = infer_config(sd)
    except CheckpointError:  # an unknown layout: the key lists below are the real message
        file_cfg = None
    model_scale = getattr(model, "upscale", None)
    if file_cfg is not None:
        if model_scale is not None and file_cfg.get("upscale") not in (None, model_scale):
            lines.append(f"  scale: the checkpoint is x{file_cfg['upscale']}, the model is x{model_scale}")
            if hint is None:
                hint = (
                    f"x{file_cfg['upscale']} weights cannot load strictly into a x{model_scale} network. Either "
                    "set path.strict_load_g: false (HAT's fine-tuning across scales: every key whose shape fits "
                    "is loaded, the rest keeps its initial value and is listed in the log), or convert the file "
                    f"once: python scripts/convert_checkpoint.py {name} <out.pth> --scale {model_scale} "
                    "--upsampler keep|drop"
                )
        model_cfg = getattr(model, "arch_config", None) or {}
        if not model_cfg and hasattr(model, "depths"):
            model_cfg = {"depths": list(model.depths), "embed_dim": getattr(model, "embed_dim", None)}
        layout = (
            "team SKDADDYS's release layout (BSA vectors repeated under every sub-module) of an "
            if team_layout
            else "an "
        )
        if model_cfg and _shape_of(file_cfg) != _shape_of(model_cfg):
            lines.append(
                f"  network: the file holds {layout}{file_cfg['type']} with {_shape_of(file_cfg)}; "
                f"the model is {model_cfg.get('type', type(model).__name__)} with {_shape_of(model_cfg)}"
            )
        elif team_layout:
            lines.append(
                f"  layout: team SKDADDYS's release layout, {file_cfg['type']} {_shape_of(file_cfg)}"
            )
        lines.append(f"  the checkpoint looks like: {file_cfg}")
    for title, keys in (
        ("unexpected keys", unexpected),
        ("missing keys", missing),
        ("wrong shapes", wrong_shape),
    ):
        if keys:
            shown = ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "")
            lines.append(f"  {title}: {shown}")
    skip_keys = {k for k in (*unexpected, *missing) if k.startswith("bicubic_skip.")}
    if skip_keys and skip_keys == set(unexpected) | set(missing):
        if skip_keys <= set(unexpected):
            lines.append(
                "  bicubic_skip: the checkpoint has a bicubic image skip and the model does not: "
                "set network_g.bicubic_skip: true"
            )
        else:
            lines.append(
                "  bicubic_skip: the model has a bicubic image skip that the checkpoint lacks; these weights "
                "plus a skip would compute something else: set network_g.bicubic_skip: false"
            )
    if hint is None:
        hint = (
            "to use this file, build the network it describes: set network_g to the config it looks like "
            f"(above), or in Python ehat.checkpoints.load_model({name!r}) infers it"
            if file_cfg is not None
            else "give a checkpoint of this network"
        )
    lines.append(f"  ({hint})")
    return "\n".join(lines)


def load_model(
    path: str | os.PathLike,
    preset: str | None = None,
    param_key: str = "auto",
    **overrides: Any,
) -> nn.Module:
    """Build the network a checkpoint describes and load it.

    With ``preset`` the network is that preset (plus ``overrides``); otherwise the file's stored
    ``arch`` config is used, else the config is inferred from the state dict. Returned in eval mode.
    """
    from ehat.archs import build_network, preset_config

    raw = read_checkpoint(path)
    hint = None
    if preset is not None:
        cfg = {**preset_config(preset), **overrides}
        hint = (
            f"preset {preset!r} does not describe this file: call load_model({str(path)!r}) without preset= "
            "to build the network the file describes, or pick the preset it was trained as"
        )
    elif isinstance(raw.get("arch"), Mapping):
        cfg = {**raw["arch"], **overrides}
    else:
        cfg = {**infer_config(read_state_dict(raw, param_key), source=str(path)), **overrides}
    model = build_network(cfg)
    load_weights(model, raw, param_key, name=str(path), hint=hint)
    return model.eval()


# --------------------------------------------------------------------------- saving


def arch_config_of(model: nn.Module) -> dict[str, Any]:
    """The config that rebuilds ``model``: the one it was built from, else inferred from its weights."""
    cfg = getattr(model, "arch_config", None)
    return dict(cfg) if cfg else infer_config(model.state_dict())


def save_network(
    model: nn.Module,
    path: str | os.PathLike,
    param_key: str = "params",
    ema_model: nn.Module | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``{'params': ..., ['params_ema': ...], 'arch': config, **extra}`` atomically (BasicSR layout).

    A path ending in ``.safetensors`` gets one state dict (the EMA's when ``ema_model`` is given) and
    the header metadata of :func:`safetensors_metadata` (config, scale, data range, version; strings),
    which :func:`read_safetensors_metadata` or any safetensors tool reads without pickle.
    """
    model = getattr(model, "module", model)
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save

        src = getattr(ema_model, "module", ema_model) if ema_model is not None else model
        tensors = {k: v.detach().cpu().contiguous() for k, v in src.state_dict().items()}
        meta = safetensors_metadata(arch_config_of(model), extra)
        atomic_write_bytes(path, save(tensors, metadata=meta))
        return
    obj: dict[str, Any] = {param_key: {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    if ema_model is not None:
        ema_model = getattr(ema_model, "module", ema_model)
        obj["params_ema"] = {k: v.detach().cpu() for k, v in ema_model.state_dict().items()}
    obj["arch"] = arch_config_of(model)
    if extra:
        obj.update(extra)
    atomic_torch_save(obj, path)


def safetensors_metadata(arch: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Header metadata (all strings) of our .safetensors files: ``arch`` (the network config as JSON),
    ``scale``, ``data_range`` (the network descriptor's: 1 for [0, 1], 255 for RLFN), ``ehat_version``, ``format``, and
    ``extra`` (strings kept, other values as JSON)."""
    from ehat import __version__
    from ehat.archs import descriptor_of

    data_range = descriptor_of(str(arch.get("type"))).data_range
    meta = {
        "format": "ehat",
        "arch": json.dumps(dict(arch)),
        "scale": str(int(arch.get("upscale", 4))),
        "data_range": f"{data_range:g}",
        "ehat_version": __version__,
    }
    for key, value in (extra or {}).items():
        meta[key] = value if isinstance(value, str) else json.dumps(value)
    return meta


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a .safetensors header, read with json only (no pickle, no tensors)."""
    path = checkpoint_file(path)
    with open(path, "rb") as f:
        head = f.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < size <= 100_000_000:
            raise CheckpointError(f"{path} is not a .safetensors file (its header length is not valid)")
        try:
            header = json.loads(f.read(size))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path} has a corrupt .safetensors header: {err}") from err
    return dict(header.get("__metadata__") or {})
