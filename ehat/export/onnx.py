"""ONNX export of any HAT / EHAT / RLFN network, with dynamic batch, height and width, verified.

``export_onnx(model, path)`` traces the network in :func:`ehat.export.graph.graph_mode` (window
padding, shift masks and overlapping windows computed in the graph from the input's size), so
one file serves every input size, multiples of the window or not. Before anything is written the
graph is run with onnxruntime (CPU) on several sizes, two of them not multiples of the window, and
compared with our PyTorch network (the eager code, not the export variant); a file that differs by
more than the tolerance is refused (:class:`ExportVerificationError`) and nothing is written. The
file then lands atomically (:mod:`ehat.atomic`).

The graph: input ``lr`` (B, 3, H, W) float32 in [0, data_range], output ``sr``
(B, 3, H*scale, W*scale) float32. ``fp16=True`` stores the weights and computes in float16 (attention
softmax and DANet in float32, as in our code); the input and output stay float32. The file's
metadata (``onnx.ModelProto.metadata_props``) holds ``scale``, ``data_range``, ``precision``,
``network`` (the config as JSON) and ``ehat_version``.

The TorchScript-based exporter is used: ``torch.onnx.export(dynamo=True)`` (torch 2.14) stops in
``torch.export`` with "Invalid ranges [2:1]" on these networks with dynamic height and width.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ehat.atomic import atomic_write_bytes
from ehat.errors import EhatError
from ehat.export.graph import graph_mode

__all__ = [
    "DEFAULT_OPSET",
    "ExportError",
    "ExportReport",
    "ExportVerificationError",
    "check_sizes",
    "export_onnx",
    "onnx_bytes",
    "run_onnx",
    "verify_onnx",
]

DEFAULT_OPSET = 17
MIN_OPSET = 17
FP32_TOLERANCE = 1e-4  # max abs difference on [0, 1] outputs (scaled by data_range)
FP16_TOLERANCE = 2e-2  # fp16 weights/activations: ~5 levels of an 8-bit image at most


class ExportError(EhatError):
    """An export that cannot be done as asked (missing onnxruntime, an unsupported opset, ...)."""


class ExportVerificationError(ExportError):
    """onnxruntime's output differs from PyTorch's beyond the tolerance; nothing was written."""


@dataclass
class ExportReport:
    """What :func:`export_onnx` checked: per size (B, H, W), the max abs difference vs PyTorch, in the
    network's range (``tolerance`` too: the relative tolerance times ``data_range``)."""

    path: Path | None
    opset: int
    precision: str
    tolerance: float
    checks: list[tuple[tuple[int, int, int], float]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per verified size, e.g. ``1x3x37x29: max |onnx - torch| = 4.2e-07 (<= 1e-04)``."""
        return [
            f"{b}x3x{h}x{w}: max |onnxruntime - pytorch| = {d:.2e} (tolerance {self.tolerance:.2g})"
            for (b, h, w), d in self.checks
        ]


def _window(model: nn.Module) -> int:
    return int(getattr(model, "window_size", None) or 8)


def check_sizes(model: nn.Module) -> list[tuple[int, int, int]]:
    """(B, H, W) the export is verified on: one multiple of the window, two not (one with batch 2)."""
    ws = _window(model)
    return [(1, 2 * ws, 3 * ws), (1, ws + 5, 2 * ws + 3), (2, ws // 2 + 3, ws + 1)]


class _Exported(nn.Module):
    """The exported function: float32 in, ``model`` in ``dtype``, float32 out."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype)).float()


def _require_onnx() -> Any:
    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise ExportError(
            f"ONNX export needs the onnx and onnxruntime packages ({err.name} is missing): "
            "pip install 'ehat[export]' (or pip install onnx onnxruntime)"
        ) from err
    return onnx


def onnx_bytes(model: nn.Module, opset: int = DEFAULT_OPSET, fp16: bool = False) -> bytes:
    """The serialized ONNX graph of ``model`` (eval mode, on the CPU) with dynamic B, H and W."""
    if opset < MIN_OPSET:
        raise ExportError(f"--opset {opset} is too old: use {MIN_OPSET} or newer (LayerNormalization)")
    net = copy.deepcopy(model).cpu().eval()
    if fp16:
        net = net.half()
    wrapped = _Exported(net, torch.float16 if fp16 else torch.float32).eval()
    ws = _window(model)
    example = torch.rand(1, getattr(model, "in_chans", 3), ws + 5, 2 * ws + 3)
    buf = io.BytesIO()
    with torch.no_grad(), graph_mode(net), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and folding notes
        try:
            torch.onnx.export(
                wrapped,
                (example,),
                buf,
                dynamo=False,
                opset_version=opset,
                input_names=["lr"],
                output_names=["sr"],
                dynamic_axes={
                    "lr": {0: "batch", 2: "height", 3: "width"},
                    "sr": {0: "batch", 2: "out_height", 3: "out_width"},
                },  # fmt: skip
                do_constant_folding=True,
            )
        except (torch.onnx.errors.UnsupportedOperatorError, torch.onnx.errors.OnnxExporterError) as err:
            raise ExportError(f"this network does not export at opset {opset}: {err}") from err
    return buf.getvalue()


def run_onnx(session: Any, x: torch.Tensor) -> np.ndarray:
    """Run an onnxruntime session on (B, 3, H, W) float32 ``x``."""
    return session.run(None, {session.get_inputs()[0].name: x.numpy().astype(np.float32)})[0]


def verify_onnx(
    data: bytes,
    model: nn.Module,
    data_range: float = 1.0,
    sizes: Sequence[tuple[int, int, int]] | None = None,
    tolerance: float = FP32_TOLERANCE,
    seed: int = 0,
) -> list[tuple[tuple[int, int, int], float]]:
    """Compare the ONNX graph ``data`` (onnxruntime, CPU) with ``model`` (PyTorch fp32) on random inputs.

    Returns [((B, H, W), max abs difference)]; raises :class:`ExportVerificationError` when one
    exceeds ``tolerance * data_range``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    checks = []
    for b, h, w in sizes or check_sizes(model):
        x = torch.rand(b, getattr(model, "in_chans", 3), h, w, generator=gen) * data_range
        with torch.no_grad():
            ref = model(x).float().numpy()
        out = run_onnx(session, x)
        if out.shape != ref.shape:
            raise ExportVerificationError(
                f"the ONNX graph gives shape {out.shape} on a {b}x{h}x{w} input, PyTorch {ref.shape}"
            )
        diff = float(np.abs(out - ref).max()) if np.isfinite(out).all() else float("inf")
        checks.append(((b, h, w), diff))
        if not diff <= tolerance * data_range:
            raise ExportVerificationError(
                f"the ONNX graph differs from PyTorch by {diff:.3g} on a {b}x3x{h}x{w} input (tolerance "
                f"{tolerance * data_range:.1g}); nothing was written. Checked so far: {checks}"
            )
    return checks


def _with_metadata(data: bytes, meta: dict[str, str]) -> bytes:
    onnx = _require_onnx()
    proto = onnx.load_from_string(data)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike | None,
    *,
    data_range: float = 1.0,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    sizes: Sequence[tuple[int, int, int]] | None = None,
) -> ExportReport:
    """Export ``model`` to ``path`` (None: verify only), verified first; see the module docstring.

    Raises :class:`ExportVerificationError` (nothing written) when onnxruntime disagrees with
    PyTorch beyond the tolerance, :class:`ExportError` when onnx/onnxruntime are missing.
    """
    from ehat import __version__
    from ehat.archs import descriptor_of, prepare_for_inference
    from ehat.checkpoints import arch_config_of

    _require_onnx()
    model = prepare_for_inference(model.cpu().eval())
    data = onnx_bytes(model, opset, fp16)
    tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
    checks = verify_onnx(data, model, data_range, sizes, tolerance)
    meta = {
        "scale": str(descriptor_of(model).scale_of(model)),
        "data_range": f"{data_range:g}",
        "precision": "fp16" if fp16 else "fp32",
        "network": json.dumps(arch_config_of(model)),
        "ehat_version": __version__,
        "input": "lr: (batch, 3, height, width) float32 in [0, data_range]",
        "output": "sr: (batch, 3, height*scale, width*scale) float32",
    }
    data = _with_metadata(data, meta)
    if path is not None:
        atomic_write_bytes(path, data)
    where = Path(path) if path is not None else None
    return ExportReport(where, opset, meta["precision"], tolerance * data_range, checks)
