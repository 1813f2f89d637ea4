"""One dataset root (an HR folder or LMDB, optionally with its LR twin) resolved to pairs and readable.

Construction checks only names and folders (cheap, fine for 85k images): missing or empty folders,
missing pairs and ambiguous names fail here, naming the path. Pixels are checked when read; use
``scripts/verify_dataset.py`` to decode everything once before a long run.
"""

from __future__ import annotations

import os
from typing import Literal, Optional

import numpy as np

from ehat.data.image_io import ImageReadError, decode_image, read_bytes
from ehat.data.lmdb_backend import LmdbReader, read_lmdb_keys
from ehat.data.pairing import (
    DatasetError,
    ImagePair,
    MissingPolicy,
    complain,
    find_pairs,
    find_pairs_from_meta_info,
    list_images,
    match_names,
    read_meta_info,
    report_unpaired,
    source_image_name,
    strip_scale_suffix,
)

Backend = Literal["disk", "lmdb"]


class PairSource:
    """Pairs of one root and a reader for them.

    Args:
        gt_root: HR folder or ``.lmdb`` (None for LR-only sets).
        lq_root: LR folder or ``.lmdb`` (None: the LR is made from the HR on the fly).
        backend: ``'disk'`` or ``'lmdb'``.
        scale: the SR factor (for ``x{scale}`` names).
        meta_info_file: optional BasicSR meta-info file restricting the HR names.
        filename_tmpl: optional BasicSR LR name template (``'{}x4'``); default: automatic.
        missing: ``'error'`` or ``'warn'`` (warn and drop) for unpaired images.
        max_images: keep only the first N source images in name order (sub-images of one image count once).
    """

    def __init__(
        self,
        gt_root: Optional[str],
        lq_root: Optional[str],
        backend: Backend = "disk",
        scale: int = 4,
        meta_info_file: Optional[str] = None,
        filename_tmpl: Optional[str] = None,
        missing: MissingPolicy = "error",
        max_images: Optional[int] = None,
    ) -> None:
        if gt_root is None and lq_root is None:
            raise DatasetError("a dataset root needs dataroot_gt, dataroot_lq or both; both are null")
        if backend not in ("disk", "lmdb"):
            raise DatasetError(f"io_backend type must be 'disk' or 'lmdb', got {backend!r}")
        self.gt_root = None if gt_root is None else os.fspath(gt_root)
        self.lq_root = None if lq_root is None else os.fspath(lq_root)
        self.backend = backend
        self.scale = scale
        self._readers: dict[str, LmdbReader] = {}
        if backend == "lmdb":
            self.pairs = self._lmdb_pairs(meta_info_file, filename_tmpl, missing)
            self._readers = {r: LmdbReader(r) for r in (self.gt_root, self.lq_root) if r is not None}
        else:
            self.pairs = self._disk_pairs(meta_info_file, filename_tmpl, missing)
        if max_images is not None:
            self.pairs = _first_images(self.pairs, int(max_images))

    def _disk_pairs(
        self, meta_info_file: Optional[str], filename_tmpl: Optional[str], missing: MissingPolicy
    ) -> list[ImagePair]:
        if self.gt_root is None:
            return find_pairs(None, self.lq_root, self.scale, filename_tmpl)
        if self.lq_root is None:
            names = read_meta_info(meta_info_file) if meta_info_file else list_images(self.gt_root)
            if meta_info_file:
                on_disk = set(list_images(self.gt_root))
                absent = [n for n in names if n not in on_disk]
                if absent:
                    complain(
                        f"{len(absent)} image(s) listed in {meta_info_file} are not in {self.gt_root}: "
                        f"{', '.join(absent[:20])}",
                        missing,
                        self.gt_root,
                    )
                names = [n for n in names if n in on_disk]
            return [
                ImagePair(os.path.splitext(n)[0], os.path.join(self.gt_root, n), "") for n in sorted(names)
            ]
        if meta_info_file:
            return find_pairs_from_meta_info(
                meta_info_file, self.gt_root, self.lq_root, self.scale, filename_tmpl, missing
            )
        return find_pairs(self.gt_root, self.lq_root, self.scale, filename_tmpl, missing)

    def _lmdb_pairs(
        self, meta_info_file: Optional[str], filename_tmpl: Optional[str], missing: MissingPolicy
    ) -> list[ImagePair]:
        for root in (self.gt_root, self.lq_root):
            if root is not None and not root.endswith(".lmdb"):
                raise DatasetError(f"io_backend is lmdb but {root} does not end with .lmdb", root)
        if self.gt_root is None:
            keys = read_lmdb_keys(self.lq_root)
            return [ImagePair(strip_scale_suffix(k, self.scale), None, k) for k in keys]
        gt_keys = read_lmdb_keys(self.gt_root)
        if meta_info_file:
            listed = {os.path.splitext(n)[0] for n in read_meta_info(meta_info_file)}
            gt_keys = [k for k in gt_keys if k in listed]
        if self.lq_root is None:
            return [ImagePair(k, k, "") for k in gt_keys]
        lq_keys = read_lmdb_keys(self.lq_root)
        pairs, hr_only, lr_only = match_names(
            gt_keys, lq_keys, self.scale, filename_tmpl, self.gt_root, self.lq_root
        )
        report_unpaired(hr_only, [] if meta_info_file else lr_only, self.gt_root, self.lq_root, missing)
        if not pairs:
            raise DatasetError(
                f"no HR/LR pairs found between {self.gt_root} and {self.lq_root}", self.gt_root
            )
        return [ImagePair(k, h, lo) for k, h, lo in pairs]

    @property
    def lq_on_the_fly(self) -> bool:
        """True when the LR is computed from the HR (no LR root)."""
        return self.lq_root is None

    def read(self, path: str, which: Literal["gt", "lq"], bgr: bool = False) -> np.ndarray:
        """Decode one image of this root: ``(H, W, 3)`` RGB (BGR if ``bgr``) uint8/uint16.

        ``path`` is a file or an LMDB key."""
        if self.backend == "lmdb":
            root = self.gt_root if which == "gt" else self.lq_root
            return decode_image(self._readers[root].get(path), f"{root}:{path}", bgr)
        return decode_image(read_bytes(path), path, bgr)

    def display_path(self, path: str, which: Literal["gt", "lq"]) -> str:
        """A path for messages and sample dicts: the file, or ``<lmdb>:<key>``."""
        if self.backend == "lmdb":
            return f"{self.gt_root if which == 'gt' else self.lq_root}:{path}"
        return path


def _first_images(pairs: list[ImagePair], n: int) -> list[ImagePair]:
    if n <= 0:
        raise DatasetError(f"max_images must be a positive integer, got {n}")
    kept: list[ImagePair] = []
    sources: set[str] = set()
    for p in pairs:  # pairs are sorted by name, so sub-images of one source are adjacent
        src = source_image_name(p.name)
        if src not in sources:
            if len(sources) == n:
                break
            sources.add(src)
        kept.append(p)
    return kept


__all__ = ["PairSource", "ImageReadError"]
