"""Training-state files, RNG capture, the resumable sampler and EMA."""

from __future__ import annotations

import errno
import random
from collections import Counter

import numpy as np
import pytest
import torch

from ehat.train import state as st
from ehat.train.data import ResumableSampler
from ehat.train.ema import EMA


def test_atomic_write_replaces_the_file_in_one_step(tmp_path):
    target = tmp_path / "5.state"
    st.atomic_torch_save({"iter": 1, "net": {}}, target)
    st.atomic_torch_save({"iter": 2, "net": {}}, target)
    assert torch.load(target, weights_only=True)["iter"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["5.state"]


def test_failing_writer_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.pth"
    st.atomic_torch_save({"iter": 1, "net": {"w": torch.ones(3)}}, target)

    def disk_full(f):
        f.write(b"partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(st.StateError, match=r"no space left to write .*model\.pth.*intact"):
        st.atomic_write(target, disk_full)
    assert torch.equal(torch.load(target, weights_only=True)["net"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]


def test_stale_temporaries_are_removed_and_never_listed(tmp_path):
    st.atomic_torch_save({"iter": 3, "net": {}}, tmp_path / "3.state")
    (tmp_path / ".tmp-4.state.abc").write_bytes(b"half a state")
    assert st.list_states(tmp_path) == [(3, tmp_path / "3.state")]
    st.remove_stale_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["3.state"]


def test_latest_state_and_prune_order_by_iteration_not_name(tmp_path):
    for it in (9, 10, 100, 20):
        st.atomic_torch_save({"iter": it, "net": {}}, st.state_path(tmp_path, it))
    assert st.latest_state(tmp_path) == tmp_path / "100.state"
    st.prune(tmp_path, keep_last=2)
    assert [it for it, _ in st.list_states(tmp_path)] == [20, 100]


def test_unreadable_state_is_named(tmp_path):
    bad = tmp_path / "7.state"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(st.StateError, match=r"7\.state"):
        st.load_state(bad)
    with pytest.raises(st.StateError, match="does not exist"):
        st.load_state(tmp_path / "8.state")
    torch.save({"params": {}}, tmp_path / "9.state")
    with pytest.raises(st.StateError, match="not an EHAT training state"):
        st.load_state(tmp_path / "9.state")


def test_rng_states_round_trip_through_weights_only_files(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in NumPy's state
    saved = st.capture_rng()
    st.atomic_torch_save({"iter": 0, "net": {}, "rng": saved}, tmp_path / "0.state")
    expected = (random.random(), np.random.randn(3), torch.rand(3))
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    st.restore_rng(st.load_state(tmp_path / "0.state")["rng"])
    got = (random.random(), np.random.randn(3), torch.rand(3))
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])
    assert torch.equal(got[2], expected[2])


def _collect(sampler):
    return list(sampler)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_sampler_ranks_partition_a_permutation_and_resume_at_any_position(world):
    samplers = [
        ResumableSampler(10, seed=5, num_replicas=world, rank=r, enlarge_ratio=2) for r in range(world)
    ]
    for s in samplers:
        s.set_position(epoch=3, start=0)
    shares = [_collect(s) for s in samplers]
    assert len({len(x) for x in shares}) == 1
    indices = [i for share in shares for i, _ in share]
    counts = Counter(indices)
    assert set(counts) == set(range(10)) and min(counts.values()) >= 2  # every image twice (enlarge 2)
    assert len(indices) - 20 == (-20) % world  # plus padding so ranks get equal shares
    for r, s in enumerate(samplers):
        s.set_position(epoch=3, start=4)
        assert _collect(s) == shares[r][4:]
    other = ResumableSampler(10, seed=5, num_replicas=world, rank=0, enlarge_ratio=2)
    other.set_position(epoch=4, start=0)
    assert _collect(other) != shares[0]


def test_sample_seeds_do_not_depend_on_the_number_of_ranks():
    single = ResumableSampler(8, seed=1)
    pair = [ResumableSampler(8, seed=1, num_replicas=2, rank=r) for r in range(2)]
    merged = [x for ab in zip(*(_collect(s) for s in pair)) for x in ab]
    assert merged == _collect(single)


def test_ema_follows_the_formula_and_copies_buffers():
    net = torch.nn.BatchNorm1d(3)
    ema = EMA(net, decay=0.9)
    before = ema.module.weight.clone()
    with torch.no_grad():
        net.weight.add_(1.0)
        net.running_mean.fill_(5.0)
    ema.update(net)
    torch.testing.assert_close(ema.module.weight, 0.9 * before + 0.1 * net.weight)
    assert torch.equal(ema.module.running_mean, net.running_mean)
    assert not any(p.requires_grad for p in ema.module.parameters())
