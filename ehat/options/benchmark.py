"""The options of ``test.py`` (BasicSR's test YAML): one benchmark set per ``datasets.test_<n>``,
the network and its weights, metrics, tiles. Validated by the same machinery as train.py's
(:mod:`ehat.options.schema`); read by :mod:`ehat.evaluation.benchmark`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ehat.options.common import MODEL_TYPES, WeightsPathOptions
from ehat.options.converters import as_bool, as_float, as_int, as_str, converter, int_or_auto
from ehat.options.network import check_network
from ehat.options.paths import check_paths as _check_paths
from ehat.options.probes import meta_network
from ehat.options.schema import OptionsError, build, mapping, option, section
from ehat.options.yaml_files import load_file

__all__ = [
    "TEST_DATASET_TYPES",
    "TestDatasetOptions",
    "TestIoBackendOptions",
    "TestMetricOptions",
    "TestOptions",
    "TestPathOptions",
    "TestValOptions",
    "TileOptions",
    "load_test_options",
    "validate_test_options",
]

TEST_DATASET_TYPES = ("PairedImageDataset", "PairedValidationDataset", "SingleImageDataset")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestIoBackendOptions:
    __test__ = False  # not a pytest test class
    type: str = option(
        as_str,
        "disk",
        choices=("disk",),
        refused=(
            (
                "lmdb",
                "not supported by EHAT's test.py: it reads image folders; point dataroot_gt / dataroot_lq "
                "at the PNG folders the LMDB was made from",
            ),
        ),
        doc="only disk",
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestDatasetOptions:
    """One ``datasets.test_<n>`` section: an LR folder, with the HR folder for metrics."""

    __test__ = False  # not a pytest test class

    name: str | None = option(as_str, None, nullable=True, doc="set name; default: the LR folder's name")
    type: str = option(
        as_str,
        "PairedImageDataset",
        choices=TEST_DATASET_TYPES,
        doc="test.py pairs the folders by name itself; SingleImageDataset: no dataroot_gt",
    )
    dataroot_gt: str | None = option(as_str, None, nullable=True, doc="HR folder; null: no metrics")
    dataroot_lq: str = option(as_str, doc="LR folder (names <name>.png or <name>x<scale>.png)")
    io_backend: TestIoBackendOptions = section(TestIoBackendOptions, doc="only disk")
    filename_tmpl: str | None = option(
        as_str, None, nullable=True, doc="only '{}' or '{}x<scale>': both are paired automatically"
    )
    phase: str | None = option(as_str, None, nullable=True, choices=("test",), doc="filled")
    scale: int | None = option(as_int, None, nullable=True, doc="filled from the top-level scale")

    def check(self, prefix: str) -> None:
        if self.type == "SingleImageDataset" and self.dataroot_gt is not None:
            raise OptionsError(
                f"{prefix}.dataroot_gt", "SingleImageDataset takes no HR folder: remove the key"
            )


@converter("mapping of test_<n> -> dataset", dict)
def check_test_datasets(value: Any, key: str, scale: int) -> dict[str, TestDatasetOptions]:
    out = {}
    for ds_key, spec in mapping(value, key).items():
        prefix = f"{key}.{ds_key}"
        ds = build(TestDatasetOptions, spec, prefix)
        if ds.scale is not None and ds.scale != scale:
            raise OptionsError(f"{prefix}.scale", f"is {ds.scale} but the top-level scale is {scale}")
        if ds.filename_tmpl not in (None, "{}", f"{{}}x{scale}"):
            raise OptionsError(
                f"{prefix}.filename_tmpl",
                f"not supported by EHAT's test.py: LR images are paired as <name> or <name>x{scale}; "
                "remove the key",
            )
        name = ds.name or Path(ds.dataroot_lq).name
        out[ds_key] = dataclasses.replace(ds, name=name, phase="test", scale=scale)
    if not out:
        raise OptionsError(key, "needs at least one test_<n> section")
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestMetricOptions:
    __test__ = False  # not a pytest test class
    type: str = option(as_str, choices=("calculate_psnr", "calculate_ssim"), doc="PSNR or SSIM")
    crop_border: int | None = option(as_int, None, nullable=True, doc="must equal scale (the default)")
    test_y_channel: bool = option(as_bool, False, doc="on the Y channel (the benchmark convention)")
    better: str = option(as_str, "higher", choices=("higher", "lower"), doc="accepted for HAT configs")

    @property
    def field(self) -> str:
        """The evaluation's column: psnr, psnr_y, ssim or ssim_y."""
        base = "psnr" if self.type == "calculate_psnr" else "ssim"
        return f"{base}_y" if self.test_y_channel else base


