"""The training loop: EMA, AMP (bf16/fp16), clipping, accumulation, exact resume, validation, DDP.

One :class:`Trainer` runs one :class:`~ehat.options.train.TrainingOptions` (:func:`ehat.options.train.load_options`).
Iterations are 1-based like BasicSR's: the scheduler steps at the start of iteration ``it``, the
optimizer at its end; a state saved "at ``it``" resumes with iteration ``it + 1``.

Outputs (rank 0 only), under ``path.experiments_root`` (default ``./experiments/<name>``)::

    options.yml                  the validated options of the run
    train_<name>_<time>.log      the console log
    models/net_g_<it>.pth        params + params_ema + arch (last ``logger.keep_last``), net_g_best.pth,
                                 net_g_latest.pth (end of training)
    training_states/<it>.state   everything needed to resume (last ``logger.keep_last``)
    visualization/<val set>/     SR images when ``val.save_img``
    tb_logger/                   TensorBoard events when ``logger.use_tb_logger``
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from ehat import acceleration
from ehat.errors import EhatError
from ehat.networks import build_from_options
from ehat.options.common import options_device
from ehat.options.losses import generator_slots
from ehat.options.schema import to_plain
from ehat.options.train import TrainingOptions, experiments_root
from ehat.train import distributed as du
from ehat.train import state as st
from ehat.train.data import TrainStream, build_dataset
from ehat.train.ema import EMA
from ehat.train.logger import IterTimer, MetricWriter, close_logger, format_line, setup_logger
from ehat.train.optim import (
    build_optimizer,
    build_scheduler,
    restore_scheduler,
    scheduler_progress,
    scheduler_step,
    step_with_factor,
    warmup_factor,
)
from ehat.train.preflight import check_amp, check_training_images

_MODEL_NAME = re.compile(r"^net_g_(\d+)\.pth$")


class NonFiniteError(EhatError):
    """A NaN/inf in the inputs, the loss or the gradients with ``train.on_nonfinite: stop``."""


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM: a resumable state was saved; ``signum`` tells which signal."""

    def __init__(self, signum: int, state_file: Path | None) -> None:
        self.signum = signum
        self.state_file = state_file
        name = signal.Signals(signum).name
        super().__init__(f"{name} received: training state saved to {state_file}; resume with --auto_resume")


