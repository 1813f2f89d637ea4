"""Training logs: console/file lines, TensorBoard scalars and images, wandb when configured."""

from __future__ import annotations

import datetime
import logging
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ehat.logs import LIBRARY_LOGGERS, attach
from ehat.options.schema import to_plain

if TYPE_CHECKING:
    from ehat.options.train import TrainingOptions

LOGGER_NAME = "ehat.train"


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


_detach: list = []


def setup_logger(log_file: Path | None, is_main: bool) -> logging.Logger:
    """Configure the ``ehat.train`` logger for one run: console (stdout) and ``log_file`` on rank 0,
    warnings only on other ranks (:func:`ehat.logs.attach`).

    Earlier handlers of this logger are closed first, so several runs in one process do not mix.
    """
    close_logger()
    log, detach = attach(
        LOGGER_NAME,
        log_file if is_main else None,
        console=sys.stdout,
        level=logging.INFO if is_main else logging.WARNING,
        libraries=LIBRARY_LOGGERS if is_main else (),
    )
    _detach.append(detach)
    return log


def close_logger() -> None:
    while _detach:
        _detach.pop()()
    logger = get_logger()
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()


class IterTimer:
    """Seconds per iteration over a sliding window, and the ETA to ``total`` iterations."""

    def __init__(self, window: int = 50) -> None:
        self.times: deque[float] = deque(maxlen=window)
        self.last = time.perf_counter()

    def tick(self) -> float:
        now = time.perf_counter()
        dt, self.last = now - self.last, now
        self.times.append(dt)
        return dt

    def discard_last(self) -> None:
        """Drop the last interval from the average (the first step of a compiled network)."""
        if self.times:
            self.times.pop()

    def reset(self) -> None:
        """Forget time spent outside the loop (validation, checkpoints)."""
        self.last = time.perf_counter()

    @property
    def per_iter(self) -> float:
        return sum(self.times) / len(self.times) if self.times else 0.0

    def eta(self, remaining: int) -> str:
        return str(datetime.timedelta(seconds=int(self.per_iter * remaining)))


def format_line(
    name: str, epoch: int, it: int, lrs: list[float], values: dict[str, float], s_iter: float, eta: str
) -> str:
    """``[name][epoch: 1, iter: 200, lr:(1.000e-04,)] [eta: 0:01:02, 0.312 s/iter] l_pix: 1.2e-02 ...``"""
    lr = ",".join(f"{v:.3e}" for v in lrs)
    parts = " ".join(f"{k}: {v:.4e}" for k, v in values.items())
    return f"[{name}][epoch:{epoch:3d}, iter:{it:8,d}, lr:({lr},)] [eta: {eta}, {s_iter:.3f} s/iter] {parts}"


class MetricWriter:
    """TensorBoard (``use_tb_logger``) and wandb (``logger.wandb.project``, when installed) sinks; rank 0 only."""

    def __init__(self, opt: TrainingOptions, tb_dir: Path, is_main: bool) -> None:
        self.tb: Any = None
        self.wandb: Any = None
        if not is_main:
            return
        log = get_logger()
        if opt.logger.use_tb_logger:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(tb_dir))
            except ImportError:
                log.warning(
                    "logger.use_tb_logger is true but tensorboard is not installed: no TensorBoard logs"
                )
        wandb_opt = opt.logger.wandb
        if wandb_opt is not None and wandb_opt.project:
            try:
                import wandb
            except ImportError:
                log.warning(
                    "logger.wandb.project is set but wandb is not installed (pip install wandb): skipped"
                )
            else:
                resume_id = wandb_opt.resume_id
                self.wandb = wandb.init(
                    project=wandb_opt.project,
                    entity=wandb_opt.entity,
                    name=opt.name,
                    id=resume_id,
                    resume="allow" if resume_id else None,
                    config=to_plain(opt),
                )

    def scalars(self, values: dict[str, float], it: int, prefix: str = "") -> None:
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{prefix}{k}", v, it)
        if self.wandb is not None:
            self.wandb.log({f"{prefix}{k}": v for k, v in values.items()}, step=it)

    def image(self, tag: str, img_uint8_hwc: np.ndarray, it: int) -> None:
        if self.tb is not None:
            self.tb.add_image(tag, img_uint8_hwc, it, dataformats="HWC")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
