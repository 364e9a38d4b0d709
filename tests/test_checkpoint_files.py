"""Checkpoints: a run's best and last found one way, and a checkpoint that could run code refused
by every command that opens one, before its code runs."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse.typing import PositiveInt

from src.checkpoint_files import best_checkpoint, last_checkpoint, load_checkpoint
from src.cli import main as cli_main
from src.errors import UserInputError
from src.export import main as export_main
from src.predict import main as predict_main
from src.results import RunRecord
from tests.synthetic import TRAINED_RUN_EXPERIMENT


class Payload:
    """Unpickling this makes a directory: if the directory appears, the file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "payload-ran"


@pytest.fixture
def malicious(trained_run: Path, tmp_path: Path, marker: Path) -> Path:
    """The trained run's last checkpoint, whole and working, with a payload among its hyperparameters."""
    checkpoint = load_checkpoint(trained_run / "checkpoints" / "last.ckpt")
    checkpoint["hyper_parameters"]["note"] = Payload(marker)
    path = tmp_path / "shared" / "downloaded.ckpt"
    path.parent.mkdir()
    torch.save(checkpoint, path)
    return path


def test_the_projects_checkpoints_hold_only_what_loads_weights_only(trained_run):
    paths = sorted((trained_run / "checkpoints").glob("*.ckpt"))
    assert [p.name for p in paths if p.name.startswith("best-")] and trained_run / "checkpoints" / "last.ckpt" in paths
    for path in paths:
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == [], path.name
        assert load_checkpoint(path)["state_dict"]


def test_constrained_hyperparameters_are_allowed(trained_run, tmp_path):
    # jsonargparse keeps a flag declared as PositiveInt as its own int subclass in hyper_parameters
    checkpoint = load_checkpoint(trained_run / "checkpoints" / "last.ckpt")
    checkpoint["hyper_parameters"]["patience"] = PositiveInt(5)
    torch.save(checkpoint, tmp_path / "constrained.ckpt")
    loaded = load_checkpoint(tmp_path / "constrained.ckpt")["hyper_parameters"]["patience"]
    assert loaded == 5 and isinstance(loaded, PositiveInt)


def test_a_checkpoint_that_would_run_code_is_refused_before_it_runs(malicious, marker):
    with pytest.raises(UserInputError, match=r"downloaded.ckpt was not loaded: it asks to build posix.mkdir"):
        load_checkpoint(malicious)
    assert not marker.exists()


@pytest.mark.parametrize("content, why", [(b"", "it ends too early"), (b"not a checkpoint", "it is not a file torch.save")])
def test_an_unreadable_checkpoint_is_named(tmp_path, content, why):
    (tmp_path / "bad.ckpt").write_bytes(content)
    with pytest.raises(UserInputError, match=f"bad.ckpt is not a readable checkpoint \\({why}"):
        load_checkpoint(tmp_path / "bad.ckpt")


