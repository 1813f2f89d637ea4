"""``test_demo.py --score_year``'s measuring steps: run the year's baseline on the same images and
device, then score the model's row (the formulas are in :mod:`ehat.evaluation.score`)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ehat.errors import EhatError
from ehat.evaluation.complexity import cached_complexity
from ehat.evaluation.protocol import evaluate_set
from ehat.evaluation.score import Measures, ScoreError, challenge_year, measures_of_row, score_entry
from ehat.imaging.tiling import TilePolicy
from ehat.zoo import REPO_ROOT, build_model, get_spec

__all__ = ["measure_baseline", "score_step"]


def measure_baseline(
    year: int,
    sets: Sequence[tuple[Any, Sequence[Any]]],
    opts: Any,
    save_dir: str | Path,
    log: logging.Logger,
    root: str | Path | None = None,
) -> tuple[Measures, str, dict[str, Any]]:
    """Run ``year``'s baseline on the same images and device as the model: (measures, how, PSNRs).

    ``sets``: (EvalSet, its images) pairs as evaluated; ``opts``: the model's :class:`EvalOptions`.
    The baseline runs whole images in fp32 without self-ensemble (as the challenge runs it), with the
    model's warm-up/repeat; its SR images are not saved. Weights: the zoo's file when present
    (``model_zoo/...``), else random initialisation (runtime, FLOPs and params do not depend on the
    weights; its PSNR is then not reported). FLOPs/params come from the same counter as the model's.
    """
    rules = challenge_year(year)
    if rules.model_id is None:
        raise ScoreError(f"--score_year {year}: the {rules.baseline} baseline is not in this version's zoo")
    spec = get_spec(rules.model_id)
    weights = Path(root or REPO_ROOT) / spec.weights
    have = weights.is_file()
    model = build_model(spec, weights if have else None).to(opts.device)
    how = (f"{spec.name} measured in this run on the same images" +
           ("" if have else f"; {weights} absent, so randomly initialised (timing only)"))  # fmt: skip
    log.info("score: measuring the %d baseline %s (%s)", year, rules.baseline, how)
    base_opts = dataclasses.replace(
        opts, data_range=spec.data_range, tiles=TilePolicy.whole(opts.tiles.overlap), self_ensemble=False,
        precision="fp32", save_images=False, save_crops=False, ssim=False,
    )  # fmt: skip
    averages: list[float] = []
    psnr: dict[str, Any] = {}
    for eval_set, items in sets:
        res = evaluate_set(model, items, base_opts, Path(save_dir) / f"score_baseline_{spec.name}" / eval_set.mode,
                           eval_set.mode, log)  # fmt: skip
        times = [r.runtime_ms for r in res.images if r.runtime_ms is not None]
        if times:
            averages.append(sum(times) / len(times))
        scored = [r.psnr for r in res.images if r.psnr is not None]
        if have and scored:
            psnr[f"{eval_set.mode}_ave_psnr"] = sum(scored) / len(scored)
    cx, _ = cached_complexity(model, spec.name, Path(save_dir) / "complexity_cache.json")
    runtime = sum(averages) / len(averages) if averages else None
    return Measures(runtime, cx.flops / 1e9, cx.num_parameters / 1e6), how, psnr


def score_step(
    year: str | int | None,
    spec: Any,
    sets: Sequence[tuple[Any, Sequence[Any]]],
    opts: Any,
    entry: Mapping[str, Any],
    save_dir: str | Path,
    log: logging.Logger,
) -> dict[str, Any]:
    """``test_demo.py --score_year``: ``{'score': ...}`` for the model's row ``entry`` (empty for 'none').

    The model's measures are its row's (runtime averaged over the sets run, FLOPs and params counted);
    the baseline's come from :func:`measure_baseline`, or are the model's own when the model *is*
    the year's baseline. A failure to measure the baseline is logged and leaves the row unscored.
    """
    if year is None or str(year) == "none":
        return {}
    rules = challenge_year(year)
    mine = measures_of_row(entry)
    try:
        if rules.model_id is not None and get_spec(rules.model_id).preset == spec.preset:
            base, how, psnr = mine, "the model is the baseline", {}
        else:
            base, how, psnr = measure_baseline(rules.year, sets, opts, save_dir, log)
    except (EhatError, OSError, RuntimeError) as e:
        log.error("score: could not measure the %d baseline %s (%s); the row has no score", rules.year,
                  rules.baseline, e)  # fmt: skip
        return {}
    return {"score": score_entry(mine, base, rules.year, how, psnr)}
