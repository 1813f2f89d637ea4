"""The one atomic writer (ehat.atomic): all-or-nothing files, no temporaries left behind."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from ehat.atomic import atomic_torch_save, atomic_write, atomic_write_bytes, is_temporary


def test_write_replaces_the_file_and_creates_folders(tmp_path):
    target = tmp_path / "a" / "b" / "x.json"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_an_error_mid_write_keeps_the_previous_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "x.bin"
    atomic_write_bytes(target, b"previous")
    seen = []

    def half_then_fail(f):
        f.write(b"half")
        seen.extend(p.name for p in tmp_path.iterdir())
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]
    temporaries = [n for n in seen if n != "x.bin"]
    assert len(temporaries) == 1 and is_temporary(temporaries[0]) and not is_temporary("x.bin")


def test_torch_save_round_trips_with_weights_only(tmp_path):
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "m.pth")
    assert torch.equal(torch.load(tmp_path / "m.pth", weights_only=True)["w"], torch.arange(3))


def test_torch_save_keeps_the_previous_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "state.pth"
    atomic_torch_save({"a": torch.ones(2)}, path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_torch_save({"a": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pth"]  # no temp file left behind


@pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_files_get_the_mode_a_plain_open_would_give(tmp_path, umask):
    """Not mkstemp's 0600: 0666 & ~umask, compared with a file written by a plain open()."""
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "atomic.txt", b"x")
        atomic_torch_save({"w": torch.zeros(1)}, tmp_path / "atomic.pth")
        with open(tmp_path / "plain.txt", "wb") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    expected = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert expected == 0o666 & ~umask  # the reference itself
    for name in ("atomic.txt", "atomic.pth"):
        assert oct(stat.S_IMODE((tmp_path / name).stat().st_mode)) == oct(expected), name


@pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")
def test_replacing_a_file_keeps_its_mode_as_a_plain_open_would(tmp_path):
    target = tmp_path / "results.json"
    target.write_bytes(b"old")
    target.chmod(0o640)
    old = os.umask(0o022)
    try:
        atomic_write_bytes(target, b"new")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o640
