"""One loader for every accepted checkpoint format; every mismatch is loud and names the keys."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ehat.archs import build_network, create_model, preset_config
from ehat.checkpoints import (
    CheckpointError,
    expand_team_bsa,
    infer_config,
    load_model,
    load_weights,
    read_state_dict,
    save_network,
    team_bsa_prefixes,
)
from tests.helpers import REPO_ROOT, perturb


def tiny_cfg(**kw):
    cfg = preset_config("ehat_tiny")
    cfg.update(kw)
    return cfg


def hat_tiny_cfg():
    cfg = {k: v for k, v in tiny_cfg().items() if k not in ("bsa", "dual_attention")}
    cfg["type"] = "HAT"
    return cfg


def random_model(cfg, seed=0):
    model = build_network(cfg)
    return perturb(model, seed).eval()


def output(model, seed=1):
    x = torch.rand(1, 3, 13, 17, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x)


def test_basicsr_file_prefers_params_ema(tmp_path):
    ema, raw = random_model(hat_tiny_cfg(), 0), random_model(hat_tiny_cfg(), 1)
    torch.save({"params": raw.state_dict(), "params_ema": ema.state_dict()}, tmp_path / "w.pth")
    model = build_network(hat_tiny_cfg())
    load_weights(model, tmp_path / "w.pth")
    assert torch.equal(output(model.eval()), output(ema))
    load_weights(model, tmp_path / "w.pth", param_key="params")
    assert torch.equal(output(model), output(raw))
    torch.save({"params": raw.state_dict()}, tmp_path / "p.pth")
    load_weights(model, tmp_path / "p.pth")
    assert torch.equal(output(model), output(raw))


def test_bare_and_module_prefixed_state_dicts(tmp_path):
    src = random_model(hat_tiny_cfg())
    torch.save(src.state_dict(), tmp_path / "bare.pth")
    torch.save({"params": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "ddp.pth")
    for name in ("bare.pth", "ddp.pth"):
        model = build_network(hat_tiny_cfg()).eval()
        load_weights(model, tmp_path / name)
        assert torch.equal(output(model), output(src))


def test_hat_checkpoint_into_ehat_reports_new_parameters_and_equals_hat(tmp_path):
    hat = random_model(hat_tiny_cfg())
    torch.save({"params_ema": hat.state_dict()}, tmp_path / "hat.pth")
    ehat = build_network(tiny_cfg()).eval()
    report = load_weights(ehat, tmp_path / "hat.pth")
    assert "branch_weights.weight_0" in report.new_parameters
    assert "dual_attention.pam.gamma" in report.new_parameters
    assert "branch_weights.weight_1" in report.summary()
    assert (output(ehat) - output(hat)).abs().max() <= 1e-6


def test_skdaddys_checkpoint_round_trip(tmp_path):
    """The release layout (BSA vectors under every prefix) loads and reproduces our output."""
    src = random_model(tiny_cfg(dual_attention="none"))
    team = expand_team_bsa(src.state_dict())
    prefixes = team_bsa_prefixes([2, 2])
    assert len(team) == len(src.state_dict()) - 2 + 2 * len(prefixes)
    assert "layers.1.residual_group.blocks.0.conv_block.__branchattentionmodule__.weight_0" in team
    assert "__branchattentionmodule__.weight_1" in team
    torch.save({"params": team}, tmp_path / "team.pth")
    model = load_model(tmp_path / "team.pth")  # config inferred from the weights
    assert type(model).__name__ == "EHAT"
    assert torch.equal(output(model), output(src))


def test_skdaddys_hat_l_layout_has_2072_keys():
    sd = create_model("ehat_l").state_dict()
    team = expand_team_bsa(sd)
    assert len(team_bsa_prefixes([6] * 12)) == 181
    assert len(team) == 2072
    assert len([k for k in team if "__branchattentionmodule__" in k]) == 362


def test_inconsistent_bsa_copies_fail_naming_the_keys(tmp_path):
    team = expand_team_bsa(random_model(tiny_cfg(dual_attention="none")).state_dict())
    bad = "layers.0.residual_group.blocks.1.__branchattentionmodule__.weight_1"
    team[bad] = team[bad] + 0.01
    torch.save({"params": team}, tmp_path / "team.pth")
    with pytest.raises(
        CheckpointError, match=r"copies of the BSA vector weight_1 disagree.*blocks\.1\.__branch"
    ):
        read_state_dict(tmp_path / "team.pth")


@pytest.mark.parametrize("name", ["hat_s", "hat_l", "ehat_l", "ehat_tiny"])
def test_config_is_inferred_from_the_state_dict(name):
    cfg = preset_config(name)
    inferred = infer_config(create_model(name).state_dict())
    for key, value in cfg.items():
        if key in ("drop_path_rate",):
            continue
        assert inferred[key] == value, key


def test_unexpected_missing_and_wrong_shape_keys_are_named(tmp_path):
    src = random_model(hat_tiny_cfg()).state_dict()
    extra = dict(src, **{"foo.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="unexpected keys: foo.weight"):
        load_weights(build_network(hat_tiny_cfg()), extra)
    partial = {k: v for k, v in src.items() if k != "norm.weight"}
    with pytest.raises(CheckpointError, match="missing keys: norm.weight"):
        load_weights(build_network(hat_tiny_cfg()), partial)
    other = build_network({**hat_tiny_cfg(), "embed_dim": 24, "num_heads": [3, 3]})
    with pytest.raises(
        CheckpointError, match=r"wrong shapes: .*conv_first.weight: checkpoint \(30, 3, 3, 3\)"
    ):
        load_weights(other, src)


def test_ehat_checkpoint_into_plain_hat_is_an_error():
    sd = random_model(tiny_cfg()).state_dict()
    with pytest.raises(CheckpointError, match="unexpected keys: branch_weights"):
        load_weights(build_network(hat_tiny_cfg()), sd)


def test_partial_ehat_checkpoint_is_not_silently_completed():
    """Only a plain HAT file may lack EHAT's parameters; an EHAT file missing some is an error."""
    sd = random_model(tiny_cfg()).state_dict()
    del sd["dual_attention.cam.gamma"]
    with pytest.raises(CheckpointError, match="missing keys: dual_attention.cam.gamma"):
        load_weights(build_network(tiny_cfg()), sd)


