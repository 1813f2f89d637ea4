"""Runtime (warm-up / repeat / median) and peak memory."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
import torch

from ehat.evaluation.memory import PeakMemory
from ehat.evaluation.runtime import describe_mode, timed


def test_default_is_the_challenges_single_untimed_warmup_free_run():
    calls = []
    out, t = timed(lambda: calls.append(1) or torch.zeros(1), torch.device("cpu"))
    assert len(calls) == 1 and len(t.runs) == 1 and t.ms == t.runs[0] and t.clock == "perf_counter"
    assert "challenge mode" in describe_mode(0, 1)


def test_warmup_runs_are_untimed_and_the_median_is_reported():
    calls = []
    _, t = timed(lambda: calls.append(1) or torch.zeros(1), torch.device("cpu"), warmup=2, repeat=5)
    assert len(calls) == 7 and len(t.runs) == 5
    assert t.ms == sorted(t.runs)[2]
    assert "median of 5" in describe_mode(2, 5)


def test_bad_repeat_is_rejected():
    with pytest.raises(ValueError, match="repeat"):
        timed(lambda: torch.zeros(1), torch.device("cpu"), repeat=0)


def test_cpu_peak_memory_sees_an_allocation_made_after_reset():
    mem = PeakMemory(torch.device("cpu"))
    mem.reset()
    before = mem.peak_mib()
    # An anonymous mapping, touched page by page, then unmapped: malloc's settings do not matter
    # (``ehat upscale`` tunes glibc malloc in-process, after which a freed numpy block stays resident).
    size = 300 * 1024 * 1024
    block = mmap.mmap(-1, size)
    np.frombuffer(block, dtype=np.uint8)[::4096] = 1
    during = mem.peak_mib()
    block.close()
    assert during - before > 200
    assert "CPU peak RSS" in mem.kind
    mem.reset()
    if mem.resettable:  # Linux: the window restarts, the freed block no longer counts
        assert mem.peak_mib() < during - 200


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_memory_is_max_memory_allocated():
    mem = PeakMemory(torch.device("cuda"))
    mem.reset()
    x = torch.empty(64 * 1024 * 1024, device="cuda")  # 256 MiB
    assert mem.peak_mib() >= 256 and mem.kind == "CUDA max_memory_allocated"
    del x
