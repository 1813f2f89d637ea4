"""docs/options.md is generated from the option classes: current, complete, and every key documented."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest

from ehat.train import options as o
from ehat.train.option_docs import render
from ehat.train.schema import option_fields
from tests.helpers import REPO_ROOT

CLASSES = [
    o.WeightsPathOptions,
    o.TrainingOptions,
    o.TrainPathOptions,
    o.TrainOptions,
    o.ValOptions,
    o.LoggerOptions,
    o.WandbOptions,
    o.DistParamsOptions,
    o.DatasetOptions,
    o.TrainDatasetOptions,
    o.IoBackendOptions,
    o.TestOptions,
    o.TestPathOptions,
    o.TestValOptions,
    o.TileOptions,
    o.TestDatasetOptions,
    o.TestIoBackendOptions,
    o.TestMetricOptions,
]


def test_committed_option_reference_is_the_generated_one():
    committed = (REPO_ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/options.md is stale: run python scripts/generate_option_docs.py"


def test_generator_check_mode_flags_a_stale_file(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "generate_option_docs", REPO_ROOT / "scripts/generate_option_docs.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    stale = tmp_path / "options.md"
    stale.write_text(render().replace("total_iter", "total_iters"))
    assert script.main(["--check", "--out", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert script.main(["--out", str(stale)]) == 0
    assert stale.read_text() == render() and script.main(["--check", "--out", str(stale)]) == 0


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_key_is_documented_with_its_type_and_default(cls):
    text = render()
    for name, spec in option_fields(cls).items():
        assert spec.doc or spec.unsupported or spec.refused, f"{cls.__name__}.{name} has no doc"
        assert f".{name}` |" in text or f"`{name}` |" in text, (
            f"{cls.__name__}.{name} missing from the reference"
        )


def test_every_options_class_is_in_the_reference():
    """A new options class (a new section) must be added to CLASSES above and reach the reference."""
    found = {
        v
        for v in vars(o).values()
        if isinstance(v, type) and dataclasses.is_dataclass(v) and option_fields(v)
    }
    assert found == set(CLASSES)
