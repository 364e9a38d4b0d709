"""``sweep.json``: sweeps that share a directory keep each other's outcomes, and a change a full
disk cannot take leaves the record as it was."""

import json
from pathlib import Path

import pytest

from src.errors import CannotWrite
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


def test_a_sweep_record_a_full_disk_cannot_take_is_named_and_left_as_it_was(small_disk):
    record = SweepRecord(small_disk.path, {"configs": ["sgd"]})
    record.update(Run(Path("sgd.yaml"), 42, small_disk.path, "sgd"), {"status": "finished"})
    before = (small_disk.path / SWEEP_FILE).read_bytes()
    small_disk.fill()
    with pytest.raises(CannotWrite, match=f"Cannot write {small_disk.path / SWEEP_FILE} \\(no space left on the dev"):
        record.update(Run(Path("sgd.yaml"), 43, small_disk.path, "sgd"), {"status": "finished"})
    assert (small_disk.path / SWEEP_FILE).read_bytes() == before
    assert not list(small_disk.path.glob("*.partial"))
