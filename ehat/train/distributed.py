"""Process-group setup for ``torchrun`` (``--launcher pytorch``) and SLURM, and small collectives.

Every helper works unchanged in a single process (no process group): rank 0 of 1.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import torch
import torch.distributed as dist

from ehat.errors import EhatError


class LauncherError(EhatError):
    """``--launcher`` given without the environment its launcher sets (torchrun, srun)."""


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def init_distributed(launcher: str, backend: str | None = None, port: int = 29500) -> torch.device:
    """Join the process group of ``launcher`` ('pytorch' for torchrun, 'slurm') and return this rank's device.

    ``backend`` defaults to NCCL with CUDA, gloo without (CPU smoke runs, tests).
    """
    if launcher == "slurm":
        proc_id = int(os.environ["SLURM_PROCID"])
        ntasks = int(os.environ["SLURM_NTASKS"])
        node_list = os.environ["SLURM_NODELIST"]
        gpus = max(torch.cuda.device_count(), 1)
        addr = subprocess.run(
            ["scontrol", "show", "hostnames", node_list], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        os.environ.setdefault("MASTER_PORT", str(port))
        os.environ["MASTER_ADDR"] = addr
        os.environ["WORLD_SIZE"] = str(ntasks)
        os.environ["RANK"] = str(proc_id)
        os.environ["LOCAL_RANK"] = str(proc_id % gpus)
    elif launcher != "pytorch":
        raise ValueError(f"unknown launcher {launcher!r}: use 'none', 'pytorch' (torchrun) or 'slurm'")
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise LauncherError(
                f"--launcher {launcher} but ${var} is not set: start with "
                "'torchrun --nproc_per_node=N train.py -opt ... --launcher pytorch'"
            )
    use_cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if use_cuda else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return device


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over ranks (a copy; ``t`` itself is left alone)."""
    t = t.clone()
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on any rank (every rank gets the same answer)."""
    if not is_dist():
        return flag
    return bool(all_reduce_sum(torch.tensor([float(flag)], device=device)).item() > 0)


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (a one-element list in a single process)."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if is_dist():
        dist.barrier()


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()
