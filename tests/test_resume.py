"""Interrupting and resuming: wherever and however a run is stopped, resuming it with
``--ckpt_path last`` ends exactly where an uninterrupted run does, with the same history."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from src.callbacks.run_results import CHECKPOINT_KEY
from src.checkpoint_files import load_checkpoint
from src.cli import main
from src.results import RunRecord
from tests.faults import signal_at
from tests.synthetic import quiet_fit_args

ROOT = Path(__file__).resolve().parent.parent
RUN = [f"--config={ROOT / 'configs' / 'sgd_nesterov.yaml'}", "--model.decay=1e-3", "--trainer.max_epochs=3",
       "--trainer.deterministic=true"]


@pytest.fixture(autouse=True)
def restore_signal_handlers():
    """Lightning ignores further Ctrl-C while it shuts down; give pytest its handlers back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture(scope="module")
def reference(image_folder, data_dir, tmp_path_factory) -> RunRecord:
    """The uninterrupted run every interrupted one must end up identical to."""
    root = tmp_path_factory.mktemp("reference")
    main(["fit", *RUN, "--run_name=straight", *quiet_fit_args(image_folder, data_dir, root)])
    return RunRecord.read(root / "runs" / "straight" / "version_0")


@pytest.fixture
def fit_args(image_folder, data_dir, tmp_path) -> list[str]:
    return ["fit", *RUN, "--run_name=cut", *quiet_fit_args(image_folder, data_dir, tmp_path)]


def final_weights(record: RunRecord) -> dict[str, torch.Tensor]:
    return load_checkpoint(Path(record.run_dir) / "checkpoints" / "last.ckpt")["state_dict"]


def assert_same_run(resumed: RunRecord, reference: RunRecord) -> None:
    assert (resumed.stop_reason, resumed.epochs) == (reference.stop_reason, reference.epochs)
    expected, actual = final_weights(reference), final_weights(resumed)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)
    for resumed_epoch, straight_epoch in zip(resumed.history, reference.history, strict=True):
        assert resumed_epoch == pytest.approx(straight_epoch, rel=1e-6)  # train means include pre-interrupt steps
    assert resumed.test_acc == pytest.approx(reference.test_acc)


def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "cut" / "version_0"


def last_checkpoint(tmp_path: Path) -> Path:
    return run_dir(tmp_path) / "checkpoints" / "last.ckpt"


def resume_timed(fit_args: list[str]) -> float:
    """Resumes the run; returns how long that took."""
    started = time.perf_counter()
    main([*fit_args, "--ckpt_path=last"])
    return time.perf_counter() - started


@pytest.mark.slow
@pytest.mark.parametrize("signal_name,point", [
    ("SIGINT", "train"),          # Ctrl-C mid-epoch
    ("SIGTERM", "validation"),    # a scheduler's time limit while validating
    ("SIGINT", "validation"),
    ("SIGTERM", "epoch_start"),   # between epochs
    ("SIGINT", "test"),           # during the test after fit
])
def test_a_signal_stops_the_run_at_a_safe_point_and_resuming_ends_identically(
    fit_args, tmp_path, reference, capsys, signal_name, point
):
    with pytest.raises(SystemExit) as exit_info:
        main([*fit_args, signal_at(signal_name, point)])
    assert exit_info.value.code == 128 + signal.Signals[signal_name]  # 130 for SIGINT, 143 for SIGTERM
    err = capsys.readouterr().err
    assert f"Interrupted by {signal_name}" in err and "Resume with: python -m src.cli fit" in err
    assert "--ckpt_path last" in err and "was raised with message" not in err
    cut = RunRecord.read(run_dir(tmp_path))
    assert cut.stop_reason == "interrupted"

    clock_at_last_safe_point = load_checkpoint(last_checkpoint(tmp_path))[CHECKPOINT_KEY]["wall_seconds"]
    resuming_took = resume_timed(fit_args)
    resumed = RunRecord.read(run_dir(tmp_path))
    assert resumed.run_dir == str(run_dir(tmp_path))  # the same run, continued
    # the clock goes on from last.ckpt's: time spent after that safe point (in a cut-off test) is not added
    assert clock_at_last_safe_point < resumed.wall_time_s <= clock_at_last_safe_point + resuming_took + 0.01
    assert_same_run(resumed, reference)