class Trainer:
    """Train ``opt``.

    Args:
        opt: typed options from :func:`ehat.options.train.load_options` / ``validate_options``.
        launcher: 'none', 'pytorch' (torchrun) or 'slurm'.
        auto_resume: continue from the newest state in ``<experiments_root>/training_states``.
        handle_signals: on SIGINT/SIGTERM save a state and raise :class:`TrainingInterrupted`.
    """

    def __init__(
        self,
        opt: TrainingOptions,
        *,
        launcher: str = "none",
        auto_resume: bool = False,
        handle_signals: bool = True,
    ) -> None:
        self.opt = opt
        self.launcher = launcher
        self.auto_resume = auto_resume
        self.handle_signals = handle_signals
        self.history: list[dict[str, float]] = []
        """One entry per iteration run by this process: {'iter', 'l_pix', ..., 'grad_norm'}."""
        self.val_history: list[dict[str, Any]] = []
        self._signal: int | None = None
        self.side_by_side = False
        """TensorBoard validation samples as LR (nearest) | SR | HR instead of SR alone (real-world SR)."""

    # ------------------------------------------------------------------------------ setup
    def _setup_process(self) -> None:
        opt = self.opt  # dist vs --launcher is checked at load (ehat.options.probes.check_launcher)
        if self.launcher == "none":
            self.device = options_device(opt.num_gpu)
            if isinstance(opt.num_gpu, int) and opt.num_gpu > 1:
                self._warn_later = (
                    f"num_gpu: {opt.num_gpu} without a launcher trains on one GPU; use "
                    f"torchrun --nproc_per_node={opt.num_gpu} train.py -opt ... --launcher pytorch"
                )
        else:
            dp = opt.dist_params
            self.device = du.init_distributed(self.launcher, dp.backend, dp.port)
        self.rank, self.world = du.rank(), du.world_size()
        self.is_main = self.rank == 0
        self.root = experiments_root(opt).resolve()
        self.models_dir = self.root / "models"
        self.states_dir = self.root / "training_states"

    def _find_resume(self) -> Path | None:
        explicit = self.opt.path.resume_state
        if explicit:
            return Path(explicit)
        if self.auto_resume:
            return st.latest_state(self.states_dir)
        return None

    def _prepare_folders(self, resume: Path | None) -> None:
        if not self.is_main:
            return
        earlier_run = st.list_states(self.states_dir) or any(self.models_dir.glob("*.pth"))
        if resume is None and earlier_run and not self.auto_resume:
            archived = self.root.with_name(f"{self.root.name}_archived_{time.strftime('%Y%m%d_%H%M%S')}")
            self.root.rename(archived)
            self._archived = archived
        for d in (self.root, self.models_dir, self.states_dir):
            d.mkdir(parents=True, exist_ok=True)
        st.remove_stale_temporaries(self.states_dir)
        st.remove_stale_temporaries(self.models_dir)
        snapshot = yaml.safe_dump(to_plain(self.opt), sort_keys=False)
        st.atomic_write(self.root / "options.yml", lambda f: f.write(snapshot.encode()))

    def _seed(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _seed_rank(self, seed: int) -> None:
        """Per-rank RNG streams (dropout, drop-path) once the network is built identically on every rank."""
        s = seed + self.rank
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)

    def _build_network(self, role: str = "g") -> nn.Module:
        """``network_<role>`` with ``path.pretrain_network_<role>`` (``param_key_<role>``,
        ``strict_load_<role>``) loaded: the generator ``g``, or a subclass's ``d`` / ``t``."""
        paths = self.opt.path
        return build_from_options(
            getattr(self.opt, f"network_{role}"),
            getattr(paths, f"pretrain_network_{role}"),
            getattr(paths, f"param_key_{role}"),
            strict=getattr(paths, f"strict_load_{role}"),
            role=role,
            log=self.log,
        )

    def _wrap(self, module: nn.Module) -> nn.Module:
        """``module`` as the training step calls it: under DDP when the world is larger than one."""
        if self.world == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            module, device_ids=ids, find_unused_parameters=self.opt.find_unused_parameters
        )

    def _setup(self) -> None:
        opt, topt = self.opt, self.opt.train
        self._warn_later: str | None = None
        self._archived: Path | None = None
        self._setup_process()
        resume = du.gather_objects(self._find_resume())[0]
        self._prepare_folders(resume)
        du.barrier()
        log_file = self.root / f"train_{opt.name}_{time.strftime('%Y%m%d_%H%M%S')}.log"
        self.log = setup_logger(log_file, self.is_main)
        if self._archived is not None:
            self.log.info(f"Earlier run without --auto_resume: moved it to {self._archived}")
        if self._warn_later:
            self.log.warning(self._warn_later)
        if opt.val is not None:
            from ehat.options.components import metric_renames

            for line in metric_renames(opt.val.metrics):
                self.log.info(line)
        self.log.info(f"Experiment folder: {self.root} (device {self.device}, world size {self.world})")
        self.resume_state = st.load_state(resume) if resume is not None else None

        seed = opt.manual_seed
        if self.resume_state is not None:
            seed = self.resume_state["seed"]
        elif seed is None:
            seed = du.gather_objects(random.SystemRandom().randrange(2**31))[0]
        self.seed = seed
        self._seed(seed)
        if topt.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=False)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True

        train_ds = build_dataset(opt.train_set)
        check_training_images(train_ds, opt.train_set, opt.scale, self.log)
        self.stream = TrainStream(train_ds, opt.train_set, seed, self.world, self.rank)
        self.val_sets = {k: build_dataset(v) for k, v in opt.val_sets.items()}
        self.log.info(
            f"Training set: {len(train_ds)} samples, {self.stream.batches_per_epoch} batches of "
            f"{self.stream.batch_size} per epoch per rank; validation sets: {list(self.val_sets) or 'none'}"
        )

        self.net = self._build_network().to(self.device)  # same seed on every rank: same initial weights
        self._seed_rank(seed)
        if topt.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.ema = EMA(self.net, topt.ema_decay) if topt.ema_decay > 0 else None
        self.optimizer = build_optimizer(self.net, topt)
        self.scheduler = build_scheduler(self.optimizer, topt)
        self.optimizers = [self.optimizer]
        """Every optimizer of the run (a subclass adds its own): all are cleared when a step is skipped."""
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[topt.amp]
        self.scaler = torch.amp.GradScaler(self.device.type) if topt.amp == "fp16" else None
        check_amp(topt.amp, self.device, self.log)
        from basicsr.losses import build_loss

        configured = topt.losses
        self.losses = {  # by logged name (l_pix, l_percep), in LOSS_SLOTS' order
            f"l_{slot.log_name}": build_loss(configured[slot.key].to_dict()).to(self.device)
            for slot in generator_slots()
            if slot.key in configured
        }
        self.iter, self.best = 0, None
        self._setup_models()
        if self.resume_state is not None:
            self._restore(self.resume_state, resume)

        if topt.tf32:
            acceleration.enable_tf32(True)
        if topt.compile != "false":  # in place: self.net's state-dict keys stay those of the plain network
            acceleration.compile_model(self.net, topt.compile)
            self.log.info(f"train.compile: {topt.compile} (compiled lazily: the first step includes it)")
        self.net_train = self._wrap(self.net)
        self._wrap_models()
        self.writer = MetricWriter(opt, Path(opt.path.tb_logger or self.root / "tb_logger"), self.is_main)

    def _restore(self, state: dict, path: Path) -> None:
        self.net.load_state_dict(state["net"], strict=True)
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"] if state.get("ema") is not None else state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_scheduler(self.scheduler, state.get("scheduler"))
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iter = int(state["iter"])
        self.stream.seek(int(state["epoch"]), int(state["consumed"]))
        self.best = state.get("best")
        self._restore_extra(state)
        rngs = state["rng"]
        per_rank = state.get("rank_state") or [{}] * len(rngs)
        if len(rngs) == self.world:
            st.restore_rng(rngs[self.rank])
            self._restore_rank_state(per_rank[self.rank])
        else:
            self.log.warning(
                f"{path} was written by {len(rngs)} process(es), this run has {self.world}: "
                "RNG states are re-seeded, so the run is not bit-identical to an uninterrupted one"
            )
        self.log.info(f"Resumed from {path} at iteration {self.iter} (epoch {state['epoch']})")

    # ------------------------------------------------------------------------------ hooks (RealTrainer)
    def _setup_models(self) -> None:
        """Build what a subclass trains beside ``net`` (called before a resume state is restored)."""

    def _wrap_models(self) -> None:
        """Wrap what :meth:`_setup_models` built with :meth:`_wrap` (after ``net`` is compiled)."""

    def _restore_extra(self, state: dict) -> None:
        """Restore what :meth:`_extra_state` saved."""

    def _extra_state(self) -> dict:
        """Entries of the training state beyond the generator's (rank 0's view)."""
        return {}

    def _rank_state(self) -> dict:
        """Per-rank entries of the training state (gathered from every rank, like the RNG states)."""
        return {}

    def _restore_rank_state(self, state: dict) -> None:
        """Restore this rank's :meth:`_rank_state`."""

    def _inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, HR) of a micro-batch on the device: (B, 3, h, w) and (B, 3, h*scale, w*scale) in [0, 1]."""
        lq = batch["lq"].to(self.device, non_blocking=True)
        gt = batch["gt"].to(self.device, non_blocking=True)
        return lq, gt

    # ------------------------------------------------------------------------------ saving
    def _raw_state(self) -> dict:
        return {
            "iter": self.iter,
            "epoch": self.stream.epoch,
            "consumed": self.stream.consumed,
            "seed": self.seed,
            "world_size": self.world,
            "net": self.net.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": scheduler_progress(self.scheduler),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "best": self.best,
            "network_g": dict(self.opt.network_g),
            **self._extra_state(),
        }

    def save(self) -> Path:
        """Write ``models/net_g_<it>.pth`` then ``training_states/<it>.state`` (atomically), prune old ones."""
        rngs = du.gather_objects(st.capture_rng())
        per_rank = du.gather_objects(self._rank_state())
        path = st.state_path(self.states_dir, self.iter)
        if self.is_main:
            self._save_network(self.models_dir / f"net_g_{self.iter}.pth")
            extra = {"rank_state": per_rank} if any(per_rank) else {}
            st.atomic_torch_save({**self._raw_state(), "rng": rngs, **extra}, path)
            keep = self.opt.logger.keep_last
            st.prune(self.states_dir, keep)
            st.prune(self.models_dir, keep, _MODEL_NAME)
            self.log.info(f"Saved training state {path}")
        du.barrier()
        return path

    def _ema_module(self) -> nn.Module | None:
        return self.ema.module if self.ema is not None else None

    def _save_network(self, path: Path, extra: dict | None = None) -> None:
        """``params`` (+ ``params_ema``) to ``path`` atomically; a failed write (a full disk above all)
        is the same :class:`~ehat.train.state.StateError` as a training state's."""
        from ehat.checkpoints import save_network

        try:
            save_network(self.net, path, ema_model=self._ema_module(), extra=extra)
        except OSError as exc:
            raise st.write_error(path, exc) from exc

    # ------------------------------------------------------------------------------ one step
    def _nonfinite(self, what: str, batch: dict) -> None:
        """Apply ``train.on_nonfinite``: raise :class:`NonFiniteError`, or log (the step is skipped)."""
        paths = batch.get("lq_path")
        where = f" (batch: {list(paths)[:4]})" if paths is not None else ""
        if self.opt.train.on_nonfinite == "stop":
            last = st.latest_state(self.states_dir)
            raise NonFiniteError(
                f"iteration {self.iter}: {what}{where}. Training stopped before updating the weights; "
                f"the last good training state is {last or 'none (nothing saved yet)'}. Lower the learning "
                "rate, enable train.grad_clip, check the data, or set train.on_nonfinite: skip."
            )
        self.log.warning(f"iteration {self.iter}: {what}{where}: step skipped (train.on_nonfinite: skip)")

    def _autocast(self) -> contextlib.AbstractContextManager:
        """``train.amp``'s autocast on the training device (a no-op in fp32)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _loss(
        self,
        sr: torch.Tensor,
        gt: torch.Tensor,
        prefix: str = "l_",
        targets: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The configured losses of ``sr`` against ``gt`` (fp32), by logged name (``l_pix``, ``l_percep``,
        ``l_style``; ``prefix`` replaces ``l_``, e.g. ``l_g_`` for the GAN's generator step).
        ``targets`` gives a loss its own target by name (the GAN's sharpened ground truth)."""
        out: dict[str, torch.Tensor] = {}
        for name, fn in self.losses.items():
            value = fn(sr, (targets or {}).get(name, gt))
            if isinstance(value, tuple):  # PerceptualLoss -> (perceptual, style), either may be None
                for sub, v in zip(("percep", "style"), value):
                    if v is not None:
                        out[f"{prefix}{sub}"] = v
            else:
                out[prefix + name[2:]] = value
        return out

    def _forward(self, lq: torch.Tensor) -> torch.Tensor:
        """``net_train`` on ``lq`` (B, 3, h, w) under ``train.amp``: the SR (B, 3, h*scale, w*scale) in fp32."""
        with self._autocast():
            sr = self.net_train(lq)
        return sr.float()

    def _loss_step(self, lq: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
        """The hook a model type overrides: the named loss terms of one micro-batch (``lq`` and its
        ground truth ``gt`` (B, 3, h*scale, w*scale)); their sum is back-propagated."""
        return self._loss(self._forward(lq), gt)

    def _inputs_finite(self, lq: torch.Tensor, gt: torch.Tensor, batch: dict) -> bool:
        """Whether every rank's inputs are finite; else apply ``train.on_nonfinite``."""
        bad = not (torch.isfinite(lq).all() and torch.isfinite(gt).all())
        return self._finite_or_skip(bad, "NaN/inf in the input images", batch)

    def _losses_finite(self, losses: dict[str, torch.Tensor], batch: dict) -> bool:
        """Whether every rank's loss terms are finite; else apply ``train.on_nonfinite``."""
        bad = not all(bool(torch.isfinite(v)) for v in losses.values())
        shown = {k: float(v.detach()) for k, v in losses.items()}
        return self._finite_or_skip(bad, f"non-finite loss {shown}", batch)

    def _finite_or_skip(self, bad: bool, what: str, batch: dict) -> bool:
        if du.any_rank(bad, self.device):
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            self._nonfinite(what, batch)
            return False
        return True

    def _backward(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` (scaled by the fp16 gradient scaler)."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _clip_and_step(self, optimizer: torch.optim.Optimizer, what: str = "") -> float | None:
        """Unscale, clip to ``train.grad_clip``, step with the warm-up factor; return the gradient norm,
        or None when it is not finite (the step is skipped or training stops, per ``train.on_nonfinite``)."""
        topt = self.opt.train
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        max_norm = topt.grad_clip if topt.grad_clip is not None else math.inf
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if self.scaler is None and not math.isfinite(norm):
            optimizer.zero_grad(set_to_none=True)
            self._nonfinite(f"non-finite {what}gradient norm {norm}", {})
            return None
        factor = warmup_factor(self.iter, topt.warmup_iter)
        if self.scaler is not None:
            step_with_factor(optimizer, factor, self.scaler.step, optimizer)
        else:
            step_with_factor(optimizer, factor, optimizer.step)
        return norm

    def _finish_step(self) -> None:
        """After an iteration's last optimizer step: update the fp16 gradient scaler and the EMA."""
        if self.scaler is not None:
            self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.net)

    def train_step(self) -> dict[str, float] | None:
        """One optimizer step over ``train.grad_accum_steps`` micro-batches; None when skipped."""
        topt = self.opt.train
        k = topt.grad_accum_steps
        self.optimizer.zero_grad(set_to_none=True)
        logged: dict[str, float] = {}
        for micro in range(k):
            batch = self.stream.next()
            lq, gt = self._inputs(batch)
            if topt.channels_last:
                lq = lq.contiguous(memory_format=torch.channels_last)
            if not self._inputs_finite(lq, gt, batch):
                return None
            sync = micro == k - 1 or self.world == 1
            with contextlib.nullcontext() if sync else self.net_train.no_sync():
                losses = self._loss_step(lq, gt)
                if not self._losses_finite(losses, batch):
                    return None
                self._backward(sum(losses.values()) / k)
            for name, v in losses.items():
                logged[name] = logged.get(name, 0.0) + float(v.detach()) / k
        grad_norm = self._clip_and_step(self.optimizer)
        if grad_norm is None:
            return None
        self._finish_step()
        logged["grad_norm"] = grad_norm
        return logged

    def _mean_over_ranks(self, values: dict[str, float]) -> dict[str, float]:
        """Logged values averaged over ranks (each rank's losses cover its own share of the batch)."""
        if self.world == 1:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        mean = du.all_reduce_sum(t) / self.world
        return {k: float(v) for k, v in zip(keys, mean.tolist())}

    # ------------------------------------------------------------------------------ validation
    def validate(self) -> dict[str, dict[str, float]]:
        """Metrics of the EMA network (else the network) on every ``datasets.val*``; updates the best."""
        from ehat.train.validation import side_by_side, validate

        vopt = self.opt.val
        assert vopt is not None
        model = self.net if self.ema is None else self.ema.module
        results = {}
        for key, ds in self.val_sets.items():
            name = self.opt.datasets[key].name
            save_dir = self.root / "visualization" / name if vopt.save_img and self.is_main else None
            suffix = f"_{vopt.suffix or self.iter}"

            def on_image(
                i: int, img_name: str, img: np.ndarray, lq: np.ndarray, hr: np.ndarray, name: str = name
            ) -> None:
                if self.is_main and i // self.world < vopt.tb_images:
                    if self.side_by_side:
                        img = side_by_side(lq, img, hr, self.opt.scale)
                        img_name = f"{img_name}_lq_sr_gt"
                    self.writer.image(f"val/{name}/{img_name}", img, self.iter)

            metrics = validate(
                model,
                ds,
                scale=self.opt.scale,
                device=self.device,
                tile=vopt.tile,
                overlap=vopt.tile_overlap,
                extra_metrics=vopt.metrics,
                save_dir=save_dir,
                suffix=suffix,
                pbar=vopt.pbar,
                on_image=on_image,
                desc=f"val {name}",
            )
            results[name] = metrics
            self.log.info(
                f"Validation {name} @ iter {self.iter}: "
                + ", ".join(f"{k}: {v:.4f}" for k, v in metrics.items())
            )
            self.writer.scalars(metrics, self.iter, prefix=f"metrics/{name}/")
        if results:
            self._update_best(next(iter(results.values())))
        self.val_history.append({"iter": self.iter, **results})
        return results

    def _update_best(self, metrics: dict[str, float]) -> None:
        vopt = self.opt.val
        assert vopt is not None
        name = vopt.best_metric
        better = vopt.better(name)
        value = metrics[name]
        if self.best is not None and not (
            value > self.best["value"] if better == "higher" else value < self.best["value"]
        ):
            return
        self.best = {"metric": name, "value": value, "iter": self.iter}
        if self.is_main:
            self._save_network(self.models_dir / "net_g_best.pth", extra={"best": dict(self.best)})
            self.log.info(
                f"New best {name} {value:.4f} at iteration {self.iter}: {self.models_dir / 'net_g_best.pth'}"
            )

    # ------------------------------------------------------------------------------ loop
    def _on_signal(self, signum: int, frame: object) -> None:
        self._signal = signum

    @contextlib.contextmanager
    def _signals(self) -> Any:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _check_signal(self) -> None:
        stop = du.any_rank(self._signal is not None, self.device)
        if stop:
            signum = self._signal or signal.SIGTERM
            path = self.save()
            self.log.info(f"{signal.Signals(signum).name}: saved {path}; exiting")
            raise TrainingInterrupted(signum, path)

    def run(self) -> dict[str, Any]:
        """Train to ``train.total_iter``; returns {'iter', 'best', 'history', 'val_history', 'root'}."""
        deterministic_before = torch.are_deterministic_algorithms_enabled()
        tf32_before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        try:
            with self._signals():
                self._setup()
                self._loop()
        finally:
            torch.use_deterministic_algorithms(deterministic_before)
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32_before
            if hasattr(self, "writer"):
                self.writer.close()
            close_logger()
        return {
            "iter": self.iter,
            "best": self.best,
            "history": self.history,
            "val_history": self.val_history,
            "root": self.root,
        }

    def _loop(self) -> None:
        opt, vopt, lopt = self.opt, self.opt.val, self.opt.logger
        total = opt.train.total_iter
        if self.iter >= total:
            self.log.info(f"Already at iteration {self.iter} >= train.total_iter {total}: nothing to train")
            return
        do_val = vopt is not None and bool(self.val_sets)
        if do_val and vopt.val_at_start and self.resume_state is None:
            self.validate()
        self.net_train.train()
        timer = IterTimer()
        self.log.info(f"Start training from iteration {self.iter + 1} to {total}")
        first_step = True
        while self.iter < total:
            self._check_signal()
            self.iter += 1
            scheduler_step(self.scheduler)
            first_compiled = first_step and opt.train.compile != "false"
            first_step = False
            logged = self.train_step()
            seconds = timer.tick()
            if first_compiled:
                timer.discard_last()
                self.log.info(
                    f"First step (torch.compile {opt.train.compile!r} included) took {seconds:.1f} s; "
                    "s/iter excludes it"
                )
            if logged is not None:
                self.history.append({"iter": self.iter, **logged})
            if self.iter % lopt.print_freq == 0 and logged is not None:
                logged = self._mean_over_ranks(logged)
                factor = warmup_factor(self.iter, opt.train.warmup_iter)
                lrs = [g["lr"] * factor for g in self.optimizer.param_groups]
                self.log.info(
                    format_line(
                        opt.name,
                        self.stream.epoch,
                        self.iter,
                        lrs,
                        logged,
                        timer.per_iter,
                        timer.eta(total - self.iter),
                    )
                )
                self.writer.scalars({**logged, "lr": lrs[0]}, self.iter, prefix="train/")
            if do_val and vopt.val_freq and self.iter % vopt.val_freq == 0:
                self.validate()  # before saving, so the state records the new best
                timer.reset()
            if self.iter % lopt.save_checkpoint_freq == 0 or self.iter == total:
                self.save()
                timer.reset()
        if self.is_main:
            self._save_network(self.models_dir / "net_g_latest.pth")
        self.log.info(f"End of training at iteration {self.iter}: {self.models_dir / 'net_g_latest.pth'}")
