"""A network from its options: ``network_g`` (or ``network_d``, ``network_t``) + its pretrained weights.

The one place training (generator, discriminator, distillation teacher) and ``test.py`` build a
network and load the file named by ``path.pretrain_network_<x>``; it sits below ``ehat.train`` and
``ehat.evaluation`` and uses only :func:`ehat.archs.build_network` and
:func:`ehat.checkpoints.load_weights`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from torch import nn

from ehat.archs import build_network
from ehat.archs.presets import NetworkConfigError
from ehat.checkpoints import LoadReport, load_model, load_weights

__all__ = ["NetworkBuildError", "build_from_options", "load_pretrained"]


class NetworkBuildError(NetworkConfigError):
    """A network's constructor refused the arguments of an option file's ``network_<x>`` section."""


def load_pretrained(
    net: nn.Module,
    weights: str | os.PathLike,
    param_key: str = "auto",
    *,
    strict: bool = True,
    key: str = "path.pretrain_network_g",
    log: logging.Logger | None = None,
) -> LoadReport:
    """Load ``weights`` into ``net`` (:func:`ehat.checkpoints.load_weights`); log its summary under ``key``
    (a warning when something was left out by a non-strict load, else info)."""
    report = load_weights(net, weights, param_key, strict=strict)
    if log is not None:
        (log.info if report.complete else log.warning)(f"{key} ({param_key}): {report.summary()}")
    return report


def build_from_options(
    spec: Mapping[str, Any] | None,
    weights: str | os.PathLike | None = None,
    param_key: str = "auto",
    *,
    strict: bool = True,
    role: str = "g",
    log: logging.Logger | None = None,
) -> nn.Module:
    """``network_<role>`` (type: class or preset, + arguments) built, then ``weights`` loaded if given.

    Args:
        spec: the option file's ``network_<role>`` mapping; None: the network ``weights`` describes
            (its stored config, else the config read off its state dict; loaded strictly).
        weights: ``path.pretrain_network_<role>`` (None: keep the initial weights).
        param_key: ``path.param_key_<role>`` (``params``, ``params_ema`` or ``auto``).
        strict: ``path.strict_load_<role>``.
        role: ``g`` (generator), ``d`` (discriminator) or ``t`` (teacher): names the keys in messages.
        log: where the load report goes.

    A constructor refusing its arguments (a ``ValueError``) is a :class:`NetworkBuildError` naming
    ``network_<role>``; unknown types/arguments are :mod:`ehat.archs`' errors, a file that does not
    fit a :class:`ehat.checkpoints.CheckpointError`.
    """
    if spec is None:
        if not weights:
            raise NetworkBuildError(
                f"option 'network_{role}': is required without path.pretrain_network_{role}"
            )
        net = load_model(weights, param_key=param_key).train()
        if log is not None:
            log.info(f"path.pretrain_network_{role} ({param_key}): {weights} describes {net.arch_config}")
        return net
    try:
        net = build_network(dict(spec))
    except ValueError as exc:  # the options checked the argument names; a constructor refused their values
        raise NetworkBuildError(f"option 'network_{role}': cannot build the network: {exc}") from exc
    if weights:
        load_pretrained(net, weights, param_key, strict=strict, key=f"path.pretrain_network_{role}", log=log)
    return net
