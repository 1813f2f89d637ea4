"""The NTIRE Efficient SR challenge's ranking score, per year (2024, 2025, 2026).

Each year's README (Amazingren/NTIRE20XX_ESR, "Ranking"):

- a PSNR threshold: a method below 26.90 dB on DIV2K_LSDIR_valid or 26.99 dB on DIV2K_LSDIR_test
  is not ranked;
- ``Score_M = exp(2 * M / M_baseline)`` for M in Runtime, FLOPs, Params (lower is better; the
  baseline itself scores exp(2) = 7.3891 on each);
- ``Score_Final = w_r * Score_Runtime + w_f * Score_FLOPs + w_p * Score_Params`` with weights
  0.7 / 0.15 / 0.15 (2024, 2025) and 0.8 / 0.1 / 0.1 (2026).

Runtime is the mean of the valid and test sets' average per-image runtimes (the valid set's alone
when the test set was not run), as the READMEs' baseline figures are. A score compares two
measurements made the same way: ``test_demo.py --score_year`` measures the baseline's runtime in
the same run, on the same device and images, and its FLOPs/params with the same counter
(:func:`ehat.evaluation.score_run.measure_baseline`); the published figures (RTX 3090 / A6000) are shown beside, never mixed in.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ehat.errors import EhatError, did_you_mean

__all__ = [
    "YEARS",
    "ChallengeYear",
    "Measures",
    "Score",
    "ScoreError",
    "challenge_year",
    "baseline_row",
    "final_score",
    "log_score",
    "measures_of_row",
    "results_score_lines",
    "row_score_lines",
    "runtime_of_row",
    "score",
    "score_entry",
    "score_lines",
    "term",
    "threshold_lines",
]

VALID_THRESHOLD_DB = 26.90
TEST_THRESHOLD_DB = 26.99


class ScoreError(EhatError):
    """A score that cannot be computed: an unknown year, a missing baseline or measure (named)."""


@dataclass(frozen=True)
class Measures:
    """What the score compares: runtime [ms], FLOPs [G], params [M]; None where not measured."""

    runtime_ms: float | None
    flops_g: float | None
    params_m: float | None


@dataclass(frozen=True)
class ChallengeYear:
    """One year's rules: its baseline (zoo id, preset, published figures) and the Final weights."""

    year: int
    baseline: str  # the baseline's name in that year's README
    model_id: int | None  # our zoo id of the baseline (None: not in this version's zoo)
    weights: tuple[float, float, float]  # runtime, FLOPs, params
    published: Measures
    published_on: str  # the GPU the published runtime was measured on
    row_names: tuple[str, ...]  # the baseline's row names in results.json files (ours, the organizers')
    valid_threshold: float = VALID_THRESHOLD_DB
    test_threshold: float = TEST_THRESHOLD_DB


YEARS: Mapping[int, ChallengeYear] = {
    2024: ChallengeYear(
        2024, "RLFN", 0, (0.7, 0.15, 0.15), Measures(13.54, 19.67, 0.317), "RTX 3090",
        ("00_RLFN_baseline",),
    ),
    2025: ChallengeYear(
        2025, "EFDN", 104, (0.7, 0.15, 0.15), Measures(16.69, 16.70, 0.276), "RTX A6000",
        ("104_EFDN_baseline_2025", "00_EFDN_baseline"),
    ),
    2026: ChallengeYear(
        2026, "SPAN", 103, (0.8, 0.1, 0.1), Measures(7.74, 9.83, 0.151), "RTX A6000",
        ("103_SPAN_baseline_2026", "00_SPAN", "38_SPAN"),
    ),
}  # fmt: skip


def challenge_year(year: int | str) -> ChallengeYear:
    """The rules of ``year``; an unknown year is a :class:`ScoreError` listing the known ones."""
    try:
        key = int(year)
    except (TypeError, ValueError):
        key = -1
    if key not in YEARS:
        known = ", ".join(map(str, YEARS))
        raise ScoreError(
            f"unknown challenge year {year!r}{did_you_mean(str(year), [str(y) for y in YEARS])}; "
            f"the NTIRE ESR scores known here: {known}"
        )
    return YEARS[key]