def test_wrong_scale_is_named():
    x2 = random_model({**hat_tiny_cfg(), "upscale": 2}).state_dict()
    with pytest.raises(CheckpointError, match="the checkpoint is x2, the model is x4"):
        load_weights(build_network(hat_tiny_cfg()), x2)


def test_missing_empty_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "nope.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_state_dict(tmp_path / "empty.pth")
    torch.save({"params": random_model(hat_tiny_cfg()).state_dict()}, tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth"):
        read_state_dict(tmp_path / "cut.pth")


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("fmt", ["torch_zip", "raw_pickle"])
def test_pickle_that_runs_code_is_refused(tmp_path, fmt):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"params": {"conv_first.weight": torch.zeros(1)}, "x": _Payload(str(marker))}
    if fmt == "torch_zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_state_dict(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()


def test_saved_checkpoint_carries_its_config(tmp_path):
    model = random_model(tiny_cfg(pam_tile=8))
    save_network(model, tmp_path / "net.pth", ema_model=model)
    raw = torch.load(tmp_path / "net.pth", weights_only=True)
    assert raw["arch"]["pam_tile"] == 8 and raw["arch"]["type"] == "EHAT"
    loaded = load_model(tmp_path / "net.pth")
    assert loaded.dual_attention.pam.tile == 8
    assert torch.equal(output(loaded), output(model))


