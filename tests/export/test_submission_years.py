"""``ehat submission --year 2024|2025|2026``: the package runs through that year's select_model branch
form in an isolated process (no ehat, basicsr or timm), strict-loads, and equals our network bit for
bit on an image fed the way every year's test_demo.py feeds it (uint8 / (255 / data_range))."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ehat.archs import create_model, descriptor_of, prepare_for_inference
from ehat.export.models import ResolvedModel, resolve_model
from ehat.export.submission import SubmissionError, weights_name, write_submission
from tests.helpers import REPO_ROOT, run_isolated_python

DEMO = REPO_ROOT / "model_zoo" / "ehat_tiny_demo_x4.pth"

# A test_demo.py reduced to select_model (the year's branch pasted in) and the images' conversion
# (utils_image.uint2tensor4 / tensor2uint of the challenge repositories).
DEMO_CHILD = r"""
import os
import torch


def select_model(args, device):
    model_id = args.model_id
    if model_id == -1:
        pass
{snippet}    else:
        raise NotImplementedError(f"Model {{model_id}} is not implemented.")
    model.eval()
    for k, v in model.named_parameters():
        v.requires_grad = False
    return model.to(device), name, data_range, None


class Args:
    model_id = {team_id}


model, name, data_range, tile = select_model(Args, torch.device("cpu"))
img = torch.load({inp!r}, weights_only=True)  # (1, 3, H, W) uint8
x = img.float().div(255.0 / data_range)
with torch.no_grad():
    sr = model(x)
torch.save({{"sr": sr, "data_range": data_range, "name": name}}, {outp!r})
"""


def _run_year(tmp_path: Path, resolved: ResolvedModel, year: int, team_id: int, name: str) -> None:
    pkg = write_submission(resolved, tmp_path / "pkg", team_id=team_id, name=name, year=year)
    assert pkg.weights_file.name == weights_name(team_id, name, year)
    assert pkg.weights_file.parent.name == "model_zoo" and pkg.model_file.parent.name == "models"
    img = torch.randint(
        0, 256, (1, 3, 19, 23), generator=torch.Generator().manual_seed(year), dtype=torch.uint8
    )
    inp, outp = tmp_path / "img.pt", tmp_path / "out.pt"
    torch.save(img, inp)
    code = DEMO_CHILD.format(snippet=pkg.snippet, team_id=team_id, inp=str(inp), outp=str(outp))
    run_isolated_python(tmp_path, tmp_path / "pkg", code, cwd=tmp_path / "pkg")
    out = torch.load(outp, weights_only=True)
    data_range = descriptor_of(resolved.model).data_range
    assert out["data_range"] == data_range == resolved.data_range
    assert out["name"] == f"{team_id:02d}_{name}"
    with torch.no_grad():  # the network as submitted: in its inference form (SPAN fused)
        ref = prepare_for_inference(resolved.model)(img.float().div(255.0 / data_range))
    assert torch.equal(out["sr"], ref), f"max difference {(out['sr'] - ref).abs().max()}"


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_demo_ehat_package_runs_through_each_years_select_model(tmp_path, year):
    _run_year(tmp_path, resolve_model(DEMO), year, 35, "EHAT")


@pytest.mark.parametrize("year", [2025, 2026])
@pytest.mark.parametrize("preset", ["span", "rlfn_ntire"])
def test_small_student_package_runs_through_each_years_select_model(tmp_path, year, preset):
    """Efficient students, random weights off their init: SPAN in its training form (the package
    holds the fused form), and RLFN ([0, 255])."""
    torch.manual_seed(0)
    model = create_model(preset).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    resolved = ResolvedModel(model, descriptor_of(model).data_range, 4, preset, Path("random"))
    _run_year(tmp_path, resolved, year, 7, "Student")


def test_year_branch_forms_differ_where_the_years_do(tmp_path):
    resolved = resolve_model(DEMO)
    snippets = {
        y: write_submission(resolved, tmp_path / str(y), team_id=35, year=y).snippet
        for y in (2024, 2025, 2026)
    }
    assert "team35_ehat.pth" in snippets[2024] and "team35_EHAT.pth" in snippets[2025]
    assert ".eval().to(device)" in snippets[2026] and "strict=True" in snippets[2026]
    assert "strict=False" not in "".join(snippets.values())


def test_unknown_year_is_refused(tmp_path):
    with pytest.raises(SubmissionError, match="--year 2023"):
        write_submission(resolve_model(DEMO), tmp_path, team_id=35, year=2023)
