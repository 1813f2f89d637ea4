"""The NTIRE ESR score: the READMEs' worked examples, a slower model, the threshold, the year weights,
``ehat score`` on a results.json (ours and, when EHAT_NTIRE2026_ESR is set, the organizers' own)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from ehat.cli import main as ehat_main
from ehat.evaluation.score import (
    YEARS,
    Measures,
    ScoreError,
    challenge_year,
    final_score,
    measures_of_row,
    score,
    threshold_lines,
)

README_BASELINE_SCORE = 7.3891  # every year's README: "Score_Runtime = 7.3891 ... Score_Final = 7.3891"


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_readme_worked_example_the_baseline_scores_7_3891_on_each_term_and_final(year):
    published = challenge_year(year).published  # e.g. 2024: RLFN 13.54 ms, 19.67 G, 0.317 M
    s = score(published, published, year)
    for value in (s.runtime, s.flops, s.params, s.final):
        assert round(value, 4) == README_BASELINE_SCORE
        assert value == pytest.approx(math.exp(2))


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_a_model_twice_as_slow_scores_exp_4_on_runtime(year):
    base = Measures(10.0, 20.0, 0.3)
    s = score(Measures(20.0, 20.0, 0.3), base, year)
    assert s.runtime == pytest.approx(math.exp(4)) and s.flops == s.params == pytest.approx(math.exp(2))
    w_runtime = 0.8 if year == 2026 else 0.7
    assert s.final == pytest.approx(w_runtime * math.exp(4) + (1 - w_runtime) * math.exp(2))


def test_year_weights_follow_each_readme():
    assert challenge_year(2024).weights == challenge_year(2025).weights == (0.7, 0.15, 0.15)
    assert challenge_year(2026).weights == (0.8, 0.1, 0.1)
    # distinct terms tell the weights apart
    assert final_score(1.0, 10.0, 100.0, 2024) == pytest.approx(0.7 + 1.5 + 15.0)
    assert final_score(1.0, 10.0, 100.0, 2026) == pytest.approx(0.8 + 1.0 + 10.0)
    assert [YEARS[y].baseline for y in (2024, 2025, 2026)] == ["RLFN", "EFDN", "SPAN"]


def test_smaller_is_better_and_a_missing_measure_leaves_final_empty():
    base = Measures(10.0, 20.0, 0.3)
    assert score(Measures(5.0, 10.0, 0.15), base, 2024).final < score(base, base, 2024).final
    s = score(Measures(10.0, None, 0.3), base, 2024)
    assert s.flops is None and s.final is None and s.runtime == pytest.approx(math.exp(2))


@pytest.mark.parametrize(
    ("valid", "test", "verdicts"),
    [(26.90, 26.99, ["pass", "pass"]), (26.89, 27.50, ["FAIL", "pass"]), (27.0, 26.98, ["pass", "FAIL"]),
     (26.95, None, ["pass", "not measured"])],
)  # fmt: skip
def test_threshold_lines_pass_and_fail_at_26_90_valid_and_26_99_test(valid, test, verdicts):
    lines = threshold_lines(valid, test, 2024)
    assert len(lines) == 2 and lines[0].startswith("PSNR threshold (2024) valid") and "test" in lines[1]
    for line, verdict in zip(lines, verdicts, strict=True):
        assert verdict in line
        assert ("FAIL" in line) == (verdict == "FAIL")


@pytest.mark.parametrize("year", [2023, "twenty", 2027])
def test_unknown_year_is_an_error_naming_it_and_the_known_ones(year):
    with pytest.raises(ScoreError, match=rf"unknown challenge year '?{year}'?.*2024, 2025, 2026"):
        challenge_year(year)


def test_runtime_of_a_row_is_the_mean_of_valid_and_test_averages():
    """As in the READMEs: EFDN 16.69 ms = mean of 18.77 (valid) and 14.61 (test)."""
    assert measures_of_row(
        {"valid_ave_runtime": 18.77, "test_ave_runtime": 14.61}
    ).runtime_ms == pytest.approx(16.69)
    assert measures_of_row({"valid_ave_runtime": 3.0, "flops": 2.0, "num_parameters": 0.1}) == Measures(
        3.0, 2.0, 0.1
    )


def _results_file(tmp_path: Path) -> Path:
    rows = {
        "00_RLFN_baseline": {"valid_ave_runtime": 10.0, "valid_ave_psnr": 26.96, "flops": 19.67, "num_parameters": 0.317},
        "mine": {"valid_ave_runtime": 5.0, "valid_ave_psnr": 26.80, "flops": 9.0, "num_parameters": 0.2},
    }  # fmt: skip
    path = tmp_path / "results.json"
    path.write_text(json.dumps(rows))
    return path


def test_ehat_score_prints_threshold_and_scores_of_each_row(tmp_path, capsys):
    assert ehat_main(["score", str(_results_file(tmp_path)), "--year", "2024", "--model", "mine"]) == 0
    out = capsys.readouterr().out
    assert "valid: 26.80 dB vs >= 26.90 dB: FAIL" in out
    expected = 0.7 * math.exp(1.0) + 0.15 * math.exp(2 * 9.0 / 19.67) + 0.15 * math.exp(2 * 0.2 / 0.317)
    assert f"Score_Final   = 0.7 * Runtime + 0.15 * FLOPs + 0.15 * Params = {expected:.4f}" in out
    assert f"exp(2 * 5.00 / 10.00 ms) = {math.exp(1.0):.4f}" in out
    assert "baseline RLFN; row 00_RLFN_baseline" in out


def test_ehat_score_without_a_baseline_row_says_what_to_pass(tmp_path, capsys):
    path = _results_file(tmp_path)
    assert ehat_main(["score", str(path), "--year", "2026"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.count("\n") == 0 and "no SPAN baseline row" in err and "--baseline ROW" in err and "mine" in err
    )
    assert ehat_main(["score", str(path), "--year", "2026", "--baseline", "00_RLFN_baseline"]) == 0
    assert ehat_main(["score", str(path), "--year", "1999"]) == 2
    assert "unknown challenge year '1999'" in capsys.readouterr().err


def test_ehat_score_on_the_organizers_2026_results_reproduces_the_readme_example(capsys):
    """Amazingren/NTIRE2026_ESR's own results.json: its SPAN row (8.00 ms valid, 7.47 ms test) is the
    README's 7.74 ms / 9.83 G / 0.151 M, and scores 7.3891 against itself."""
    root = os.environ.get("EHAT_NTIRE2026_ESR")
    if not root or not (Path(root) / "results.json").is_file():
        pytest.skip(
            "EHAT_NTIRE2026_ESR is not set to a checkout of Amazingren/NTIRE2026_ESR with results.json"
        )
    results = json.loads((Path(root) / "results.json").read_text())
    m = measures_of_row(results["00_SPAN"])
    assert (round(m.runtime_ms, 2), round(m.flops_g, 2), round(m.params_m, 3)) == (7.74, 9.83, 0.151)
    assert ehat_main(["score", str(Path(root) / "results.json"), "--year", "2026", "--model", "00_SPAN"]) == 0
    assert "Score_Final   = 0.8 * Runtime + 0.1 * FLOPs + 0.1 * Params = 7.3891" in capsys.readouterr().out