def test_a_cut_off_checkpoint_is_named(trained_run, tmp_path):
    whole = (trained_run / "checkpoints" / "last.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserInputError, match="cut.ckpt is not a readable checkpoint .*failed reading zip archive"):
        load_checkpoint(tmp_path / "cut.ckpt")


def refused(capsys, command, args: list[str], marker: Path, named: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        command(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {named} was not loaded" in err and "Traceback" not in err
    assert not marker.exists()


@pytest.mark.parametrize("flag", ["--ckpt_path", "--new_stage_from"])
def test_fit_refuses_it_before_writing_anything(capsys, synthetic_args, tmp_path, malicious, marker, flag):
    refused(capsys, cli_main, ["fit", f"{flag}={malicious}", *synthetic_args], marker, malicious)
    assert not (tmp_path / "runs").exists()


def test_test_refuses_it(capsys, synthetic_args, malicious, marker):
    refused(capsys, cli_main, ["test", f"--ckpt_path={malicious}", *synthetic_args], marker, malicious)


def test_resuming_a_run_whose_last_checkpoint_was_replaced_refuses_it(
    capsys, trained_run, synthetic_args, tmp_path, malicious, marker
):
    run_dir = tmp_path / "runs" / "received" / "version_0"
    shutil.copytree(trained_run, run_dir)
    shutil.copy(malicious, run_dir / "checkpoints" / "last.ckpt")
    kept = [run_dir / "checkpoints" / "last.ckpt", run_dir / "results.json"]
    before = [path.read_bytes() for path in kept]
    args = ["fit", *TRAINED_RUN_EXPERIMENT, "--trainer.max_epochs=2", "--run_name=received", "--ckpt_path=last",
            *synthetic_args]
    refused(capsys, cli_main, args, marker, run_dir / "checkpoints" / "last.ckpt")
    assert [path.read_bytes() for path in kept] == before


def test_export_and_predict_refuse_it(capsys, image_folder, tmp_path, malicious, marker):
    refused(capsys, export_main, [str(malicious)], marker, malicious)
    assert not malicious.with_suffix(".pt").exists()
    output = ["--output", str(tmp_path / "p.csv")]
    refused(capsys, predict_main, [str(malicious), str(image_folder / "test"), *output], marker, malicious)


def test_loading_without_weights_only_is_refused(capsys, synthetic_args, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--weights_only=false", *synthetic_args])
    assert exit_info.value.code == 2
    assert "--weights_only false is not supported" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# --- finding a run's checkpoints -------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory with two best-* checkpoints and last.ckpt (empty files: only names matter)."""
    run_dir = tmp_path / "runs" / "sgd" / "version_0"
    (run_dir / "checkpoints").mkdir(parents=True)
    for name in ("best-epoch002-val_acc0.5000.ckpt", "best-epoch004-val_acc0.7000.ckpt", "last.ckpt"):
        (run_dir / "checkpoints" / name).touch()
    return run_dir


def test_the_best_checkpoint_is_the_one_the_record_names(run_dir):
    assert best_checkpoint(run_dir) is None  # no record, several candidates: cannot tell
    RunRecord(best_checkpoint="checkpoints/best-epoch002-val_acc0.5000.ckpt").write(run_dir)
    assert best_checkpoint(run_dir) == run_dir / "checkpoints" / "best-epoch002-val_acc0.5000.ckpt"


def test_a_moved_run_finds_its_own_best_checkpoint(run_dir, tmp_path):
    old_place = "/elsewhere/runs/sgd/version_0/checkpoints/best-epoch004-val_acc0.7000.ckpt"
    record = RunRecord(best_checkpoint=old_place, tested_checkpoint=old_place)
    assert best_checkpoint(run_dir, record) == run_dir / "checkpoints" / "best-epoch004-val_acc0.7000.ckpt"


def test_without_a_best_record_the_tested_or_only_best_checkpoint_counts(run_dir):
    tested = "runs/sgd/version_0/checkpoints/best-epoch004-val_acc0.7000.ckpt"  # relative to fit's cwd
    assert best_checkpoint(run_dir, RunRecord(tested_checkpoint=tested)).name == Path(tested).name
    (run_dir / "checkpoints" / "best-epoch002-val_acc0.5000.ckpt").unlink()
    assert best_checkpoint(run_dir, RunRecord()).name == "best-epoch004-val_acc0.7000.ckpt"


def test_the_last_checkpoint_is_where_a_resume_starts(run_dir):
    assert last_checkpoint(run_dir) == run_dir / "checkpoints" / "last.ckpt"
    (run_dir / "checkpoints" / "last.ckpt").unlink()
    assert last_checkpoint(run_dir) is None


# --- a disk that fills up -----------------------------------------------------------------


@pytest.mark.parametrize("leave, named", [
    (0, ""),  # the first file a resume writes: the run's lock, or TensorBoard's events, which name none
    (1024, "/config.yaml (no space left"),  # room for TensorBoard's first event only
    (64 * 2**10, "/checkpoints/best-epoch002-"),  # a little room: the epoch's first checkpoint does not fit
    (20 * 2**20, "/checkpoints/last.ckpt (no space left"),  # room for one checkpoint: the best's, not last.ckpt
])
def test_a_full_disk_ends_the_run_with_one_line_and_leaves_whole_files_that_agree(
        small_disk, second_epoch, leave, named):
    run_dir = small_disk.path / "runs" / "default" / "version_0"
    before = {}

    def fill() -> None:
        before.update({p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()})
        small_disk.fill(leave)

    run = second_epoch(small_disk.path, after_copy=fill)
    assert run.code == 2 and run.err.count("error:") == 1 and "Traceback" not in run.err, run.err
    assert f"error: Cannot write {run_dir}{named}" in run.err and "(no space left on the device)" in run.err, run.err
    if named:  # once the run has started
        assert "then resume the run with: python -m src.cli fit" in run.err and "--ckpt_path last" in run.err
    # every file is whole: the earlier checkpoints as they were, none cut off, no partial file left behind
    assert not list(run_dir.rglob("*.partial"))
    for name in ("checkpoints/last.ckpt", "checkpoints/best-epoch001-val_acc0.2000.ckpt"):
        assert (run_dir / name).read_bytes() == before[Path(name)]
    for checkpoint in (run_dir / "checkpoints").iterdir():
        load_checkpoint(checkpoint)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["trainer"]["max_epochs"] in (1, 2)  # old or new
    # results.json names a checkpoint on disk, of the epoch it calls best, and says the run failed where it could
    record = RunRecord.read(run_dir)
    assert (record.epochs, record.best_epoch) == (1, 1)
    assert record.best_checkpoint == "checkpoints/best-epoch001-val_acc0.2000.ckpt"
    if leave > 2**10:
        assert record.stop_reason == "failed" and "no space left on the device" in record.failure
    else:  # no room for results.json: it stays as the first epoch left it
        assert record == RunRecord.from_dict(json.loads(before[Path("results.json")]))
