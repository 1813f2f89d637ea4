"""Pairing HR and LR images by their names as distributed.

A pair's *name* is the image's path relative to its root, without extension, with a trailing
``x{scale}`` removed from LR names, ``/``-separated::

    DIV2K      HR 0001.png            LR 0001x4.png             name 0001
    LSDIR      HR 0001000/0000001.png LR 0001000/0000001x4.png  name 0001000/0000001
    challenge  HR 0901.png            LR 0901x4.png             name 0901
    sub-images HR 0001_s001.png       LR 0001_s001.png          name 0001_s001

BasicSR's ``filename_tmpl`` (``'{}x4'``, ``'{}'``) is accepted instead of the automatic rule.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Optional, Sequence

from ehat.data.image_io import IMAGE_EXTENSIONS, PathLike
from ehat.errors import EhatError

MissingPolicy = Literal["error", "warn"]

_SUBIMAGE_SUFFIX = re.compile(r"_s\d+$")
_LIST_LIMIT = 20


class DatasetError(EhatError, ValueError):
    """A dataset folder, file list or pairing is wrong; the message names the folder or files at fault."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class ImagePair:
    """One HR/LR pair. ``hr_path`` is None for LR-only sets. Paths are strings (files or LMDB keys)."""

    name: str
    hr_path: Optional[str]
    lr_path: str


def strip_scale_suffix(stem: str, scale: int) -> str:
    """``'0001x4'`` -> ``'0001'`` (also ``X4``); other names are returned unchanged."""
    suffix = f"x{scale}"
    if len(stem) > len(suffix) and stem.lower().endswith(suffix):
        return stem[: -len(suffix)]
    return stem


def source_image_name(name: str) -> str:
    """The full image a BasicSR sub-image came from: ``'0001_s012'`` -> ``'0001'``."""
    return _SUBIMAGE_SUFFIX.sub("", name)


