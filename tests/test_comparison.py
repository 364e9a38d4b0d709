"""Comparing configs over seeds: one row per config, diverged and unfinished runs counted apart, and a
Welch test that tells real differences from seed noise."""

import json

import pytest

from src.comparison import collect, compare, summarize
from src.keras_notebook import NOTEBOOK


def test_one_row_per_config_sorted_by_test_accuracy(recorded_sweep):
    rows = summarize(collect(recorded_sweep))
    assert [r["config"] for r in rows] == ["sgd", "sgd_nesterov", "rmsprop_baseline", "adam"]
    sgd = rows[0]
    assert sgd["test_acc_mean"] == pytest.approx(0.80)
    assert sgd["test_acc_std"] == pytest.approx(0.01)
    assert (sgd["runs"], sgd["finished"], sgd["notebook"]) == (3, 3, NOTEBOOK["sgd"][1])
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