def term(value: float | None, baseline: float | None) -> float | None:
    """``exp(2 * value / baseline)``; None when either is missing (or the baseline is not > 0)."""
    if value is None or baseline is None or not baseline > 0:
        return None
    return math.exp(2.0 * value / baseline)


@dataclass(frozen=True)
class Score:
    """The three terms and the weighted Final (None where a measure is missing)."""

    year: int
    runtime: float | None
    flops: float | None
    params: float | None
    final: float | None


def final_score(runtime: float | None, flops: float | None, params: float | None, year: int) -> float | None:
    """``Score_Final`` of ``year`` from its three terms; None when one is missing."""
    w = challenge_year(year).weights
    if None in (runtime, flops, params):
        return None
    return w[0] * runtime + w[1] * flops + w[2] * params  # type: ignore[operator]


def score(model: Measures, baseline: Measures, year: int) -> Score:
    """The challenge's score of ``model`` against ``baseline`` under ``year``'s weights."""
    r = term(model.runtime_ms, baseline.runtime_ms)
    f = term(model.flops_g, baseline.flops_g)
    p = term(model.params_m, baseline.params_m)
    return Score(challenge_year(year).year, r, f, p, final_score(r, f, p, year))


def threshold_lines(valid_psnr: float | None, test_psnr: float | None, year: int) -> list[str]:
    """The PSNR threshold check, one line per set: 'pass', 'FAIL' or 'not measured'."""
    rules = challenge_year(year)
    lines = []
    for label, value, limit in (
        ("valid", valid_psnr, rules.valid_threshold),
        ("test", test_psnr, rules.test_threshold),
    ):
        if value is None:
            lines.append(f"PSNR threshold ({year}) {label}: not measured (needs >= {limit:.2f} dB)")
        else:
            verdict = "pass" if value >= limit else "FAIL (not ranked)"
            lines.append(f"PSNR threshold ({year}) {label}: {value:.2f} dB vs >= {limit:.2f} dB: {verdict}")
    return lines


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def score_lines(name: str, model: Measures, baseline: Measures, year: int, how: str = "") -> list[str]:
    """The four scores with the values they come from, as printed beside ``results.txt``'s table."""
    rules = challenge_year(year)
    s = score(model, baseline, year)
    w = rules.weights
    pub = rules.published
    lines = [
        f"NTIRE {year} ESR score of {name} (baseline {rules.baseline}{'; ' + how if how else ''}):",
        f"  Score_Runtime = exp(2 * {_fmt(model.runtime_ms, '.2f')} / {_fmt(baseline.runtime_ms, '.2f')} ms) = "
        f"{_fmt(s.runtime, '.4f')}   (published baseline: {pub.runtime_ms:.2f} ms on an {rules.published_on})",
        f"  Score_FLOPs   = exp(2 * {_fmt(model.flops_g, '.2f')} / {_fmt(baseline.flops_g, '.2f')} G) = "
        f"{_fmt(s.flops, '.4f')}   (published baseline: {pub.flops_g:.2f} G)",
        f"  Score_Params  = exp(2 * {_fmt(model.params_m, '.3f')} / {_fmt(baseline.params_m, '.3f')} M) = "
        f"{_fmt(s.params, '.4f')}   (published baseline: {pub.params_m:.3f} M)",
        f"  Score_Final   = {w[0]:g} * Runtime + {w[1]:g} * FLOPs + {w[2]:g} * Params = {_fmt(s.final, '.4f')}",
    ]
    return lines


# --------------------------------------------------------------------------- results.json rows


def runtime_of_row(row: Mapping[str, Any]) -> float | None:
    """A row's Runtime: the mean of ``valid_ave_runtime`` and ``test_ave_runtime`` (valid alone without test)."""
    times = [row.get(k) for k in ("valid_ave_runtime", "test_ave_runtime") if row.get(k) is not None]
    return float(sum(times) / len(times)) if times else None


def measures_of_row(row: Mapping[str, Any]) -> Measures:
    """A ``results.json`` row (ours or the organizers') as :class:`Measures` (FLOPs [G], params [M])."""
    flops, params = row.get("flops"), row.get("num_parameters")
    return Measures(
        runtime_of_row(row),
        None if flops is None else float(flops),
        None if params is None else float(params),
    )


