"""Model complexity as the NTIRE 2024 ESR challenge counts it, plus an attention-inclusive count.

Four numbers, each with its own definition (all on one 1x3x256x256 input by default):

- ``num_parameters``: sum of ``numel`` over ``model.parameters()``.
- ``flops`` (fvcore): what ``fvcore.nn.FlopCountAnalysis(model, x).total()`` returns. One
  multiply-add = 1; convs, linears, matmul/bmm/einsum, norms (4-5 per element), bilinear/nearest
  upsampling and adaptive average pooling are counted; softmax, GELU, adds and anything fvcore does
  not know -- notably ``scaled_dot_product_attention`` -- count 0.
- ``macs_all`` (attention-inclusive): multiply-adds of every matmul, conv and SDPA call, from
  ``torch.utils.flop_counter.FlopCounterMode`` (its FLOPs / 2). Norms/upsampling are not in it.
- ``activations`` / ``num_conv``: the challenge's ``get_model_activation``: the sum of output
  elements of every ``nn.Conv2d``/``nn.ConvTranspose2d`` call, and the number of such calls.

fvcore traces a real forward, which takes minutes for HAT-L at 256x256 on a CPU. The fast path
runs one forward on the *meta* device (shapes only, no arithmetic, no memory) and applies
fvcore's per-op rules at the same level fvcore sees them (``F.linear``, ``torch.matmul``,
``F.conv2d``, ...) through a ``TorchFunctionMode``. ``tests/evaluation/test_eval_complexity.py``
checks that it equals real fvcore. A model that cannot run on meta falls back to the real (slow) count.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from ehat.evaluation.json_cache import read_json_cache, write_json_cache

logger = logging.getLogger(__name__)

DEFAULT_INPUT = (1, 3, 256, 256)


@dataclass(frozen=True)
class Complexity:
    """Complexity numbers in raw units (multiply-adds, elements, parameters)."""

    num_parameters: int
    flops: float  # fvcore total (multiply-adds; the challenge's "FLOPs")
    macs_all: float  # matmul + conv + attention multiply-adds (torch.utils.flop_counter / 2)
    activations: int  # challenge's #Activations (Conv2d outputs)
    num_conv: int  # challenge's #Conv2d (calls)
    input_shape: tuple[int, ...]
    method: str  # "meta" (shape propagation) or "real" (fvcore trace of a real forward)


def count_parameters(model: nn.Module) -> int:
    """Sum of ``numel`` over all parameters (the challenge's #Params)."""
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- fvcore's rules


def _prod(shape: Sequence[int]) -> int:
    return int(math.prod(int(s) for s in shape))


def _einsum_macs(equation: str, shapes: Sequence[Sequence[int]]) -> float:
    """fvcore's ``einsum_flop_jit``: two special cases, else numpy's optimal path / 2."""
    equation = equation.replace(" ", "")
    letters = dict.fromkeys(c for c in equation if c.isalpha())
    equation = equation.translate({ord(c): 97 + i for i, c in enumerate(letters)})
    if equation == "abc,abd->acd":
        n, c, t = shapes[0]
        return n * c * t * shapes[-1][-1]
    if equation == "abc,adc->adb":
        n, t, g = shapes[0]
        return n * t * g * shapes[-1][1]
    path = np.einsum_path(equation, *[np.zeros(s) for s in shapes], optimize="optimal")[1]
    for line in path.split("\n"):
        if "optimized flop" in line.lower():
            return float(np.floor(float(line.split(":")[-1]) / 2))
    raise NotImplementedError(f"einsum {equation!r}")


def _shape(t: Any) -> tuple[int, ...] | None:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else None


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _conv_rule(transposed: bool) -> Callable[[tuple, dict, Any], float]:
    def rule(args: tuple, kwargs: dict, out: Any) -> float:
        x, w = _shape(args[0]), _shape(_arg(args, kwargs, 1, "weight"))
        spatial = (x if transposed else _shape(out))[2:]
        return x[0] * _prod(w) * _prod(spatial)

    return rule


def _linear_rule(args: tuple, kwargs: dict, out: Any) -> float:
    return _prod(_shape(args[0])) * _shape(_arg(args, kwargs, 1, "weight"))[0]


def _matmul_rule(args: tuple, kwargs: dict, out: Any) -> float:
    a, b = _shape(args[0]), _shape(_arg(args, kwargs, 1, "other", _arg(args, kwargs, 1, "mat2")))
    return _prod(a) * b[-1]


def _bmm_rule(args: tuple, kwargs: dict, out: Any) -> float:
    (n, c, t), d = _shape(args[0]), _shape(_arg(args, kwargs, 1, "mat2"))[-1]
    return n * c * t * d


def _addmm_rule(args: tuple, kwargs: dict, out: Any) -> float:
    (n, k), m = _shape(_arg(args, kwargs, 1, "mat1")), _shape(_arg(args, kwargs, 2, "mat2"))[1]
    return n * k * m


def _einsum_rule(args: tuple, kwargs: dict, out: Any) -> float:
    operands = args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    return _einsum_macs(args[0], [_shape(t) for t in operands])


def _norm_rule(weight_index: int, weight_name: str) -> Callable[[tuple, dict, Any], float]:
    def rule(args: tuple, kwargs: dict, out: Any) -> float:
        affine = _arg(args, kwargs, weight_index, weight_name) is not None
        return _prod(_shape(args[0])) * (5 if affine else 4)

    return rule


def _batch_norm_rule(args: tuple, kwargs: dict, out: Any) -> float:
    affine = _arg(args, kwargs, 3, "weight") is not None
    if _arg(args, kwargs, 5, "training", False):
        return _prod(_shape(args[0])) * (5 if affine else 4)
    return _prod(_shape(args[0])) * (2 if affine else 1)


def _interpolate_rule(args: tuple, kwargs: dict, out: Any) -> float:
    # fvcore knows aten::upsample_nearest2d (1 per output element) and upsample_bilinear2d (4).
    mode = _arg(args, kwargs, 3, "mode", "nearest")
    if out.dim() != 4:
        return 0
    return {"nearest": 1, "bilinear": 4}.get(mode, 0) * out.numel()


def _adaptive_avg_pool_rule(args: tuple, kwargs: dict, out: Any) -> float:
    return _prod(_shape(args[0]))


def _grid_sample_rule(args: tuple, kwargs: dict, out: Any) -> float:
    return 4 * out.numel()


_FVCORE_RULES: dict[Callable, Callable[[tuple, dict, Any], float]] = {
    F.conv1d: _conv_rule(False),
    F.conv2d: _conv_rule(False),
    F.conv3d: _conv_rule(False),
    F.conv_transpose1d: _conv_rule(True),
    F.conv_transpose2d: _conv_rule(True),
    F.conv_transpose3d: _conv_rule(True),
    F.linear: _linear_rule,
    torch.matmul: _matmul_rule,
    torch.Tensor.matmul: _matmul_rule,
    torch.Tensor.__matmul__: _matmul_rule,
    torch.mm: _matmul_rule,
    torch.Tensor.mm: _matmul_rule,
    torch.bmm: _bmm_rule,
    torch.Tensor.bmm: _bmm_rule,
    torch.addmm: _addmm_rule,
    torch.einsum: _einsum_rule,
    F.layer_norm: _norm_rule(2, "weight"),
    F.group_norm: _norm_rule(2, "weight"),
    F.instance_norm: _norm_rule(3, "weight"),
    F.batch_norm: _batch_norm_rule,
    F.interpolate: _interpolate_rule,
    F.adaptive_avg_pool2d: _adaptive_avg_pool_rule,
    F.grid_sample: _grid_sample_rule,
}


class FvcoreRulesMode(TorchFunctionMode):
    """Counts multiply-adds with fvcore's per-op rules at the API level fvcore's trace sees.

    Only outermost calls are seen (a mode is disabled inside its own handler), as the JIT
    trace records ``aten::linear`` rather than the ``addmm`` inside it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0.0

    def __torch_function__(
        self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        rule = _FVCORE_RULES.get(func)
        if rule is not None:
            self.total += rule(args, kwargs, out)
        return out


# --------------------------------------------------------------------------- one counting pass


def _attention_mapping() -> dict[Any, Callable[..., int]]:
    """FlopCounterMode formulas for the CPU SDPA kernel, which torch does not register."""
    aten = torch.ops.aten
    mapping: dict[Any, Callable[..., int]] = {}
    op = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:

        def cpu_sdpa(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
            return sdpa_flop_count(query_shape, key_shape, value_shape)

        mapping[op] = cpu_sdpa
    return mapping


def _count_pass(model: nn.Module, x: torch.Tensor, fvcore_rules: bool) -> dict[str, float]:
    """One forward that counts activations/#conv (hooks), all MACs and, optionally, fvcore FLOPs."""
    acts = {"activations": 0, "num_conv": 0}

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        acts["activations"] += output.numel()
        acts["num_conv"] += 1

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    fv = FvcoreRulesMode()
    counter = FlopCounterMode(display=False, custom_mapping=_attention_mapping())
    # FlopCounterMode's module tracker hooks inputs that require grad, which fails under no_grad.
    grad_flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in grad_flags:
        p.requires_grad_(False)
    try:
        with torch.no_grad(), counter:
            if fvcore_rules:
                with fv:
                    model(x)
            else:
                model(x)
    finally:
        for h in handles:
            h.remove()
        for p, flag in grad_flags:
            p.requires_grad_(flag)
    return {**acts, "macs_all": counter.get_total_flops() / 2, "flops": fv.total}


def fvcore_flops(model: nn.Module, x: torch.Tensor) -> float:
    """The challenge's count: ``FlopCountAnalysis(model, x).total()`` on a real forward (slow)."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        return float(analysis.total())


def measure_complexity(
    model: nn.Module, input_shape: Sequence[int] = DEFAULT_INPUT, method: str = "auto"
) -> Complexity:
    """Count ``model``'s complexity on an input of ``input_shape`` (B, C, H, W).

    ``method``: "meta" (shape propagation on a meta copy; fast, raises if the model cannot run
    on meta), "real" (real forward + fvcore trace; slow for big models), "auto" (meta, falling
    back to real with a log line).
    """
    if method not in ("auto", "meta", "real"):
        raise ValueError(f"method must be 'auto', 'meta' or 'real', got {method!r}")
    shape = tuple(int(s) for s in input_shape)
    params = count_parameters(model)
    was_training = model.training
    if method in ("auto", "meta"):
        try:
            meta_model = copy.deepcopy(model).to("meta").eval()
            counts = _count_pass(meta_model, torch.empty(shape, device="meta"), fvcore_rules=True)
            return Complexity(params, counts["flops"], counts["macs_all"], int(counts["activations"]),
                              int(counts["num_conv"]), shape, "meta")  # fmt: skip
        except Exception as e:  # noqa: BLE001  (any failure on meta -> the real count)
            if method == "meta":
                raise
            logger.warning(
                "complexity: the meta-device count failed (%s); counting on a real forward (slow)", e
            )
    device = next(model.parameters()).device
    x = torch.rand(shape, device=device)
    model.eval()
    try:
        counts = _count_pass(model, x, fvcore_rules=False)
        flops = fvcore_flops(model, x)
    finally:
        model.train(was_training)
    return Complexity(params, flops, counts["macs_all"], int(counts["activations"]), int(counts["num_conv"]),
                      shape, "real")  # fmt: skip


def cached_complexity(
    model: nn.Module,
    model_name: str,
    cache_file: str | os.PathLike | None,
    input_shape: Sequence[int] = DEFAULT_INPUT,
    method: str = "auto",
) -> tuple[Complexity, bool]:
    """:func:`measure_complexity`, cached in a JSON file per (model name, input shape, #params).

    Returns (complexity, came_from_cache). A corrupt cache file is ignored and rewritten.
    """
    key = f"{model_name}|{'x'.join(map(str, input_shape))}|{count_parameters(model)}"
    cache = read_json_cache(cache_file)
    if key in cache:
        try:
            entry = dict(cache[key])
            entry["input_shape"] = tuple(entry["input_shape"])
            return Complexity(**entry), True
        except (ValueError, TypeError, KeyError) as e:
            logger.warning("complexity cache %s: bad entry for %s (%s); recounting", cache_file, key, e)
    result = measure_complexity(model, input_shape, method)
    if cache_file is not None:
        cache[key] = asdict(result)
        write_json_cache(cache_file, cache)
    return result, False