@converter("mapping of name -> metric", dict)
def check_test_metrics(value: Any, key: str) -> dict[str, TestMetricOptions]:
    return {
        name: build(TestMetricOptions, spec, f"{key}.{name}") for name, spec in mapping(value, key).items()
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestValOptions:
    __test__ = False  # not a pytest test class
    save_img: bool = option(as_bool, False, doc="write the SR images to results/<name>/<set>/")
    suffix: str | None = option(as_str, None, nullable=True, doc="SR images are named <image>_<suffix>.png")
    self_ensemble: bool = option(as_bool, False, doc="x8 geometric self-ensemble")
    metrics: dict[str, TestMetricOptions] | None = option(
        check_test_metrics, None, nullable=True, doc="default: psnr and ssim on Y, crop scale"
    )
    pbar: bool = option(
        as_bool,
        False,
        refused=(
            (
                True,
                "not supported by EHAT's test.py: it logs one line per image; set false or remove the key",
            ),
        ),
        doc="only false",
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class TileOptions:
    tile_size: int | None = option(as_int, None, nullable=True, minimum=1, doc="LR tile; null = whole image")
    tile_pad: int = option(as_int, 32, minimum=0, doc="LR pixels of overlap between tiles")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestPathOptions(WeightsPathOptions):
    __test__ = False  # not a pytest test class
    results_root: str | None = option(
        as_str, None, nullable=True, doc="results go to <results_root>/<name>/; default: results"
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestOptions:
    """A whole test option file (``python test.py -opt <file>``)."""

    __test__ = False  # not a pytest test class

    name: str = option(as_str, doc="results go to <results_root>/<name>/")
    model_type: str = option(as_str, "EHATModel", choices=MODEL_TYPES, doc="accepted for BasicSR configs")
    scale: int = option(as_int, 4, minimum=1, doc="upscaling factor")
    num_gpu: int | str = option(int_or_auto, "auto", minimum=0, doc="0 = CPU; 'auto' = CUDA when available")
    device: str = option(as_str, "auto", doc="auto, cpu, cuda or cuda:N (num_gpu: 0 forces cpu)")
    manual_seed: int | None = option(
        as_int, None, nullable=True, minimum=0, doc="seeds the network's initialisation (no weights given)"
    )
    datasets: dict[str, TestDatasetOptions] = option(
        check_test_datasets, needs=("scale",), doc="one test_<n> section per benchmark set"
    )
    network_g: dict[str, Any] = option(check_network, doc="as in training")
    path: TestPathOptions = section(TestPathOptions, doc="the weights to evaluate, the results folder")
    val: TestValOptions = section(TestValOptions, doc="images saved and metrics reported")
    tile: TileOptions = section(TileOptions, doc="tiled inference for large images")
    data_range: float | None = option(
        as_float, None, nullable=True, minimum=1e-6, doc="input range; default 255 for RLFN, else 1"
    )
    precision: str = option(as_str, "fp32", choices=("fp32", "bf16", "fp16"), doc="autocast dtype")

    def check(self, prefix: str) -> None:
        for name, m in (self.val.metrics or {}).items():
            if m.crop_border is not None and m.crop_border != self.scale:
                raise OptionsError(
                    f"val.metrics.{name}.crop_border", f"{m.crop_border} must equal scale ({self.scale})"
                )
        meta_network(self.network_g)  # the constructor's own checks, at load time


def validate_test_options(opt: Any, *, check_paths: bool = True) -> TestOptions:
    """Validate a parsed ``test.py`` option mapping into :class:`TestOptions` (the same machinery)."""
    out = build(TestOptions, opt, "")
    if check_paths:
        _check_paths(out)
    return out


def load_test_options(
    path: str | os.PathLike, *, check_paths: bool = True, force_yml: Sequence[str] = ()
) -> TestOptions:
    """Read a YAML ``test.py`` option file, apply ``--force_yml`` entries and validate it
    (:func:`validate_test_options`)."""
    return load_file(path, validate_test_options, check_paths, force_yml)
