"""The one atomic writer (ehat.atomic): all-or-nothing files, no temporaries left behind."""

from __future__ import annotations

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