@pytest.mark.slow
def test_a_signal_after_an_epochs_last_step_waits_for_the_epochs_end(fit_args, tmp_path, reference, capsys):
    # 500 training images in batches of 32: the second epoch's last step is step 32
    with pytest.raises(SystemExit):
        main([*fit_args, signal_at("SIGINT", "train", epoch=2, step=32)])
    assert "Interrupted by SIGINT after epoch 2." in capsys.readouterr().err  # not "at step 32"
    assert RunRecord.read(run_dir(tmp_path)).epochs == 2  # validated, recorded, resumed from the next epoch
    main([*fit_args, "--ckpt_path=last"])
    assert_same_run(RunRecord.read(run_dir(tmp_path)), reference)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["validation", "train"])
def test_a_killed_run_resumes_from_its_last_safe_point_identically(fit_args, tmp_path, reference, point):
    # kill -9 leaves no chance to write anything: last.ckpt is the end of the epoch before
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-m", "src.cli", *fit_args, signal_at("SIGKILL", point)],
                            cwd=ROOT, env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert RunRecord.read(run_dir(tmp_path)).epochs == 1

    main([*fit_args, "--ckpt_path=last"])
    assert_same_run(RunRecord.read(run_dir(tmp_path)), reference)


def test_resume_without_an_earlier_run_is_refused(fit_args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*fit_args, "--run_name=never_ran", "--ckpt_path=last"])
    assert exit_info.value.code == 2
    assert "--ckpt_path last found no run to resume" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("change, differs", [
    (f"--config={ROOT / 'configs' / 'adam.yaml'}", "model.optimizer"),
    ("--trainer.limit_val_batches=1", "trainer.limit_val_batches"),  # it would change what stops the run
], ids=["optimizer", "validation batches"])
def test_resuming_with_another_config_is_refused_and_changes_nothing(fit_args, tmp_path, capsys, change, differs):
    main([*fit_args, "--trainer.max_epochs=1", "--test_after_fit=false"])
    before = {p.name: p.read_bytes() for p in run_dir(tmp_path).iterdir() if p.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        main([*fit_args, change, "--ckpt_path=last"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Cannot resume" in err and differs in err
    after = {p.name: p.read_bytes() for p in run_dir(tmp_path).iterdir() if p.is_file()}
    assert after == before


@pytest.mark.slow
def test_a_resume_may_change_how_long_it_runs(fit_args, tmp_path):
    main([*fit_args, "--trainer.max_epochs=1", "--test_after_fit=false"])
    main([*fit_args, "--trainer.max_epochs=2", "--test_after_fit=false", "--ckpt_path=last"])
    assert RunRecord.read(run_dir(tmp_path)).epochs == 2


@pytest.mark.slow
def test_a_resumed_run_clock_goes_on_from_its_last_checkpoint(fit_args, tmp_path):
    main([*fit_args, "--trainer.max_epochs=1", "--test_after_fit=false"])
    checkpoint = load_checkpoint(last_checkpoint(tmp_path))
    checkpoint[CHECKPOINT_KEY]["wall_seconds"] = an_hour_in = 3600.0  # a long first session
    torch.save(checkpoint, last_checkpoint(tmp_path))
    resuming_took = resume_timed([*fit_args, "--trainer.max_epochs=2", "--test_after_fit=false"])
    assert an_hour_in < RunRecord.read(run_dir(tmp_path)).wall_time_s <= an_hour_in + resuming_took + 0.01


@pytest.mark.slow
def test_a_moved_run_keeps_its_best_checkpoint_record(fit_args, tmp_path):
    # lr 0: val_acc never changes, so epoch 1 stays the best; a later epoch must not take its place
    args = [*fit_args, "--model.optimizer.lr=0", "--early_stopping.patience=9"]
    with pytest.raises(SystemExit):
        main([*args, signal_at("SIGINT", "train")])
    moved = tmp_path / "elsewhere"
    (tmp_path / "runs").rename(moved)
    main([*[a.replace(str(tmp_path / "runs"), str(moved)) for a in args], "--ckpt_path=last"])
    resumed = RunRecord.read(moved / "cut" / "version_0")
    assert resumed.best_epoch == 1 and resumed.epochs == 3
    best = Path(resumed.tested_checkpoint)
    assert best.parent == moved / "cut" / "version_0" / "checkpoints" and best.is_file()
    assert load_checkpoint(best)["epoch"] + 1 == resumed.best_epoch
