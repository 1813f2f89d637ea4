"""Regional compilation (ehat.acceleration.compile_model): same keys, same output, no recompile per size."""

from __future__ import annotations

import pytest
import torch

from ehat.acceleration import CompileError, compile_model, compiled_blocks
from ehat.archs.hat_arch import HAB, OCAB
from tests.helpers import TINY_EHAT, tiny_network


class GraphCounter:
    """A torch.compile backend that runs the captured graph as is and counts the graphs."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list) -> object:
        self.graphs += 1
        return gm.forward


def tiny_model(seed: int = 0) -> torch.nn.Module:
    return tiny_network(TINY_EHAT, seed).eval()


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_blocks_are_every_hab_and_ocab():
    model = tiny_model()
    blocks = compiled_blocks(model)
    assert len(blocks) == 2 * 2 + 2  # 2 groups x (2 HABs + 1 OCAB)
    assert all(isinstance(b, (HAB, OCAB)) for b in blocks)


@pytest.mark.slow
def test_block_compilation_keeps_keys_and_output_and_does_not_recompile_per_size():
    """A validation set of many sizes: graphs are made for the first few, none for new sizes after."""
    model, eager = tiny_model(), tiny_model()
    keys = list(model.state_dict())
    counter = GraphCounter()
    compile_model(model, "blocks", dynamic=True, backend=counter)
    assert list(model.state_dict()) == keys  # checkpoints stay loadable either way
    warm = [(20, 24), (24, 28), (16, 16), (40, 33)]
    new = [(33, 40), (27, 31)]
    with torch.no_grad():
        for h, w in warm:
            x = torch.rand(1, 3, h, w)
            torch.testing.assert_close(model(x), eager(x), rtol=0, atol=1e-6)
        after_warm = counter.graphs
        for h, w in new:
            x = torch.rand(1, 3, h, w)
            torch.testing.assert_close(model(x), eager(x), rtol=0, atol=1e-6)
    assert 0 < after_warm <= 9  # (shifted HAB, plain HAB, OCAB) x a few shape regimes, not per block
    assert counter.graphs == after_warm, "a new image size recompiled"


def test_unknown_compile_mode_is_named():
    with pytest.raises(CompileError, match="'fast'.*false, blocks, full"):
        compile_model(tiny_model(), "fast")


def test_false_leaves_the_model_alone():
    model = tiny_model()
    forward = model.forward
    assert compile_model(model, False) is model and model.forward == forward
    assert not any(getattr(b, "_compiled_call_impl", None) for b in compiled_blocks(model))


def test_a_network_without_blocks_compiles_whole():
    from ehat.archs.rlfn_arch import RLFN

    model = RLFN().eval()
    counter = GraphCounter()
    compile_model(model, "blocks", backend=counter)
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        model(x)
    assert counter.graphs >= 1


@pytest.mark.slow
def test_inductor_compiled_blocks_equal_eager_on_cpu():
    """The real compiler (inductor's C++ backend on CPU): outputs within 1e-5 of eager."""
    model, eager = tiny_model(), tiny_model()
    compile_model(model, "blocks")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), eager(x), rtol=0, atol=1e-5)
