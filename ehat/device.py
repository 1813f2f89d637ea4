"""Device choice shared by training, evaluation and the command line."""

from __future__ import annotations

import torch

from ehat.errors import EhatError

__all__ = ["DeviceError", "resolve_device"]


class DeviceError(EhatError):
    """The requested device does not exist on this machine."""


def resolve_device(choice: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda``/``cuda:N`` without CUDA is an error.

    ``choice`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    choice = str(choice).strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(choice)
    except RuntimeError as err:
        raise DeviceError(f"unknown device {choice!r}: use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {choice!r} was requested but CUDA is not available: use cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {choice!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type != "cpu":
        raise DeviceError(f"device {choice!r} is not supported: use auto, cpu, cuda or cuda:N")
    return device