def score_entry(
    model: Measures, baseline: Measures, year: int, how: str, baseline_psnr: Mapping[str, Any]
) -> dict:
    """The ``score`` object stored in a ``results.json`` row: year, the baseline's measures, the terms."""
    s = score(model, baseline, year)
    return {
        "year": year,
        "baseline": challenge_year(year).baseline,
        "baseline_measured": dataclasses.asdict(baseline),
        "baseline_published": dataclasses.asdict(challenge_year(year).published),
        "baseline_how": how,
        **{f"baseline_{k}": v for k, v in baseline_psnr.items()},
        "score_runtime": s.runtime,
        "score_flops": s.flops,
        "score_params": s.params,
        "score_final": s.final,
    }


def baseline_row(results: Mapping[str, Any], year: int, name: str | None = None) -> tuple[str, Measures]:
    """The baseline's (row name, measures) in ``results``: the row ``name``, else one of the year's
    baseline names. None found: a :class:`ScoreError` naming the rows and what to pass."""
    rows = [k for k, v in results.items() if isinstance(v, dict)]
    if name is not None:
        if name not in rows:
            raise ScoreError(f"--baseline {name!r} is not a row of the results{did_you_mean(name, rows)}; rows: "
                             f"{', '.join(rows) or 'none'}")  # fmt: skip
        return name, measures_of_row(results[name])
    for candidate in challenge_year(year).row_names:
        if candidate in rows:
            return candidate, measures_of_row(results[candidate])
    raise ScoreError(
        f"no {challenge_year(year).baseline} baseline row ({', '.join(challenge_year(year).row_names)}) in the "
        f"results: pass --baseline ROW (rows: {', '.join(rows) or 'none'}), or run test_demo.py with "
        f"--score_year {year}, which measures the baseline in the same run"
    )


def results_score_lines(
    results: Mapping[str, Any], year: int, baseline: str | None = None, models: Sequence[str] | None = None
) -> list[str]:
    """``ehat score``: the threshold check and the four scores of each row of a ``results.json``.

    The baseline is the row ``baseline`` (or the year's baseline row); a row that carries its own
    same-run baseline measurement (``test_demo.py --score_year``) for ``year`` is scored against that,
    unless ``baseline`` is given.
    """
    rows = [k for k, v in results.items() if isinstance(v, dict)]
    for m in models or ():
        if m not in rows:
            raise ScoreError(
                f"--model {m!r} is not a row of the results{did_you_mean(m, rows)}; rows: {', '.join(rows)}"
            )
    lines: list[str] = []
    shared: tuple[str, Measures] | None = None
    for name in models or rows:
        row = results[name]
        stored = row.get("score")
        if baseline is None and isinstance(stored, dict) and stored.get("year") == year:
            base = Measures(**stored["baseline_measured"])
            how = stored.get("baseline_how", "measured in the same run")
        else:
            shared = shared or baseline_row(results, year, baseline)
            base, how = shared[1], f"row {shared[0]}"
        lines += threshold_lines(row.get("valid_ave_psnr"), row.get("test_ave_psnr"), year)
        lines += score_lines(name, measures_of_row(row), base, year, how)
        lines.append("")
    return lines


# --------------------------------------------------------------------------- the baseline, measured


def row_score_lines(name: str, entry: Mapping[str, Any]) -> list[str]:
    """The threshold check and the four scores of a ``results.json`` row with a ``score`` (else [])."""
    stored = entry.get("score")
    if not isinstance(stored, Mapping):
        return []
    year = int(stored["year"])
    lines = threshold_lines(entry.get("valid_ave_psnr"), entry.get("test_ave_psnr"), year)
    baseline = Measures(**stored["baseline_measured"])
    lines += score_lines(name, measures_of_row(entry), baseline, year, stored.get("baseline_how", ""))
    base_psnr = [
        f"{k.removeprefix('baseline_')} {v:.2f} dB"
        for k, v in stored.items()
        if k.startswith("baseline_") and k.endswith("_ave_psnr") and v is not None
    ]
    if base_psnr:
        lines.append(f"  baseline PSNR on these images: {', '.join(base_psnr)}")
    return lines


def log_score(name: str, entry: Mapping[str, Any], log: logging.Logger) -> None:
    """Log :func:`row_score_lines` of ``entry`` (nothing when the row has no score)."""
    lines = row_score_lines(name, entry)
    if lines:
        log.info("%s", "\n".join(lines))
