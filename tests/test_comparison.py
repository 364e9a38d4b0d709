"""Comparing configs over seeds: one row per config, diverged and unfinished runs counted apart, a
Welch test that tells real differences from seed noise, and whether one figure could be one more run
of ours."""

import json

import pytest

from src.comparison import collect, compare, mean_std, notebook_within_seed_noise, summarize, within_seed_noise
from src.keras_notebook import NOTEBOOK, NotebookFigure


def test_one_row_per_config_sorted_by_test_accuracy(recorded_sweep):
    rows = summarize(collect(recorded_sweep))
    assert [r["config"] for r in rows] == ["sgd", "sgd_nesterov", "rmsprop_baseline", "adam"]
    sgd = rows[0]
    assert sgd["test_acc_mean"] == pytest.approx(0.80)
    assert sgd["test_acc_std"] == pytest.approx(0.01)
    assert (sgd["runs"], sgd["finished"], sgd["notebook"]) == (3, 3, NOTEBOOK["sgd"].text)
    rmsprop = rows[2]
    assert (rmsprop["runs"], rmsprop["finished"], rmsprop["diverged"]) == (3, 2, 1)
    assert rmsprop["test_acc_mean"] == pytest.approx(0.755)  # the diverged run is left out


def test_welch_test_tells_real_differences_from_seed_noise(recorded_sweep):
    comparisons = {(c.better, c.worse): c for c in compare(collect(recorded_sweep))}
    assert comparisons[("sgd", "adam")].beyond_noise
    assert comparisons[("sgd", "adam")].difference == pytest.approx(0.10)
    assert not comparisons[("sgd", "sgd_nesterov")].beyond_noise  # same mean, more spread


def test_failed_runs_without_results_are_counted_from_sweep_json(recorded_sweep):
    (recorded_sweep / "sweep.json").write_text(json.dumps({"runs": {"sgd/seed_9": {
        "config": "sgd", "seed": 9, "status": "failed", "run_dir": str(recorded_sweep / "sgd" / "seed_9")}}}))
    sgd = next(r for r in summarize(collect(recorded_sweep)) if r["config"] == "sgd")
    assert (sgd["runs"], sgd["finished"], sgd["unfinished"]) == (4, 3, 1)


def test_a_damaged_results_file_is_named_and_the_other_runs_reported(recorded_sweep, caplog):
    damaged = recorded_sweep / "sgd" / "seed_2" / "results.json"
    damaged.write_text(damaged.read_text()[:100])  # cut off mid-write
    rows = {r["config"]: r for r in summarize(collect(recorded_sweep))}
    assert f"left out {damaged}, which is not a readable run record" in caplog.text
    assert (rows["sgd"]["runs"], rows["sgd"]["finished"], rows["sgd"]["unfinished"]) == (3, 2, 1)
    assert len(rows) == 4


def test_a_damaged_sweep_record_is_named_and_the_runs_reported(recorded_sweep, caplog):
    (recorded_sweep / "sweep.json").write_text('{"runs": {"sgd/seed_9": {"status": "fai')  # cut off mid-write
    rows = {r["config"]: r for r in summarize(collect(recorded_sweep))}
    assert f"warning: {recorded_sweep / 'sweep.json'} is not valid JSON" in caplog.text
    assert rows["sgd"]["runs"] == 3 and len(rows) == 4


@pytest.mark.parametrize("values,claimed,verdict", [
    ([70.0, 71.0, 72.0], 71.5, "yes (66.0–76.0)"),  # one more run of ours: 71 ± 4.30·1·√(4/3) = 71 ± 5.0
    ([70.0, 71.0, 72.0], 80.8, "no, above 66.0–76.0"),
    ([70.0, 71.0, 72.0], 60.0, "no, below 66.0–76.0"),
    ([70.0, 71.0, 72.0], 75.5, "yes (66.0–76.0)"),
    ([95.0, 99.0], 90.0, "yes (53.0–100.0)"),  # two seeds: t = 12.7, an interval as wide as it is weak
    ([70.0], 70.0, "– (needs 2 seeds)"),
])
def test_the_notebook_figure_is_judged_against_one_more_run_of_ours(values, claimed, verdict):
    assert within_seed_noise(values, claimed) == verdict


@pytest.mark.parametrize("figure,verdict", [
    (NotebookFigure("0.715", exact=0.715), "yes (66.0–76.0)"),
    (NotebookFigure('"just above 70%"', low=0.70, high=0.71), "yes (66.0–76.0)"),
    (NotebookFigure('"~60%"', low=0.575, high=0.625), "no, below 66.0–76.0"),  # wholly outside
    (NotebookFigure('"~75%"', low=0.725, high=0.775), "partly: its range 72.5–77.5 straddles 66.0–76.0"),
    (NotebookFigure("no figure"), "– (the notebook gave no figure)"),
])
def test_a_figure_given_in_words_is_judged_as_the_range_they_allow(figure, verdict):
    assert notebook_within_seed_noise([70.0, 71.0, 72.0], figure) == verdict


def test_a_mean_over_seeds_shows_its_spread_only_where_there_is_one_and_its_count_where_asked():
    assert mean_std([77.0, 78.0, 79.0]) == "78.0 ± 1.0"
    assert mean_std([77.25], digits=2, count=True) == "77.25 (n=1)"
    assert mean_std([76.0, 78.0], count=True) == "77.0 ± 1.4 (n=2)"
    assert mean_std([]) == "–"
