"""Run directories: one owner at a time, fresh versions for fits started together, resumes
that continue the same experiment, and no new run written over an old one."""

import logging
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from src.cli import main as cli_main
from src.errors import UserInputError
from src.results import RunRecord
from src.run_dir import claim, version_number
from tests.synthetic import TRAINED_RUN_EXPERIMENT, quiet_fit_args

ROOT = Path(__file__).resolve().parent.parent
HOLD = "import sys, time; from src.run_dir import claim; claim(__import__('pathlib').Path(sys.argv[1]), sys.argv[2]); print('held', flush=True); time.sleep(60)"


def hold_in_another_process(name_dir: Path, version: str) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(name_dir), version], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_run_in_use_is_refused_until_its_process_ends_even_by_kill_9(tmp_path):
    holder = hold_in_another_process(tmp_path, "version_0")
    try:
        with pytest.raises(UserInputError, match="in use by another running fit"):
            claim(tmp_path, "version_0")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert claim(tmp_path, "version_0").run_dir == tmp_path / "version_0"  # no stuck lock


def test_new_runs_take_the_next_free_version(tmp_path):
    holder = hold_in_another_process(tmp_path, "version_0")
    try:
        assert claim(tmp_path, None).run_dir.name == "version_1"
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_two_fits_started_at_once_get_their_own_run_directories(image_folder, data_dir, tmp_path):
    args = ["--model.optimizer=src.optim.KerasAdam", "--trainer.max_epochs=1", "--test_after_fit=false",
            "--run_name=same", *quiet_fit_args(image_folder, data_dir, tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    fits = [subprocess.Popen([sys.executable, "-m", "src.cli", "fit", *args, f"--seed_everything={seed}"], cwd=ROOT,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for seed in (1, 2)]
    assert [fit.wait() for fit in fits] == [0, 0], [fit.stderr.read() for fit in fits]
    runs = sorted((tmp_path / "runs" / "same").glob("version_*"))
    assert [run.name for run in runs] == ["version_0", "version_1"]
    records = [RunRecord.read(run) for run in runs]
    assert sorted(r.hparams["seed"] for r in records) == [1, 2]
    for run, record in zip(runs, records):
        assert record.run_dir == str(run)
        assert f"seed_everything: {record.hparams['seed']}" in (run / "config.yaml").read_text()


@pytest.mark.parametrize("name, number", [("version_12", 12), ("version_0", 0), ("version_x", None),
                                          ("version_", None), ("seed_44", None)])
def test_only_the_loggers_version_folders_are_numbered(name, number):
    assert version_number(Path("runs/sgd") / name) == number


@pytest.fixture
def copied_run(trained_run, tmp_path, monkeypatch) -> Path:
    """A finished run (last.ckpt, best checkpoint, results.json, events) at ``tmp_path/runs/received/version_0``."""
    monkeypatch.setattr(logging.getLogger("src"), "handlers", [])  # main() logs to the stderr of the moment
    run_dir = tmp_path / "runs" / "received" / "version_0"
    shutil.copytree(trained_run, run_dir)
    return run_dir


@pytest.mark.parametrize("left", ["the whole run", "only last.ckpt", "only results.json"])
def test_a_new_fit_in_a_folder_that_holds_a_run_is_refused_and_changes_nothing(
    capsys, copied_run, synthetic_args, left
):
    if left == "only last.ckpt":
        (copied_run / "results.json").unlink()
    if left == "only results.json":
        shutil.rmtree(copied_run / "checkpoints")
    before = {path: path.read_bytes() for path in copied_run.rglob("*") if path.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--run_name=received", "--trainer.logger.init_args.version=version_0", *synthetic_args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err, err
    assert f"{copied_run} already holds a run" in err and "--ckpt_path last" in err
    assert {path: path.read_bytes() for path in copied_run.rglob("*") if path.is_file()} == before


def test_a_resume_with_allowed_changes_continues_the_run_without_warnings(copied_run, synthetic_args, monkeypatch):
    monkeypatch.setenv("JSONARGPARSE_DEPRECATION_WARNINGS", "all")  # not only the first of the test session
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cli_main(["fit", *TRAINED_RUN_EXPERIMENT, "--trainer.max_epochs=3", "--data.eval_batch_size=50",
                  "--run_name=received", "--ckpt_path=last", *synthetic_args])
    record = RunRecord.read(copied_run)
    assert [epoch["epoch"] for epoch in record.history] == [1, 2, 3]
    assert record.hparams["optimizer_args"]["lr"] == 1e-3
    assert not [w for w in seen if "exists and is not empty" in str(w.message)]
    assert not [w for w in seen if w.category.__module__.startswith("jsonargparse")]  # the comparison's deprecations


def run_files(run_dir: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}


def test_a_resume_after_editing_config_yaml_is_refused_naming_the_setting_and_changes_nothing(
    capsys, copied_run, tmp_path
):
    config = copied_run / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.001", "lr: 0.005"))
    before = run_files(copied_run)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", f"--config={config}", f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
                  "--trainer.logger.init_args.name=received", "--trainer.max_epochs=3", "--ckpt_path=last"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err, err
    assert "model.optimizer.init_args.lr: trained with 0.001, given 0.005" in err
    assert run_files(copied_run) == before


def test_a_fit_from_another_runs_checkpoint_with_other_settings_is_refused_not_overridden(
    capsys, copied_run, synthetic_args, tmp_path
):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *TRAINED_RUN_EXPERIMENT, "--model.decay=0.001", "--run_name=another",
                  f"--ckpt_path={copied_run / 'checkpoints' / 'last.ckpt'}", *synthetic_args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "model.decay: trained with 0.0, given 0.001" in err, err
    assert not (tmp_path / "runs" / "another").exists()


def test_resuming_a_run_in_a_read_only_folder_is_one_error_line_not_a_traceback(small_disk, second_epoch):
    run = second_epoch(small_disk.path, after_copy=small_disk.make_read_only)
    assert run.code == 2 and run.err.count("error:") == 1 and "Traceback" not in run.err, run.err
    assert f"error: Cannot write {small_disk.path / 'runs' / 'default'}" in run.err
    assert "(read-only file system). Make it writable" in run.err
