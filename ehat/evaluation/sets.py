"""Finding what to evaluate: the challenge's sets under ``--data_dir`` or an ``--lr_dir`` / ``--hr_dir``
pair, and the images of one set with their ground truth.

The challenge's layout is ``DATA_DIR/DIV2K_LSDIR_{valid,test}_{HR,LR}`` (its script also spells it
``LSDIR_DIV2K_...``), LR images named ``<name>x4.png`` beside ``<name>.png`` HR images.
Ground truth rules (what a challenge entrant expects):

- the valid set's HR folder is required: a missing or misnamed one is an :class:`EvalError` naming
  the folder looked for (and a close folder name, if any), unless ``lr_only``;
- the test set's HR folder may be absent (the challenge withholds it): a warning names the folder;
- ``--lr_dir`` alone is an LR-only set; with ``--hr_dir`` the HR folder is required.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ehat.errors import closest
from ehat.evaluation.errors import EvalError

__all__ = [
    "SET_PREFIXES",
    "EvalSet",
    "ImageItem",
    "find_sets",
    "list_set",
    "lossy_inputs",
    "lossy_warning",
    "resolve_items",
]

SET_PREFIXES = ("DIV2K_LSDIR", "LSDIR_DIV2K")  # the challenge README's and its script's spellings


@dataclass(frozen=True)
class ImageItem:
    """One image of a set: ``hr_path`` None when the set has no ground truth for it."""

    name: str
    lr_path: str
    hr_path: str | None


@dataclass(frozen=True)
class EvalSet:
    """One set to evaluate. ``mode``: "valid" or "test" (the results' key prefix).

    ``hr_dir`` None: no ground truth (metrics skipped). ``hr_required``: ground truth is expected, so
    an HR folder that is missing (``hr_missing``, the folder looked for) or pairs with none of the LR
    images is an :class:`EvalError` at :func:`resolve_items`; otherwise a warning.
    """

    mode: str
    lr_dir: Path
    hr_dir: Path | None
    hr_required: bool = False
    hr_missing: Path | None = None


def _near_folder(root: Path, expected: str, exclude: str = "") -> str:
    """`` (did you mean 'X'?)`` for a folder in ``root`` whose name is close to ``expected``
    (case-insensitive; ``exclude`` is never suggested)."""
    try:
        names = {p.name.lower(): p.name for p in root.iterdir() if p.is_dir()}
    except OSError:
        return ""
    match = closest(expected.lower(), [n for n in names if n not in (expected.lower(), exclude.lower())])
    return f" (did you mean {names[match]!r}?)" if match else ""


def challenge_set(data_dir: str | os.PathLike, mode: str, lr_only: bool = False) -> EvalSet:
    """The ``{prefix}_{mode}_LR`` / ``_HR`` folders under ``data_dir``.

    Raises :class:`EvalError` naming the folders looked for when no LR folder exists. A missing HR
    folder is recorded in ``hr_missing`` (required for the valid set unless ``lr_only``).
    """
    root = Path(data_dir)
    tried = []
    for prefix in SET_PREFIXES:
        lr, hr = root / f"{prefix}_{mode}_LR", root / f"{prefix}_{mode}_HR"
        tried.append(str(lr))
        if not lr.is_dir():
            continue
        if lr_only:
            return EvalSet(mode, lr, None)
        if hr.is_dir():
            return EvalSet(mode, lr, hr, hr_required=mode == "valid")
        return EvalSet(mode, lr, None, hr_required=mode == "valid", hr_missing=hr)
    raise EvalError(
        f"no {mode} set under --data_dir {root}: looked for {' or '.join(tried)}"
        f"{_near_folder(root, Path(tried[0]).name, exclude=Path(tried[0]).name[:-2] + 'HR')} (with *x4.png LR images, and HR beside it). "
        f"Check --data_dir, or give --lr_dir/--hr_dir."
    )


def find_sets(
    data_dir: str | os.PathLike,
    include_test: bool = False,
    lr_dir: str | os.PathLike | None = None,
    hr_dir: str | os.PathLike | None = None,
    lr_only: bool = False,
) -> list[EvalSet]:
    """The sets of one ``test_demo.py`` run: ``valid`` (from ``lr_dir``/``hr_dir`` when given, else the
    challenge's layout under ``data_dir``) and, with ``include_test``, ``test``.

    Raises :class:`EvalError` for missing folders (see the module's rules).
    """
    if lr_dir is not None:
        if hr_dir is not None and not Path(hr_dir).is_dir():
            hr = Path(hr_dir)
            raise EvalError(
                f"--hr_dir {hr} is not a folder{_near_folder(hr.parent, hr.name)}: give the HR folder, "
                f"or leave --hr_dir out to evaluate --lr_dir without metrics"
            )
        sets = [
            EvalSet("valid", Path(lr_dir), Path(hr_dir) if hr_dir else None, hr_required=hr_dir is not None)
        ]
    else:
        sets = [challenge_set(data_dir, "valid", lr_only)]
    if include_test:
        sets.append(challenge_set(data_dir, "test", lr_only))
    return sets


def list_set(
    hr_dir: str | os.PathLike | None, lr_dir: str | os.PathLike, scale: int
) -> tuple[list[ImageItem], list[str]]:
    """Every LR image of ``lr_dir``, with its HR from ``hr_dir`` when one exists.

    Returns (items sorted by name, notes). LR images without HR are kept (evaluated, no metrics);
    HR images without LR are reported in the notes. Raises :class:`EvalError` for a missing or
    empty folder.
    """
    from ehat.data.pairing import DatasetError, find_pairs, list_images, strip_scale_suffix

    try:
        lr_only = find_pairs(None, lr_dir, scale)
    except DatasetError as e:
        raise EvalError(f"LR folder {lr_dir}: {e}") from e
    if not lr_only:
        raise EvalError(f"LR folder {lr_dir} has no images")
    notes: list[str] = []
    hr_of: dict[str, str] = {}
    if hr_dir is None:
        notes.append(f"no HR folder beside {lr_dir}: SR images are produced, metrics are skipped")
    else:
        try:
            hr_names = list_images(hr_dir)
        except DatasetError as e:
            raise EvalError(f"HR folder {hr_dir}: {e}") from e
        for rel in hr_names:
            key = strip_scale_suffix(os.path.splitext(rel)[0].replace(os.sep, "/"), scale)
            hr_of[key] = os.path.join(hr_dir, rel)
        lr_names = {p.name for p in lr_only}
        no_hr = [p.name for p in lr_only if p.name not in hr_of]
        no_lr = sorted(set(hr_of) - lr_names)
        if no_hr:
            notes.append(
                f"{len(no_hr)} LR image(s) have no HR in {hr_dir} (metrics skipped): {', '.join(no_hr[:10])}"
            )
        if no_lr:
            notes.append(
                f"{len(no_lr)} HR image(s) have no LR in {lr_dir} (not evaluated): {', '.join(no_lr[:10])}"
            )
    items = [ImageItem(p.name, p.lr_path, hr_of.get(p.name)) for p in lr_only]
    return items, notes


def resolve_items(eval_set: EvalSet, scale: int) -> tuple[list[ImageItem], list[str]]:
    """:func:`list_set` of ``eval_set`` (LR folder errors first). Ground truth that is required but
    missing, or an HR folder that pairs with none of the LR images, is an :class:`EvalError` naming
    the folder looked for (and a close folder name) or an example of the expected HR name."""
    items, notes = list_set(eval_set.hr_dir, eval_set.lr_dir, scale)
    missing = eval_set.hr_missing
    if missing is not None:
        near = _near_folder(missing.parent, missing.name, exclude=eval_set.lr_dir.name)
        if eval_set.hr_required:
            raise EvalError(
                f"no HR folder for the {eval_set.mode} set: looked for {missing}{near} beside {eval_set.lr_dir}. "
                f"PSNR needs the HR images: fix the folder's name or --data_dir, or pass --lr_only to produce "
                f"SR images and runtimes without metrics"
            )
        notes = [
            f"no HR folder for the {eval_set.mode} set: looked for {missing}{near} (the challenge withholds "
            f"the test HR): SR images are produced, metrics are skipped"
        ] + notes[1:]
    if eval_set.hr_dir is not None and eval_set.hr_required and all(i.hr_path is None for i in items):
        first = items[0]
        raise EvalError(
            f"none of the {len(items)} LR image(s) of {eval_set.lr_dir} has its HR in {eval_set.hr_dir} "
            f"(for {os.path.basename(first.lr_path)} it looked for an HR image named {first.name}, any image "
            f"extension): check the HR file names, or pass --lr_only to evaluate without metrics"
        )
    return items, notes


def _is_lossy(path: str) -> bool:
    """True when the file's header is JPEG or lossy WebP (whatever its extension says)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False  # unreadable: reported when the image is read
    return head.startswith(b"\xff\xd8\xff") or (head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8 ")


def lossy_inputs(items: list[ImageItem]) -> list[ImageItem]:
    """The items whose LR file is lossy (JPEG or lossy WebP, found from the file header)."""
    return [item for item in items if _is_lossy(item.lr_path)]


def lossy_warning(mode: str, items: list[ImageItem]) -> str | None:
    """One warning line for a set with lossy LR inputs, or None when all are lossless."""
    lossy = lossy_inputs(items)
    if not lossy:
        return None
    names = ", ".join(os.path.basename(i.lr_path) for i in lossy[:5]) + (", ..." if len(lossy) > 5 else "")
    return (
        f"{len(lossy)} of {len(items)} LR input(s) of the {mode} set are lossy (JPEG/WebP-compressed: {names}): "
        f"compression artefacts lower the PSNR; the challenge's LR images are lossless PNG"
    )
