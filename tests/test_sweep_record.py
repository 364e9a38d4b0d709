"""``sweep.json``: sweeps that share a directory keep each other's outcomes."""

import json
from pathlib import Path

from src.run_process import Run
from src.sweep_record import SWEEP_FILE, SweepRecord


def test_sweeps_sharing_a_directory_keep_each_others_outcomes(tmp_path):
    first = SweepRecord(tmp_path, {"configs": ["sgd"]})
    second = SweepRecord(tmp_path, {"configs": ["adam"]})  # started while the first one runs
    first.update(Run(Path("sgd.yaml"), 44, tmp_path, "sgd"), {"status": "finished"})
    second.update(Run(Path("adam.yaml"), 44, tmp_path, "adam"), {"status": "interrupted"})
    record = json.loads((tmp_path / SWEEP_FILE).read_text())
    assert record["runs"] == {"sgd/seed_44": {"status": "finished"}, "adam/seed_44": {"status": "interrupted"}}
    assert record["configs"] == ["adam"]  # the settings of the sweep started last
