"""The options of ``train.py`` (BasicSR's YAML format), validated once at load.

:func:`load_options` returns a :class:`TrainingOptions`: a frozen dataclass read by attribute
(``opt.train.total_iter``, ``opt.datasets["train"].gt_size``). Every mistake is an
:class:`~ehat.options.schema.OptionsError` naming the dotted key at fault. The sections live beside
their concern: datasets (:mod:`ehat.options.datasets`), real-world keys
(:mod:`ehat.options.degradations`), losses (:mod:`ehat.options.losses`), constructor arguments
(:mod:`ehat.options.network`, :mod:`ehat.options.components`), distillation
(:mod:`ehat.options.distill`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ehat.options.common import MODEL_TYPES, WeightsPathOptions
from ehat.options.components import (
    BUILTIN_METRICS,
    Metric,
    check_loss,
    check_metrics,
    check_optimizer,
    check_scheduler,
)
from ehat.options.converters import as_bool, as_compile_mode, as_float, as_int, as_str, int_or_auto, list_of
from ehat.options.datasets import DatasetOptions, TrainDatasetOptions, check_datasets
from ehat.options.degradations import RealWorldOptions, check_real_world
from ehat.options.distill import DistillOptions, check_distill
from ehat.options.losses import GAN_ONLY, LOSS_SLOTS, generator_slots
from ehat.options.network import check_discriminator, check_network
from ehat.options.paths import check_paths as _check_paths
from ehat.options.probes import (
    check_launcher,
    check_new_param_keys,
    check_niqe_inputs,
    check_resume_state,
    meta_network,
)
from ehat.options.registries import closest
from ehat.options.schema import Component, OptionsError, build, option, section
from ehat.options.yaml_files import load_file

__all__ = [
    "DistParamsOptions",
    "LoggerOptions",
    "TrainOptions",
    "TrainPathOptions",
    "TrainingOptions",
    "ValOptions",
    "WandbOptions",
    "experiments_root",
    "load_options",
    "validate_options",
]

AMP_MODES = ("bf16", "fp16")
C = TypeVar("C", bound=type)


def loss_slot_fields(after: str) -> Callable[[C], C]:
    """Give an options class one nullable field per :data:`~ehat.options.losses.LOSS_SLOTS` entry, after
    the field ``after`` (the slots are declared once, there)."""

    def add(cls: C) -> C:
        annotations, out = dict(cls.__dict__.get("__annotations__", {})), {}
        for name, hint in annotations.items():
            out[name] = hint
            if name == after:
                for slot in LOSS_SLOTS:
                    out[slot.key] = "Component | None"
                    setattr(cls, slot.key, option(check_loss, None, nullable=True, doc=slot.doc))
        cls.__annotations__ = out
        return cls

    return add


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainPathOptions(WeightsPathOptions):
    pretrain_network_d: str | None = option(
        as_str, None, nullable=True, doc=f"discriminator checkpoint to start from ({GAN_ONLY})"
    )
    param_key_d: str = option(as_str, "auto", doc="entry of pretrain_network_d to load (params, or auto)")
    strict_load_d: bool = option(as_bool, True, doc="as strict_load_g, for the discriminator")
    pretrain_network_t: str | None = option(
        as_str, None, nullable=True, doc="the distillation teacher's weights (DistillModel; required there)"
    )
    param_key_t: str = option(
        as_str, "auto", doc="entry of pretrain_network_t to load (params_ema, params, auto)"
    )
    strict_load_t: bool = option(as_bool, True, doc="as strict_load_g, for the teacher")

    resume_state: str | None = option(
        as_str, None, nullable=True, doc="training state to resume (see also --auto_resume)"
    )
    experiments_root: str | None = option(
        as_str, None, nullable=True, doc="output folder; default: ./experiments/<name>"
    )
    tb_logger: str | None = option(
        as_str, None, nullable=True, doc="TensorBoard folder; default: <experiments_root>/tb_logger"
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
@loss_slot_fields(after="scheduler")
class TrainOptions:
    """``train``: the loop, the optimizer, the schedule and the losses."""

    ema_decay: float = option(as_float, 0.0, minimum=0.0, maximum=0.999999, doc="0 disables EMA")
    total_iter: int = option(as_int, minimum=1, doc="iterations to train (1-based, like BasicSR)")
    warmup_iter: int = option(as_int, -1, minimum=-1, doc="linear warm-up over this many iterations")
    amp: str | None = option(
        as_str, None, nullable=True, choices=AMP_MODES, doc="autocast dtype; null = fp32"
    )
    grad_clip: float | None = option(
        as_float, None, nullable=True, minimum=0.0, doc="max global gradient norm"
    )
    grad_accum_steps: int = option(as_int, 1, minimum=1, doc="micro-batches per optimizer step")
    compile: str = option(
        as_compile_mode,
        "false",
        doc="torch.compile: 'blocks' compiles each HAB/OCAB in place, 'full' the whole forward; the "
        "first step (compilation included) is logged apart",
    )
    tf32: bool = option(as_bool, False, doc="let CUDA matmuls and convolutions use TF32 during the run")
    channels_last: bool = option(as_bool, False, doc="network and inputs in channels-last memory format")
    new_param_lr: float | None = option(
        as_float, None, nullable=True, minimum=0.0, doc="learning rate of EHAT's new parameters (BSA, DANet)"
    )
    new_param_keys: list[str] | None = option(
        list_of(as_str),
        None,
        nullable=True,
        doc="parameter-name fragments that get new_param_lr; default: branch_weights, dual_attention",
    )
    on_nonfinite: str = option(
        as_str, "stop", choices=("stop", "skip"), doc="a NaN/inf loss or gradient: stop, or skip the step"
    )
    deterministic: bool = option(as_bool, False, doc="torch deterministic algorithms (slower)")
    optim_g: Component = option(check_optimizer, doc="a torch.optim class and its arguments; lr required")
    scheduler: Component | None = option(
        check_scheduler,
        None,
        nullable=True,
        doc="MultiStepLR / MultiStepRestartLR / CosineAnnealingRestartLR (BasicSR's) and their arguments",
    )
    optim_d: Component | None = option(
        check_optimizer, None, nullable=True, doc=f"the discriminator's optimizer ({GAN_ONLY}); lr required"
    )
    net_d_iters: int = option(as_int, 1, minimum=1, doc="update the generator every N iterations (GAN)")
    net_d_init_iters: int = option(
        as_int, 0, minimum=0, doc="train only the discriminator for the first N iterations (GAN)"
    )

    @property
    def losses(self) -> dict[str, Component]:
        """The configured losses computed on (SR, HR) pairs, by key (``pixel_opt``, ``perceptual_opt``)."""
        return {s.key: getattr(self, s.key) for s in generator_slots() if getattr(self, s.key) is not None}

    def check(self, prefix: str) -> None:
        if self.new_param_keys and self.new_param_lr is None:
            raise OptionsError(f"{prefix}.new_param_lr", "is required when train.new_param_keys is given")
        sch = self.scheduler
        if (
            sch is not None
            and sch.type == "CosineAnnealingRestartLR"
            and sum(sch.args["periods"]) < self.total_iter
        ):
            raise OptionsError(
                f"{prefix}.scheduler.periods",
                f"sum {sum(sch.args['periods'])} must cover train.total_iter ({self.total_iter})",
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ValOptions:
    """``val``: validation during training on every ``datasets.val*`` (absent or null: none)."""

    val_freq: int | None = option(as_int, None, nullable=True, minimum=1, doc="validate every N iterations")
    val_at_start: bool = option(as_bool, False, doc="validate before the first step (not on resume)")
    save_img: bool = option(as_bool, False, doc="write SR images to visualization/<set>/")
    pbar: bool = option(as_bool, True, doc="progress bar over the validation images")
    tile: int | None = option(as_int, None, nullable=True, minimum=1, doc="LR tile size; null = whole image")
    tile_overlap: int = option(as_int, 32, minimum=0, doc="LR pixels of overlap between tiles")
    tb_images: int = option(as_int, 2, minimum=0, doc="SR samples per val set sent to TensorBoard")
    best_metric: str = option(as_str, "psnr", doc="metric that picks net_g_best.pth (of the first val set)")
    suffix: str | None = option(
        as_str, None, nullable=True, doc="saved images are <name>_<suffix>.png; default: the iteration"
    )
    metrics: dict[str, Metric] | None = option(
        check_metrics,
        None,
        nullable=True,
        doc=f"basicsr metrics reported beside the built-in {', '.join(BUILTIN_METRICS)} (name -> type "
        "+ arguments + better: higher|lower); an entry named like a built-in is reported as <name>_opt",
    )

    def better(self, name: str) -> str:
        """'higher' or 'lower': which way metric ``name`` improves."""
        return self.metrics[name].better if self.metrics and name in self.metrics else "higher"

    def check(self, prefix: str) -> None:
        names = set(BUILTIN_METRICS) | set(self.metrics or {})
        if self.best_metric not in names:
            raise OptionsError(
                f"{prefix}.best_metric",
                f"unknown metric {self.best_metric!r}" + closest(self.best_metric, sorted(names)),
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class WandbOptions:
    project: str | None = option(
        as_str, None, nullable=True, doc="log to this wandb project (when installed)"
    )
    entity: str | None = option(as_str, None, nullable=True, doc="wandb team or user")
    resume_id: str | None = option(as_str, None, nullable=True, doc="continue this wandb run")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoggerOptions:
    print_freq: int = option(as_int, 100, minimum=1, doc="log a line every N iterations")
    save_checkpoint_freq: int = option(
        as_int, 5000, minimum=1, doc="write net_g_<iter>.pth and a training state every N iterations"
    )
    keep_last: int = option(as_int, 3, minimum=1, doc="training states / net_g_<iter>.pth kept")
    use_tb_logger: bool = option(as_bool, False, doc="TensorBoard scalars and sample images")
    wandb: WandbOptions | None = section(WandbOptions, nullable=True, doc="null: no wandb")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistParamsOptions:
    backend: str | None = option(
        as_str, None, nullable=True, choices=("nccl", "gloo"), doc="default: nccl with CUDA, else gloo"
    )
    port: int = option(as_int, 29500, minimum=1, maximum=65535, doc="MASTER_PORT under SLURM")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingOptions(RealWorldOptions):
    """A whole training option file (``python train.py -opt <file>``)."""

    name: str = option(
        as_str, doc="experiment name; outputs go to experiments/<name> unless path.experiments_root"
    )
    model_type: str = option(
        as_str,
        "EHATModel",
        choices=MODEL_TYPES,
        doc="BasicSR's model class: EHATModel, SRModel and HATModel run the same loop; Real*MSEModel degrade "
        "GT images on the fly, Real*GANModel add a discriminator",
    )
    scale: int = option(as_int, 4, minimum=1, doc="upscaling factor")
    num_gpu: int | str = option(
        int_or_auto, "auto", minimum=0, doc="0 = CPU; 'auto' = CUDA when available; N > 1 needs torchrun"
    )
    manual_seed: int | None = option(as_int, None, nullable=True, minimum=0, doc="null: a random seed")
    is_train: bool = option(
        as_bool,
        True,
        refused=((False, "train.py always trains: evaluate with test.py, or remove the key"),),
        doc="BasicSR's flag; only true",
    )
    dist: bool | None = option(
        as_bool,
        None,
        nullable=True,
        doc="set by --launcher; when given, it must agree (true with pytorch/slurm)",
    )
    find_unused_parameters: bool = option(as_bool, False, doc="DistributedDataParallel's flag")
    path: TrainPathOptions = section(
        TrainPathOptions, doc="weights to start from, resume state, output folders"
    )
    network_g: dict[str, Any] = option(
        check_network,
        doc="type: a network class (HAT, EHAT, RLFN, basicsr's) or a preset (ehat.archs.list_presets(): "
        "hat_s, hat, hat_l, ehat_l, ehat_tiny...), plus constructor arguments overriding the preset's",
    )
    datasets: dict[str, DatasetOptions] = option(
        check_datasets, needs=("scale",), doc="train (required), val / val_<n> (validation sets)"
    )
    network_d: dict[str, Any] | None = option(
        check_discriminator,
        None,
        nullable=True,
        doc=f"the discriminator: a registered one (UNetDiscriminatorSN...) and its arguments ({GAN_ONLY})",
    )
    network_t: dict[str, Any] | None = option(
        check_network,
        None,
        nullable=True,
        doc="the distillation teacher (DistillModel), as network_g; absent: the network pretrain_network_t describes",
    )
    distill: DistillOptions | None = section(
        DistillOptions, nullable=True, doc="what the student learns from the teacher (DistillModel)"
    )
    train: TrainOptions = section(TrainOptions, required=True, doc="the loop, optimizer, schedule, losses")
    val: ValOptions | None = section(ValOptions, nullable=True, doc="absent or null: no validation")
    logger: LoggerOptions = section(LoggerOptions, doc="console/file log, checkpoints, TensorBoard, wandb")
    dist_params: DistParamsOptions = section(DistParamsOptions, doc="multi-GPU process group")

    def check(self, prefix: str) -> None:
        """At least one loss; distillation keys only with DistillModel; real-world and GAN keys only with
        their model types, and all of them there (:func:`~ehat.options.degradations.check_real_world`)."""
        if not self.train.losses and self.distill is None:
            keys = [s.key for s in generator_slots()]
            raise OptionsError(f"train.{keys[0]}", f"at least one loss ({' or '.join(keys)}) is required")
        check_distill(self)
        check_real_world(self)
        net = meta_network(self.network_g)  # the constructor's own checks, at load time
        check_new_param_keys(net, self.train.new_param_keys, self.train.new_param_lr)

    @property
    def train_set(self) -> TrainDatasetOptions:
        ds = self.datasets["train"]
        assert isinstance(ds, TrainDatasetOptions)
        return ds

    @property
    def val_sets(self) -> dict[str, DatasetOptions]:
        """The ``datasets.val*`` sections (none when ``val`` is absent)."""
        if self.val is None:
            return {}
        return {k: v for k, v in self.datasets.items() if k.startswith("val")}


def validate_options(opt: Any, *, check_paths: bool = True, launcher: str | None = None) -> TrainingOptions:
    """Validate a parsed training option mapping into :class:`TrainingOptions` (defaults filled).

    ``check_paths``: also require dataset folders, meta-info files, ``path.pretrain_network_g`` /
    ``pretrain_network_d``, ``path.resume_state`` and the perceptual loss's VGG weights to exist (turn off to check a config written for another machine),
    a GAN run's resume state to hold a discriminator and NIQE's validation outputs two 96x96 blocks. ``launcher``: train.py's ``--launcher``, which
    ``dist`` must agree with (None: not checked). Raises :class:`OptionsError` naming the key.
    """
    out = build(TrainingOptions, opt, "")
    check_launcher(out.dist, out.num_gpu, launcher)
    if check_paths:
        _check_paths(out)
        check_resume_state(out.path.resume_state, out.network_d is not None)
        check_niqe_inputs(out)
    return out


def load_options(
    path: str | os.PathLike,
    *,
    check_paths: bool = True,
    force_yml: Sequence[str] = (),
    launcher: str | None = None,
) -> TrainingOptions:
    """Read a YAML training option file with ``yaml.safe_load``, apply ``--force_yml`` entries
    (:func:`ehat.options.yaml_files.apply_force_yml`) and validate it (:func:`validate_options`)."""
    return load_file(path, functools.partial(validate_options, launcher=launcher), check_paths, force_yml)


def experiments_root(opt: TrainingOptions) -> Path:
    """Where a run writes: ``path.experiments_root``, else ``./experiments/<name>`` (current folder)."""
    root = opt.path.experiments_root
    return Path(root) if root else Path.cwd() / "experiments" / opt.name
