"""Settings for fast CPU inference beside malloc's (:mod:`ehat.cpu_allocator`): OpenMP's wait
policy and the memory format. Measured in docs/performance.md (small networks on CPU).

- PyTorch's CPU operators run on libgomp's threads, each operator split evenly between them. By
  default a thread that has finished its share spins, waiting for the next operator. When other
  processes compete for the cores, that spinning burns the time slices the same operator's other
  threads need, and every operator waits for its slowest thread. ``OMP_WAIT_POLICY=PASSIVE``
  makes waiting threads sleep. libgomp reads it once, when torch is first imported, so
  :func:`passive_omp_wait` must run before that.
- oneDNN's convolutions work channels-last; on (B, C, H, W) tensors each one reorders its input
  and output. Networks made of convolutions only ran 1.7x (SPAN) to 4.4x (RLFN) faster
  channels-last on the 2-core development VM; in HAT and EHAT the attention's linear layers work on (B, N, C) tokens anyway, and
  channels-last gains nothing there (:func:`prefers_channels_last`).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported lazily: passive_omp_wait must run before it loads
    from torch import nn

__all__ = ["passive_omp_wait", "prefers_channels_last", "to_cpu_layout"]


def passive_omp_wait() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` for this process; True if it will take effect.

    Leaves a policy the user set alone, and does nothing once torch is imported (too late for
    libgomp to read it).
    """
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def prefers_channels_last(model: nn.Module) -> bool:
    """Whether ``model`` is built of convolutions only (no linear layer, no attention)."""
    from torch import nn

    return not any(isinstance(m, (nn.Linear, nn.MultiheadAttention)) for m in model.modules())


def to_cpu_layout(model: nn.Module) -> nn.Module:
    """``model`` with channels-last weights if :func:`prefers_channels_last` (in place; its
    outputs follow its convolutions' layout, the values within float rounding), else unchanged."""
    import torch

    return model.to(memory_format=torch.channels_last) if prefers_channels_last(model) else model
