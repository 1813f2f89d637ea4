"""DDP on CPU: two gloo processes launched by torchrun train like one process with twice the batch."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from ehat.options.train import validate_options
from ehat.train.trainer import Trainer
from tests.helpers import make_data, run_two_ranks, tiny_options

RANK_SCRIPT = textwrap.dedent(
    """
    import sys

    import torch

    import ehat  # noqa: F401
    from ehat.train import distributed as du
    from ehat.options.train import load_options
    from ehat.train.trainer import Trainer

    trainer = Trainer(load_options(sys.argv[1]), launcher="pytorch")
    out = trainer.run()
    torch.save(
        {"net": trainer.net.state_dict(), "ema": trainer.ema.state_dict(), "val": out["val_history"],
         "losses": [h["l_pix"] for h in out["history"]], "world": du.world_size()},
        f"{sys.argv[2]}/rank{du.rank()}.pt",
    )
    du.cleanup()
    """
)


@pytest.mark.slow
def test_two_gloo_ranks_end_with_the_same_weights_as_one_process_with_twice_the_batch(tmp_path):
    data = make_data(tmp_path / "data")
    changes = {"train.total_iter": 4, "val.val_freq": 4, "logger.save_checkpoint_freq": 2}
    r0, r1 = run_two_ranks(tmp_path, RANK_SCRIPT, tiny_options(tmp_path / "ddp", data, **changes))
    assert r0["world"] == r1["world"] == 2
    for k in r0["net"]:
        assert torch.equal(r0["net"][k], r1["net"][k]), k
        assert torch.equal(r0["ema"][k], r1["ema"][k]), k
    assert r0["val"] == r1["val"]  # metrics gathered over both ranks' images
    # only rank 0 wrote files
    assert sorted(p.name for p in (tmp_path / "ddp/exp/training_states").iterdir()) == ["2.state", "4.state"]
    assert len(list((tmp_path / "ddp/exp").glob("train_*.log"))) == 1

    single = Trainer(
        validate_options(
            tiny_options(tmp_path / "single", data, **changes, **{"datasets.train.batch_size_per_gpu": 4})
        )
    )
    out = single.run()
    ddp_losses = [0.5 * (a + b) for a, b in zip(r0["losses"], r1["losses"])]  # each rank logs its own half
    np.testing.assert_allclose(ddp_losses, [h["l_pix"] for h in out["history"]], rtol=1e-5)
    for k, v in single.net.state_dict().items():
        torch.testing.assert_close(r0["net"][k], v, rtol=1e-4, atol=1e-6)
    val_ddp, val_single = r0["val"][-1]["held_out"], out["val_history"][-1]["held_out"]
    for k in ("psnr", "psnr_y", "ssim_y"):
        assert val_ddp[k] == pytest.approx(val_single[k], abs=1e-3)
