"""Crash safety: SIGKILL at random moments (also mid-save) then --auto_resume, SIGINT/SIGTERM, full disk.

Trainer processes are forked from a forkserver that has ehat preloaded, so each start costs a
fraction of a second instead of a fresh interpreter's imports.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
import yaml

from ehat.options.train import validate_options
from ehat.train import state as st
from ehat.train.trainer import Trainer
from tests.helpers import assert_same_tensors, make_data, tiny_options

TOTAL = 24


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def ctx():
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["ehat", "ehat.train.cli", "ehat.train.trainer"])
    return context


def write_config(root: Path, data: dict, **changes: object) -> Path:
    settings = {
        "train.total_iter": TOTAL,
        "train.scheduler": {"type": "MultiStepLR", "milestones": [10, 20], "gamma": 0.5},
        "logger.save_checkpoint_freq": 1,
        "logger.keep_last": 2,
        "val.val_freq": 5,
    }
    opt = tiny_options(root, data, **{**settings, **changes})
    path = root / "opt.yml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(opt))
    return path


def start(ctx, config: Path):
    from ehat.train.cli import entry

    p = ctx.Process(target=entry, args=(["-opt", str(config), "--auto_resume"],))
    p.start()
    return p


def newest_iter(root: Path) -> int:
    states = st.list_states(root / "exp" / "training_states")
    return states[-1][0] if states else 0


def logged_iters(root: Path) -> int:
    return sum(f.read_text().count("s/iter]") for f in (root / "exp").glob("train_*.log"))


def temporaries(root: Path) -> list[Path]:
    return [
        q
        for d in ("models", "training_states")
        for q in (root / "exp" / d).glob(".*")
        if st.is_temporary(q.name)
    ]


def wait_until(condition, process, timeout: float = 120.0, poll: float = 0.005, fail: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if not process.is_alive():
            return
        if time.monotonic() > deadline:
            assert not fail, "trainer made no progress"
            return
        time.sleep(poll)


def final_params(root: Path) -> dict:
    ckpt = torch.load(root / "exp/models/net_g_latest.pth", map_location="cpu", weights_only=True)
    return {
        **{f"p.{k}": v for k, v in ckpt["params"].items()},
        **{f"e.{k}": v for k, v in ckpt["params_ema"].items()},
    }


@pytest.fixture(scope="module")
def reference(ctx, data, tmp_path_factory):
    """Final weights of an uninterrupted run (also in a forked process: same threads, same numerics)."""
    root = tmp_path_factory.mktemp("reference")
    p = start(ctx, write_config(root, data))
    p.join(300)
    assert p.exitcode == 0
    return final_params(root)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_auto_resume_matches_an_uninterrupted_run(
    ctx, data, tmp_path, reference
):
    config = write_config(tmp_path, data)
    rng = random.Random(2024)
    kills = mid_save = 0
    while kills < 12:
        before = newest_iter(tmp_path)
        if before >= TOTAL:
            break
        p = start(ctx, config)
        wait_until(lambda before=before: newest_iter(tmp_path) > before, p)
        if kills % 2:  # a random moment (a state is written every iteration, so often mid-save too)
            time.sleep(rng.uniform(0.0, 0.05))
        else:  # right while a checkpoint or state file is being written
            wait_until(lambda: temporaries(tmp_path), p, timeout=10.0, poll=0.0005, fail=False)
        caught_saving = bool(temporaries(tmp_path))
        p.kill()
        p.join(30)
        if p.exitcode == 0:
            break
        assert p.exitcode == -signal.SIGKILL, f"the trainer failed on its own (exit code {p.exitcode})"
        kills += 1
        mid_save += caught_saving
    assert kills >= 10 and mid_save >= 1
    p = start(ctx, config)
    p.join(300)
    assert p.exitcode == 0
    assert_same_tensors(final_params(tmp_path), reference)
    assert not temporaries(tmp_path)  # temporaries of killed writers were cleaned up on restart


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_a_resumable_state_then_exit(ctx, data, tmp_path, reference, signum):
    config = write_config(tmp_path, data, **{"logger.save_checkpoint_freq": 1000, "val.val_freq": 5})
    p = start(ctx, config)
    wait_until(lambda: logged_iters(tmp_path) >= 3, p)
    os.kill(p.pid, signum)
    p.join(60)
    assert p.exitcode == 128 + signum
    states = st.list_states(tmp_path / "exp/training_states")
    assert len(states) == 1 and 3 <= states[0][0] < TOTAL
    p = start(ctx, config)
    p.join(300)
    assert p.exitcode == 0
    assert_same_tensors(final_params(tmp_path), reference)


def test_full_disk_during_a_checkpoint_is_an_error_and_keeps_the_previous_one(tmp_path, data, monkeypatch):
    opt = validate_options(
        tiny_options(tmp_path, data, **{"train.total_iter": 4, "logger.save_checkpoint_freq": 2})
    )
    real_save = torch.save

    def save_or_fill_disk(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("iter") == 4:
            f.write(b"half a state")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(st.torch, "save", save_or_fill_disk)
    with pytest.raises(st.StateError, match=r"no space left to write .*4\.state"):
        Trainer(opt).run()
    states = tmp_path / "exp/training_states"
    assert sorted(p.name for p in states.iterdir()) == ["2.state"]
    assert st.load_state(states / "2.state")["iter"] == 2


@pytest.mark.parametrize("which", ["best", "latest"])
def test_full_disk_while_writing_best_or_latest_is_the_same_error_as_a_state_write(
    tmp_path, data, monkeypatch, which
):
    from ehat.train import trainer as trainer_module

    changes = {"train.total_iter": 2, "logger.save_checkpoint_freq": 1000, "val.val_freq": 1}
    opt = validate_options(tiny_options(tmp_path, data, **changes))
    real_save, real_state_save = torch.save, trainer_module.Trainer.save
    armed = [which == "best"]  # latest: armed once the final training state is written

    def save_or_fill_disk(obj, f, *args, **kwargs):
        model = isinstance(obj, dict) and "params" in obj
        if model and armed[0] and (which == "latest" or "best" in obj):
            f.write(b"half a model")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    def save_then_arm(self):
        path = real_state_save(self)
        armed[0] = armed[0] or self.iter == 2
        return path

    monkeypatch.setattr(trainer_module.Trainer, "save", save_then_arm)
    monkeypatch.setattr(st.torch, "save", save_or_fill_disk)
    name = f"net_g_{which}.pth"
    with pytest.raises(
        st.StateError, match=rf"no space left to write .*{name}: the previous files are intact"
    ):
        Trainer(opt).run()
    assert not [p for p in (tmp_path / "exp/models").iterdir() if st.is_temporary(p.name)]
