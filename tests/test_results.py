"""The results.json contract: one typed record, written whole or not at all, old files still read."""

import json
import os

import pytest

from src.errors import CannotWrite
from src.results import RESULTS_FILE, SCHEMA_VERSION, RunRecord, machine, read_record


def test_a_record_round_trips_through_its_file(tmp_path):
    record = RunRecord(config="sgd", stop_reason="max_epochs", test_acc=0.8, history=[{"epoch": 1, "val_acc": 0.5}])
    path = record.write(tmp_path)
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert RunRecord.read(tmp_path) == record


def test_a_version_1_file_still_reads(tmp_path):
    old = {"config": "adam", "stop_reason": "early_stopping", "test_acc": 0.7, "hparams": {"seed": 1}, "extra": 3}
    (tmp_path / "results.json").write_text(json.dumps(old))
    record = RunRecord.read(tmp_path)
    assert (record.schema_version, record.config, record.test_acc) == (1, "adam", 0.7)
    assert record.is_complete


def test_a_file_from_before_the_evaluated_counts_still_reads(tmp_path):
    RunRecord(config="sgd", test_acc=0.8).write(tmp_path)
    values = json.loads((tmp_path / "results.json").read_text())
    for key in ("val_images_evaluated", "test_images_evaluated"):
        del values[key]
    (tmp_path / "results.json").write_text(json.dumps(values))
    record = RunRecord.read(tmp_path)
    assert (record.test_acc, record.val_images_evaluated, record.test_images_evaluated) == (0.8, None, None)


@pytest.mark.parametrize("stop_reason,test_acc,complete", [
    ("early_stopping", 0.5, True), ("early_stopping", None, False), ("diverged", None, True),
    ("interrupted", 0.5, False), ("running", None, False),
])
def test_complete_means_ended_by_itself_and_tested(stop_reason, test_acc, complete):
    assert RunRecord(stop_reason=stop_reason, test_acc=test_acc).is_complete is complete


def test_an_unreadable_file_is_named_or_skipped(tmp_path):
    (tmp_path / "results.json").write_text('{"config": "sgd", "test_ac')
    with pytest.raises(ValueError, match="results.json is not valid JSON"):
        RunRecord.read(tmp_path)
    assert read_record(tmp_path) is None
    assert read_record(tmp_path / "missing") is None


@pytest.mark.parametrize("disk, cause", [("full", "no space left on the device"), ("read-only", "read-only file system")])
def test_a_record_that_cannot_be_written_leaves_the_old_one_and_is_named_with_the_cause(small_disk, disk, cause):
    RunRecord(config="sgd", stop_reason="running", epochs=1).write(small_disk.path)
    before = (small_disk.path / RESULTS_FILE).read_bytes()
    small_disk.fill() if disk == "full" else small_disk.make_read_only()
    with pytest.raises(CannotWrite, match=f"^Cannot write {small_disk.path / RESULTS_FILE} \\({cause}\\)"):
        RunRecord(config="sgd", stop_reason="failed", epochs=2).write(small_disk.path)
    assert (small_disk.path / RESULTS_FILE).read_bytes() == before
    assert not list(small_disk.path.glob("*.partial"))


FAKE_CPUINFO = """processor\t: 0
model name\t: Example CPU 9000
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_tile
bugs\t\t: none

processor\t: 1
model name\t: Example CPU 9000
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_tile
"""


def test_the_machine_is_described_by_its_cpu_model_cores_and_the_flags_asked_for():
    described = machine(("avx512f", "avx512_bf16", "amx_tile", "avx512_vnni"), cpuinfo=FAKE_CPUINFO)
    assert described == {"cpu": "Example CPU 9000", "cpu_flags": ["avx512f", "amx_tile", "avx512_vnni"],
                         "cpu_count": os.cpu_count()}
    assert machine(cpuinfo="")["cpu_flags"] == []  # no cpuinfo (not Linux): no flags claimed
