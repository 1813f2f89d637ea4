"""ONNX export: dynamic sizes, graph-mode code equal to the eager code, refusal of a wrong graph."""

from __future__ import annotations

import pytest
import torch

from ehat.archs import create_model
from ehat.archs.hat_arch import shift_window_mask
from ehat.archs.padding import pad_to_multiple
from ehat.export.graph import graph_mode, reflect_pad_to_multiple, shift_mask

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def _perturbed(name: str, **overrides) -> torch.nn.Module:
    """A preset with every weight moved off its init (BSA and dual attention active)."""
    torch.manual_seed(0)
    model = create_model(name, **overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def test_graph_padding_equals_pad_to_multiple_for_every_size():
    for h in (1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 23, 33):
        for w in (1, 2, 9, 17):
            x = torch.rand(1, 2, h, w)
            assert torch.equal(reflect_pad_to_multiple(x, 8)[0], pad_to_multiple(x, 8)[0]), (h, w)


def test_graph_shift_mask_equals_official_mask():
    for h, w in ((16, 16), (16, 40), (48, 24)):
        assert torch.equal(shift_mask(h, w, 8, 4, torch.device("cpu")), shift_window_mask(h, w, 8, 4))


@pytest.mark.parametrize(
    "overrides", [{}, {"pam_tile": 12}, {"dual_attention": "rhag", "bicubic_skip": True}, {"bsa": False}]
)
def test_graph_mode_computes_the_eager_function(overrides):
    model = _perturbed("ehat_tiny", **overrides)
    for b, h, w in ((1, 5, 7), (2, 16, 19)):
        x = torch.rand(b, 3, h, w)
        with torch.no_grad():
            ref = model(x)
            with graph_mode(model):
                out = model(x)
        assert out.shape == ref.shape
        assert (out - ref).abs().max() < 1e-5
    x = torch.rand(1, 3, 9, 9)
    with torch.no_grad():
        assert torch.equal(model(x), model(x)), "graph_mode must leave the eager forwards in place"
    assert "forward" not in vars(model.layers[0].residual_group.blocks[1])


def test_rlfn_graph_mode_pads_small_inputs_like_eager():
    model = create_model("rlfn_ntire").eval()
    for h, w in ((3, 1), (5, 7), (14, 30), (15, 16)):
        x = torch.rand(1, 3, h, w) * 255
        with torch.no_grad():
            ref = model(x)
            with graph_mode(model):
                assert torch.equal(model(x), ref), (h, w)


def test_export_demo_shaped_model_any_size_fp32(tmp_path):
    from ehat.export.onnx import export_onnx, run_onnx

    model = _perturbed("ehat_tiny")
    out = tmp_path / "tiny.onnx"
    report = export_onnx(model, out, sizes=[(1, 16, 24), (1, 13, 19), (2, 7, 9)])
    assert [c[0] for c in report.checks] == [(1, 16, 24), (1, 13, 19), (2, 7, 9)]
    assert all(d <= 1e-4 for _, d in report.checks)
    proto = onnx.load(str(out))
    assert proto.opset_import[0].version >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["scale"] == "4" and meta["data_range"] == "1" and '"EHAT"' in meta["network"]
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] and dims[2] and dims[3], f"batch, height and width must be dynamic: {dims}"
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 1, 30)  # a size the export never saw: a 1-pixel side and not a window multiple
    with torch.no_grad():
        ref = model(x).numpy()
    assert abs(run_onnx(session, x) - ref).max() <= 1e-4


def test_export_refuses_a_graph_that_disagrees_and_writes_nothing(tmp_path, monkeypatch):
    from ehat.export import onnx as export

    model = create_model("rlfn_ntire").eval()
    real = export.onnx_bytes

    def wrong_graph(m, opset, fp16):  # the graph of another network
        other = create_model("rlfn_ntire").eval()
        with torch.no_grad():
            other.conv_2.bias.add_(1.0)
        return real(other, opset, fp16)

    monkeypatch.setattr(export, "onnx_bytes", wrong_graph)
    out = tmp_path / "bad.onnx"
    with pytest.raises(export.ExportVerificationError, match="differs from PyTorch"):
        export.export_onnx(model, out, data_range=255.0)
    assert list(tmp_path.iterdir()) == []


def test_rlfn_export_any_size(tmp_path):
    from ehat.export.onnx import export_onnx

    model = create_model("rlfn_ntire").eval()
    report = export_onnx(
        model, tmp_path / "rlfn.onnx", data_range=255.0, sizes=[(1, 16, 24), (1, 5, 7), (2, 1, 3)]
    )
    assert all(d <= 255 * 1e-4 for _, d in report.checks)


@pytest.mark.slow
def test_export_fp16_stays_close_to_fp32(tmp_path):
    from ehat.export.onnx import export_onnx

    report = export_onnx(_perturbed("ehat_tiny"), tmp_path / "tiny16.onnx", fp16=True)
    assert report.precision == "fp16"
    assert all(d <= 2e-2 for _, d in report.checks)


def test_opset_below_17_is_refused():
    from ehat.export.onnx import ExportError, onnx_bytes

    with pytest.raises(ExportError, match="opset 16"):
        onnx_bytes(create_model("rlfn_ntire"), opset=16)
