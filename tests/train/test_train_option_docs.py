"""docs/options.md is generated from the option classes: current, complete, and every key documented."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil

import pytest

import ehat.options
from ehat.options import benchmark, common, datasets, degradations
from ehat.options import train as training
from ehat.options.docs import render
from ehat.options.schema import option_fields
from tests.helpers import REPO_ROOT


def _options_classes() -> list[type]:
    """Every options class (a dataclass with option fields) of every ehat.options module."""
    found = set()
    for info in pkgutil.iter_modules(ehat.options.__path__):
        module = importlib.import_module(f"ehat.options.{info.name}")
        found |= {
            v
            for v in vars(module).values()
            if isinstance(v, type) and dataclasses.is_dataclass(v) and option_fields(v)
        }
    return sorted(found, key=lambda c: (c.__module__, c.__name__))


CLASSES = _options_classes()


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


def test_every_options_class_is_found():
    """The discovery above sees the sections of both files (a new class anywhere in ehat.options is found,
    and its keys must then reach the reference: test_every_key_is_documented_with_its_type_and_default)."""
    expected = {
        common.WeightsPathOptions,
        training.TrainingOptions,
        degradations.RealWorldOptions,
        training.TrainPathOptions,
        training.TrainOptions,
        training.ValOptions,
        training.LoggerOptions,
        training.WandbOptions,
        training.DistParamsOptions,
        datasets.DatasetOptions,
        datasets.TrainDatasetOptions,
        datasets.IoBackendOptions,
        benchmark.TestOptions,
        benchmark.TestPathOptions,
        benchmark.TestValOptions,
        benchmark.TileOptions,
        benchmark.TestDatasetOptions,
        benchmark.TestIoBackendOptions,
        benchmark.TestMetricOptions,
    }
    assert expected <= set(CLASSES)


def test_every_loss_slot_is_a_documented_train_key():
    """The loss slots are declared once (ehat.options.losses): each is a field of train with its doc."""
    from ehat.options.losses import LOSS_SLOTS

    fields = option_fields(training.TrainOptions)
    text = render()
    for slot in LOSS_SLOTS:
        assert fields[slot.key].doc == slot.doc and f"`train.{slot.key}` |" in text


def test_every_loss_slot_usm_switch_is_a_real_world_key():
    """A slot's USM switch (HAT's l1_gt_usm...) must be a top-level key of the real-world options."""
    from ehat.options.losses import LOSS_SLOTS

    real_world = option_fields(degradations.RealWorldOptions)
    assert all(s.usm_key in real_world for s in LOSS_SLOTS if s.usm_key is not None)
