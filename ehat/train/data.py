"""Training data in a reproducible, resumable order.

* :class:`ResumableSampler` yields ``(index, sample_seed)`` for one rank: a permutation fixed by
  (seed, epoch), split across ranks, started at any position of the epoch.
* :class:`SeededDataset` runs the wrapped dataset's ``__getitem__`` with Python/NumPy/torch RNGs
  seeded by ``sample_seed``, so random crops and flips are a function of (seed, epoch, position):
  the same with 0 or 8 workers, after a resume, or with gradient accumulation.
* :class:`TrainStream` turns that into an endless sequence of micro-batches across epochs and
  reports its position (epoch, samples consumed) for the training state.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from ehat.options.registries import lookup
from ehat.options.schema import OptionsError

if TYPE_CHECKING:
    from ehat.options.datasets import DatasetOptions, TrainDatasetOptions


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 32-bit seed for the sample at global ``position`` of ``epoch``."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


class ResumableSampler(Sampler):
    """This rank's share of a seeded permutation of ``size * enlarge_ratio`` indices, from ``start``.

    Like BasicSR's EnlargedSampler (index = position % size, the permutation padded so every rank
    gets the same count), plus a start position within the epoch for exact resumes.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        enlarge_ratio: int = 1,
    ) -> None:
        if size <= 0:
            raise ValueError("the training dataset is empty")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.num_replicas, self.rank = num_replicas, rank
        self.total = size * enlarge_ratio
        self.per_rank = math.ceil(self.total / num_replicas)
        self.epoch = 0
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        """Iterate epoch ``epoch`` from this rank's ``start``-th sample on."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.per_rank - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.total, generator=g).tolist()
        else:
            order = list(range(self.total))
        order += order[: self.per_rank * self.num_replicas - self.total]
        positions = range(self.rank, len(order), self.num_replicas)
        for pos in list(positions)[self.start :]:
            yield order[pos] % self.size, sample_seed(self.seed, self.epoch, pos)


class SeededDataset(Dataset):
    """``dataset[index]`` computed under RNGs seeded by the sampler's per-sample seed; the caller's
    RNG states are restored afterwards."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        py, npy, tch = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            random.setstate(py)
            np.random.set_state(npy)
            torch.set_rng_state(tch)


def build_dataset(opt: DatasetOptions) -> Dataset:
    """basicsr's ``build_dataset`` for one dataset section (its dict view, null values dropped). For
    basicsr's own dataset types, list-valued ``dataroot_gt`` / ``dataroot_lq`` / ``meta_info_file``
    build one dataset per entry, concatenated (DIV2K + LSDIR with PairedImageDataset); ehat's
    datasets take the lists themselves."""
    from basicsr.data import build_dataset as basicsr_build_dataset
    from basicsr.utils.registry import DATASET_REGISTRY

    keys = ("dataroot_gt", "dataroot_lq", "meta_info_file")
    clean = {k: v for k, v in opt.to_dict().items() if v is not None}
    takes_lists = not lookup(DATASET_REGISTRY, opt.type).__module__.startswith("basicsr.")
    lists = {} if takes_lists else {k: clean[k] for k in keys if isinstance(clean.get(k), list)}
    if not lists:
        return basicsr_build_dataset(copy.deepcopy(clean))
    n = len(next(iter(lists.values())))
    parts = []
    for i in range(n):
        part = copy.deepcopy(clean)
        for k, v in lists.items():
            part[k] = v[i] if len(v) == n else v[0]
        parts.append(basicsr_build_dataset(part))
    return ConcatDataset(parts)


class TrainStream:
    """Endless micro-batches of the training set for this rank, resumable at any batch boundary.

    ``epoch`` and ``consumed`` (samples of this rank's share taken in the current epoch) are the
    position to store; :meth:`seek` restores it. Incomplete trailing batches are dropped.
    """

    def __init__(
        self, dataset: Dataset, opt: TrainDatasetOptions, seed: int, num_replicas: int = 1, rank: int = 0
    ) -> None:
        self.batch_size = opt.batch_size_per_gpu
        if len(dataset) == 0:
            raise OptionsError(
                "datasets.train.dataroot_gt", "the training set has no images: check the folders"
            )
        self.sampler = ResumableSampler(
            len(dataset),
            seed,
            shuffle=opt.use_shuffle,
            num_replicas=num_replicas,
            rank=rank,
            enlarge_ratio=opt.dataset_enlarge_ratio,
        )
        if self.sampler.per_rank < self.batch_size:
            raise OptionsError(
                "datasets.train.batch_size_per_gpu",
                f"{self.batch_size} exceeds the {self.sampler.per_rank} samples per rank: use a smaller batch "
                "or a larger dataset_enlarge_ratio",
            )
        workers = opt.num_worker_per_gpu
        self.loader = DataLoader(
            SeededDataset(dataset),
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            drop_last=True,
            pin_memory=opt.pin_memory,
            persistent_workers=opt.persistent_workers and workers > 0,
            generator=torch.Generator(),  # keep the global torch RNG untouched by iterator creation
        )
        self.epoch = 0
        self.consumed = 0
        self._it: Iterator | None = None

    @property
    def batches_per_epoch(self) -> int:
        return self.sampler.per_rank // self.batch_size

    def seek(self, epoch: int, consumed: int) -> None:
        self.epoch, self.consumed = epoch, consumed
        self._it = None

    def next(self) -> dict:
        """The next micro-batch (dict of batched tensors / path lists)."""
        while True:
            if self._it is None:
                self.sampler.set_position(self.epoch, self.consumed)
                self._it = iter(self.loader)
            try:
                batch = next(self._it)
            except StopIteration:
                self.epoch, self.consumed, self._it = self.epoch + 1, 0, None
                continue
            self.consumed += self.batch_size
            return batch
