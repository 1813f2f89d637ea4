"""NTIRE submission package: the generated torch-only file equals our network bit for bit, in a
process where ehat, basicsr and timm cannot be imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from ehat.archs import create_model
from ehat.export.models import ResolvedModel, resolve_model
from ehat.export.submission import SubmissionError, load_generated, write_submission
from tests.helpers import run_submission_model

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "model_zoo" / "ehat_tiny_demo_x4.pth"


def _check_package(tmp_path: Path, resolved: ResolvedModel, x: torch.Tensor) -> None:
    pkg = write_submission(resolved, tmp_path / "pkg", team_id=35)
    assert pkg.model_file.name == "team35_EHAT.py" and pkg.weights_file.name == "team35_ehat.pth"
    assert "elif model_id == 35:" in pkg.snippet and "Team35EHAT()" in pkg.snippet
    out = run_submission_model(tmp_path, tmp_path / "pkg", "Team35EHAT", "team35_EHAT", pkg.weights_file, x)
    with torch.no_grad():
        ref = resolved.model(x)
    assert torch.equal(out, ref), f"max difference {(out - ref).abs().max()}"


def test_demo_model_package_is_bit_exact_without_ehat(tmp_path):
    resolved = resolve_model(DEMO)
    _check_package(tmp_path, resolved, torch.rand(1, 3, 20, 27, generator=torch.Generator().manual_seed(1)))


@pytest.mark.slow
def test_ehat_l_shaped_package_is_bit_exact_without_ehat(tmp_path):
    torch.manual_seed(0)
    model = create_model("ehat_l", dual_attention="body").eval()
    with torch.no_grad():  # every EHAT part active: BSA off its init, dual attention gammas non-zero
        model.branch_weights.weight_0.uniform_(-0.2, 0.2)
        model.dual_attention.pam.gamma.fill_(0.3)
        model.dual_attention.cam.gamma.fill_(-0.2)
    resolved = ResolvedModel(model, 1.0, 4, "ehat_l", Path("random"))
    _check_package(tmp_path, resolved, torch.rand(1, 3, 9, 10, generator=torch.Generator().manual_seed(2)))


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("ehat_tiny", {"bicubic_skip": True, "dual_attention": "rhag"}),
        ("ehat_tiny", {"bsa": False, "dual_attention": "none"}),
        ("rlfn_ntire", {}),
    ],
)
def test_generated_file_for_other_configs_is_bit_exact(tmp_path, preset, overrides):
    torch.manual_seed(0)
    model = create_model(preset, **overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    data_range = 255.0 if preset.startswith("rlfn") else 1.0
    pkg = write_submission(
        ResolvedModel(model, data_range, 4, preset, Path("random")), tmp_path, team_id=7, name="Net"
    )
    assert pkg.model_file.name == "team07_Net.py" and f"{data_range:.1f}" in pkg.snippet
    source = pkg.model_file.read_text()
    imported = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in ast.walk(ast.parse(source))
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in (n.names if isinstance(n, ast.Import) else [n])
    }
    assert imported <= {"__future__", "torch", "math", "collections", "functools", "typing"}, imported
    generated = load_generated(source).Team07Net().eval()
    generated.load_state_dict(torch.load(pkg.weights_file, weights_only=True), strict=True)
    x = torch.rand(2, 3, 11, 17) * data_range
    with torch.no_grad():
        assert torch.equal(generated(x), model(x))


def test_existing_package_is_not_overwritten_without_force(tmp_path):
    resolved = ResolvedModel(create_model("rlfn_ntire").eval(), 255.0, 4, "rlfn", Path("random"))
    write_submission(resolved, tmp_path, team_id=0, name="RLFN")
    with pytest.raises(SubmissionError, match="--force"):
        write_submission(resolved, tmp_path, team_id=0, name="RLFN")
    write_submission(resolved, tmp_path, team_id=0, name="RLFN", force=True)