@pytest.mark.parametrize("to,suffix", [("ours", ".pth"), ("ours", ".safetensors"), ("team", ".pth")])
def test_convert_checkpoint_script(tmp_path, to, suffix):
    src = random_model(tiny_cfg(dual_attention="none"))
    torch.save({"params": src.state_dict()}, tmp_path / "in.pth")
    out = tmp_path / f"out{suffix}"
    cmd = [
        sys.executable,
        str(REPO_ROOT / "scripts/convert_checkpoint.py"),
        str(tmp_path / "in.pth"),
        str(out),
        "--to",
        to,
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert torch.equal(output(load_model(out)), output(src))
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr


# --------------------------------------------------------------------------- defects found in review


def test_unknown_layout_is_a_checkpoint_error_not_a_key_error():
    """Neither HAT/EHAT nor RLFN: the documented CheckpointError, naming what was looked for."""
    with pytest.raises(CheckpointError, match=r"(?s)unknown layout.*conv_first\.weight.*conv_1\.weight"):
        infer_config({"encoder.weight": torch.zeros(2, 2)})
    # Starts like HAT but lacks the keys the config is read from: still a CheckpointError naming the key.
    partial = {k: v for k, v in random_model(hat_tiny_cfg()).state_dict().items() if k != "conv_last.weight"}
    with pytest.raises(CheckpointError, match="conv_last.weight"):
        infer_config(partial)
    with pytest.raises(CheckpointError, match="block_1.c1_r.weight"):
        infer_config({"conv_1.weight": torch.zeros(8, 3, 3, 3)})


def test_rlfn_file_is_loaded_without_a_preset(tmp_path, shared_dir):
    model = load_model(shared_dir / "weights" / "rlfn_ntire_x4.pth")
    assert type(model).__name__ == "RLFN" and model.arch_config["feature_channels"] == 46


def _convert_main():
    """scripts/convert_checkpoint.py's ``main``, imported in-process (a subprocess costs seconds)."""
    spec = importlib.util.spec_from_file_location(
        "convert_checkpoint", REPO_ROOT / "scripts/convert_checkpoint.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_convert_script_unknown_layout_prints_one_line_and_exits_2(tmp_path, capsys):
    torch.save({"params": {"encoder.weight": torch.zeros(2, 2)}}, tmp_path / "odd.pth")
    assert _convert_main()([str(tmp_path / "odd.pth"), str(tmp_path / "o.pth")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "odd.pth" in err and "unknown layout" in err
    assert not (tmp_path / "o.pth").exists()


def test_convert_script_unwritable_output_exits_2(tmp_path, capsys):
    src = random_model(hat_tiny_cfg())
    torch.save({"params": src.state_dict()}, tmp_path / "in.pth")
    (tmp_path / "blocker").write_text("a file, not a folder")
    assert _convert_main()([str(tmp_path / "in.pth"), str(tmp_path / "blocker" / "o.pth")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "blocker" in err


def test_folder_given_as_a_checkpoint_says_it_is_a_folder_and_lists_its_checkpoints(tmp_path):
    folder = tmp_path / "experiments" / "models"
    folder.mkdir(parents=True)
    (folder / "net_g_1000.pth").write_bytes(b"x")
    (folder / "net_g_latest.safetensors").write_bytes(b"x")
    (folder / "notes.txt").write_text("")
    with pytest.raises(CheckpointError) as info:
        read_state_dict(folder)
    msg = str(info.value)
    assert "is a folder" in msg and "does not exist" not in msg and "not found" not in msg
    assert ".pth" in msg and "net_g_1000.pth" in msg and "net_g_latest.safetensors" in msg
    assert "notes.txt" not in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"(?s)is a folder.*no \.pth"):
        load_model(empty)


def test_team_layout_of_another_depth_names_the_file_its_depth_and_what_to_do(tmp_path):
    """A small SKDADDYS-layout file given for EHAT-L: the file, its layout and depths, and a way out."""
    team = expand_team_bsa(random_model(tiny_cfg(dual_attention="none")).state_dict())
    path = tmp_path / "my_team_run.pth"
    torch.save({"params": team}, path)
    with pytest.raises(CheckpointError) as info:
        load_weights(create_model("ehat_l"), path)
    msg = str(info.value)
    assert str(path) in msg
    assert "SKDADDYS" in msg and "depths [2, 2]" in msg and "[6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6]" in msg
    assert "preset" not in msg  # no preset was given: no hint about one
    assert "load_model" in msg  # what to do: build the network the file describes