def _format_list(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    more = f" ... and {len(items) - _LIST_LIMIT} more" if len(items) > _LIST_LIMIT else ""
    return f"{shown}{more}"


def list_images(folder: PathLike, recursive: bool = True) -> list[str]:
    """Image files under ``folder`` as sorted ``/``-separated relative paths.

    Hidden files (``.name``, e.g. our temporary files) are ignored. Raises :class:`DatasetError` when the
    folder is missing, is not a folder, or holds no images.
    """
    root = os.fspath(folder)
    if not os.path.exists(root):
        raise DatasetError(f"dataset folder does not exist: {root}", root)
    if not os.path.isdir(root):
        raise DatasetError(f"expected a dataset folder but found a file: {root}", root)
    found: list[str] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                sub = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir():
                    if recursive:
                        stack.append(sub)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                    found.append(sub)
    if not found:
        exts = " ".join(IMAGE_EXTENSIONS)
        raise DatasetError(f"dataset folder holds no images ({exts}): {root}", root)
    return sorted(found)


def _index(names: Iterable[str], key_of: Callable[[str], str], where: str) -> dict[str, str]:
    """Map key -> name; two names with one key (``0001.png`` and ``0001x4.png``) are an error."""
    index: dict[str, str] = {}
    clashes: list[str] = []
    for name in names:
        key = key_of(name)
        if key in index:
            clashes.append(f"{index[key]} / {name}")
        else:
            index[key] = name
    if clashes:
        raise DatasetError(
            f"ambiguous image names in {where}: these files map to the same image name: {_format_list(clashes)}; "
            "remove the duplicates",
            where,
        )
    return index


def _drop_ext(name: str) -> str:
    return os.path.splitext(name)[0]


def match_names(
    hr_names: Sequence[str],
    lr_names: Sequence[str],
    scale: int = 4,
    filename_tmpl: str | None = None,
    hr_where: str = "HR",
    lr_where: str = "LR",
) -> tuple[list[tuple[str, str, str]], list[str], list[str]]:
    """Match HR and LR names (relative paths or LMDB keys, with or without extension).

    Returns ``(pairs, hr_without_lr, lr_without_hr)``; each pair is ``(name, hr_name, lr_name)``, sorted
    by name. With ``filename_tmpl`` (BasicSR's, e.g. ``'{}x4'``) the LR stem is ``tmpl.format(hr_stem)``;
    without it, a trailing ``x{scale}`` on LR names is ignored.
    """
    hr_index = _index(hr_names, _drop_ext, hr_where)
    if filename_tmpl is None:
        lr_index = _index(lr_names, lambda n: strip_scale_suffix(_drop_ext(n), scale), lr_where)

        def lr_key(hr_key: str) -> str:
            return hr_key

    else:
        lr_index = _index(lr_names, _drop_ext, lr_where)

        def lr_key(hr_key: str) -> str:
            head, _, stem = hr_key.rpartition("/")
            formatted = filename_tmpl.format(stem)
            return f"{head}/{formatted}" if head else formatted

    pairs: list[tuple[str, str, str]] = []
    hr_missing_lr: list[str] = []
    used_lr: set[str] = set()
    for key in sorted(hr_index):
        lk = lr_key(key)
        if lk in lr_index:
            pairs.append((key, hr_index[key], lr_index[lk]))
            used_lr.add(lk)
        else:
            hr_missing_lr.append(hr_index[key])
    lr_missing_hr = sorted(lr_index[k] for k in lr_index if k not in used_lr)
    return pairs, hr_missing_lr, lr_missing_hr


def complain(message: str, missing: MissingPolicy, path: str | None = None) -> None:
    """Raise :class:`DatasetError` (``missing='error'``) or warn (``'warn'``) with ``message``."""
    if missing == "error":
        raise DatasetError(f"{message}. Fix the dataset, or set bad_image: skip to skip such images", path)
    if missing == "warn":
        warnings.warn(f"skipping: {message}", stacklevel=3)
        return
    raise ValueError(f"missing must be 'error' or 'warn', got {missing!r}")


def report_unpaired(
    hr_without_lr: Sequence[str],
    lr_without_hr: Sequence[str],
    hr_where: str,
    lr_where: str,
    missing: MissingPolicy,
) -> None:
    """Raise (``missing='error'``) or warn about unpaired images, naming them and their folders."""
    problems = []
    if hr_without_lr:
        problems.append(
            f"{len(hr_without_lr)} HR image(s) in {hr_where} have no LR in {lr_where}: "
            f"{_format_list(list(hr_without_lr))}"
        )
    if lr_without_hr:
        problems.append(
            f"{len(lr_without_hr)} LR image(s) in {lr_where} have no HR in {hr_where}: "
            f"{_format_list(list(lr_without_hr))}"
        )
    if problems:
        complain("missing pairs: " + "; ".join(problems), missing, hr_where)


def find_pairs(
    hr_dir: PathLike | None,
    lr_dir: PathLike,
    scale: int = 4,
    filename_tmpl: str | None = None,
    missing: MissingPolicy = "error",
    recursive: bool = True,
) -> list[ImagePair]:
    """Pair the images of two folders by name (see the module docstring), sorted by name.

    ``hr_dir=None`` lists ``lr_dir`` alone (``hr_path`` None, names without ``x{scale}``). Missing or empty
    folders and ambiguous names always raise :class:`DatasetError`; unpaired images raise too unless
    ``missing='warn'``, which warns and drops them. Only names are checked here, not pixels.
    """
    lr_root = os.fspath(lr_dir)
    lr_names = list_images(lr_root, recursive)
    if hr_dir is None:
        if filename_tmpl is None:
            index = _index(lr_names, lambda n: strip_scale_suffix(_drop_ext(n), scale), lr_root)
        else:
            index = _index(lr_names, _drop_ext, lr_root)
        return [ImagePair(k, None, os.path.join(lr_root, index[k])) for k in sorted(index)]
    hr_root = os.fspath(hr_dir)
    hr_names = list_images(hr_root, recursive)
    pairs, hr_only, lr_only = match_names(hr_names, lr_names, scale, filename_tmpl, hr_root, lr_root)
    report_unpaired(hr_only, lr_only, hr_root, lr_root, missing)
    if not pairs:
        raise DatasetError(f"no HR/LR pairs found between {hr_root} and {lr_root}", hr_root)
    return [ImagePair(k, os.path.join(hr_root, h), os.path.join(lr_root, lo)) for k, h, lo in pairs]


def read_meta_info(meta_info_file: PathLike) -> list[str]:
    """Image names (first token of each non-empty line) of a BasicSR meta-info file."""
    path = os.fspath(meta_info_file)
    if not os.path.isfile(path):
        raise DatasetError(f"meta_info_file does not exist: {path}", path)
    with open(path, encoding="utf-8") as f:
        names = [line.split()[0] for line in f if line.strip()]
    if not names:
        raise DatasetError(f"meta_info_file lists no images: {path}", path)
    return names


def find_pairs_from_meta_info(
    meta_info_file: PathLike,
    hr_dir: PathLike,
    lr_dir: PathLike,
    scale: int = 4,
    filename_tmpl: str | None = None,
    missing: MissingPolicy = "error",
    recursive: bool = True,
) -> list[ImagePair]:
    """Like :func:`find_pairs`, restricted to the HR names listed in a BasicSR meta-info file.

    Listed names absent from ``hr_dir`` or without an LR are reported like unpaired images.
    """
    listed = read_meta_info(meta_info_file)
    hr_root, lr_root = os.fspath(hr_dir), os.fspath(lr_dir)
    on_disk = set(list_images(hr_root, recursive))
    absent = [n for n in listed if n not in on_disk]
    present = [n for n in listed if n in on_disk]
    lr_names = list_images(lr_root, recursive)
    pairs, hr_only, _ = match_names(present, lr_names, scale, filename_tmpl, hr_root, lr_root)
    if absent:
        complain(
            f"{len(absent)} image(s) listed in {os.fspath(meta_info_file)} are not in {hr_root}: "
            f"{_format_list(absent)}",
            missing,
            hr_root,
        )
    report_unpaired(hr_only, [], hr_root, lr_root, missing)
    if not pairs:
        raise DatasetError(f"no HR/LR pairs found for {os.fspath(meta_info_file)}", os.fspath(meta_info_file))
    return [ImagePair(k, os.path.join(hr_root, h), os.path.join(lr_root, lo)) for k, h, lo in pairs]
