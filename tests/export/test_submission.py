"""NTIRE submission package: the generated torch-only file equals our network bit for bit, in a
process where ehat, basicsr and timm cannot be imported."""

from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from ehat.archs import create_model
from ehat.export.models import ResolvedModel, resolve_model
from ehat.export.submission import SubmissionError, load_generated, write_submission

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "model_zoo" / "ehat_tiny_demo_x4.pth"
HIDDEN = ("ehat", "basicsr", "timm")

CHILD = r"""
import importlib, sys
sys.path[:] = [{models!r}, *{stdlib!r}, {site!r}]
for name in {hidden!r}:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        continue
    raise SystemExit(f"{{name}} is importable in the isolated process")
import torch
module = importlib.import_module({module!r})
model = getattr(module, {cls!r})().eval()
model.load_state_dict(torch.load({weights!r}, weights_only=True), strict=True)
with torch.no_grad():
    torch.save(model(torch.load({inp!r}, weights_only=True)), {outp!r})
print("loaded from", module.__file__)
"""


def _isolated_site(tmp_path: Path) -> Path:
    """A site folder of links to every installed package except ehat, basicsr and timm (and .pth hooks)."""
    site = Path(sysconfig.get_paths()["purelib"])
    out = tmp_path / "site"
    out.mkdir()
    for entry in site.iterdir():
        low = entry.name.lower()
        if low.endswith(".pth") or any(low.startswith(h) or f"_{h}" in low for h in HIDDEN):
            continue
        (out / entry.name).symlink_to(entry)
    return out


def _run_isolated(tmp_path: Path, package: Path, cls: str, model_file: str, weights: Path, x: torch.Tensor):
    inp, outp = tmp_path / "x.pt", tmp_path / "y.pt"
    torch.save(x, inp)
    base = Path(sys.base_prefix).resolve()
    stdlib = [p for p in sys.path if p and "-packages" not in p and Path(p).resolve().is_relative_to(base)]
    code = CHILD.format(
        models=str(package / "models"), stdlib=stdlib, site=str(_isolated_site(tmp_path)), hidden=HIDDEN,
        module=model_file, cls=cls, weights=str(weights), inp=str(inp), outp=str(outp),
    )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(package / "models") in proc.stdout
    return torch.load(outp, weights_only=True)


def _check_package(tmp_path: Path, resolved: ResolvedModel, x: torch.Tensor) -> None:
    pkg = write_submission(resolved, tmp_path / "pkg", team_id=35)
    assert pkg.model_file.name == "team35_EHAT.py" and pkg.weights_file.name == "team35_ehat.pth"
    assert "elif model_id == 35:" in pkg.snippet and "Team35EHAT()" in pkg.snippet
    out = _run_isolated(tmp_path, tmp_path / "pkg", "Team35EHAT", "team35_EHAT", pkg.weights_file, x)
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
