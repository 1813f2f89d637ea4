"""Image LMDBs in BasicSR's layout: ``name.lmdb/{data.mdb, lock.mdb, meta_info.txt}``.

Keys are image names without extension (our pairing names, e.g. ``0001_s001``); values are encoded PNG
bytes; ``meta_info.txt`` has one line per key: ``0001_s001.png (480,480,3) 1`` (name, HWC shape, PNG
compression level), so BasicSR's own ``PairedImageDataset`` reads our LMDBs too.
"""

from __future__ import annotations

import os
from typing import Optional

import lmdb

from ehat.data.image_io import ImageReadError, PathLike
from ehat.data.pairing import DatasetError

META_INFO = "meta_info.txt"


def read_lmdb_meta(lmdb_path: PathLike) -> dict[str, str]:
    """``key -> meta line`` from an LMDB's ``meta_info.txt`` (key = first token without extension)."""
    root = os.fspath(lmdb_path)
    if not os.path.isdir(root):
        raise DatasetError(f"LMDB folder does not exist: {root}", root)
    meta = os.path.join(root, META_INFO)
    if not os.path.isfile(os.path.join(root, "data.mdb")) or not os.path.isfile(meta):
        raise DatasetError(
            f"{root} is not an image LMDB (needs data.mdb and {META_INFO}); build it with scripts/make_lmdb.py",
            root,
        )
    out: dict[str, str] = {}
    with open(meta, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out[os.path.splitext(line.split()[0])[0]] = line.rstrip("\n")
    if not out:
        raise DatasetError(f"LMDB lists no images in its {META_INFO}: {root}", root)
    return out


def read_lmdb_keys(lmdb_path: PathLike) -> list[str]:
    """Sorted keys of an image LMDB, from its ``meta_info.txt``."""
    return sorted(read_lmdb_meta(lmdb_path))


# py-lmdb refuses to open one environment twice in a process, so readers of the same LMDB (a training and a
# validation dataset, a script) share one read-only handle per process: a resource cache, not program state.
_READ_ENVS: dict[tuple[int, str], lmdb.Environment] = {}


def _open_readonly(path: str) -> lmdb.Environment:
    key = (os.getpid(), os.path.realpath(path))
    env = _READ_ENVS.get(key)
    if env is None:
        try:
            env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False)
        except lmdb.Error as e:
            raise DatasetError(f"cannot open LMDB {path}: {e}", path) from None
        _READ_ENVS[key] = env
    return env


class LmdbReader:
    """Read-only access to one image LMDB, opened lazily in each process (safe with DataLoader workers)."""

    def __init__(self, lmdb_path: PathLike) -> None:
        self.path = os.fspath(lmdb_path)
        self._env: Optional[lmdb.Environment] = None
        self._pid: Optional[int] = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "_env": None, "_pid": None}

    def _open(self) -> lmdb.Environment:
        if self._env is None or self._pid != os.getpid():
            self._env = _open_readonly(self.path)
            self._pid = os.getpid()
        return self._env

    def get(self, key: str) -> bytes:
        """The encoded image stored under ``key``; :class:`ImageReadError` names the LMDB and key if absent."""
        with self._open().begin(write=False, buffers=False) as txn:
            value = txn.get(key.encode("utf-8"))
        if value is None:
            raise ImageReadError(f"key {key!r} is not in LMDB {self.path}", f"{self.path}:{key}")
        if not value:
            raise ImageReadError(
                f"empty value (zero bytes) for key {key!r} in LMDB {self.path}", f"{self.path}:{key}"
            )
        return value


class LmdbWriter:
    """Appends images to an LMDB and its ``meta_info.txt``; reopening resumes (see :attr:`done`).

    ``meta_info.txt`` lines are written only after their transaction is committed, so a key listed there
    is always readable; a run killed mid-batch redoes that batch.
    """

    def __init__(self, lmdb_path: PathLike, map_size: int = 1 << 40, commit_every: int = 500) -> None:
        self.path = os.fspath(lmdb_path)
        os.makedirs(self.path, exist_ok=True)
        meta = os.path.join(self.path, META_INFO)
        self.done: set[str] = set()
        if os.path.isfile(meta):
            with open(meta, encoding="utf-8") as f:
                self.done = {os.path.splitext(line.split()[0])[0] for line in f if line.strip()}
        self._env = lmdb.open(self.path, map_size=map_size)
        self._txn = self._env.begin(write=True)
        self._meta = open(meta, "a", encoding="utf-8")
        self._pending: list[str] = []
        self.commit_every = commit_every

    def put(self, key: str, data: bytes, shape: tuple[int, int, int], compress_level: int) -> None:
        """Store encoded image bytes under ``key`` with its ``(H, W, C)`` shape."""
        self._txn.put(key.encode("utf-8"), data)
        h, w, c = shape
        self._pending.append(f"{key}.png ({h},{w},{c}) {compress_level}\n")
        self.done.add(key)
        if len(self._pending) >= self.commit_every:
            self.commit()

    def commit(self) -> None:
        """Commit pending images and list them in ``meta_info.txt``."""
        self._txn.commit()
        self._meta.writelines(self._pending)
        self._meta.flush()
        self._pending = []
        self._txn = self._env.begin(write=True)

    def close(self) -> None:
        """Commit and close."""
        self.commit()
        self._txn.abort()
        self._env.close()
        self._meta.close()

    def __enter__(self) -> LmdbWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
