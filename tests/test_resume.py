"""Interrupting and resuming: a resumed run ends exactly where an uninterrupted one does."""

import json
import os
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from src.cli import main
from src.paths import CONFIG_DIR

EPOCHS = ["--trainer.max_epochs=2", "--trainer.deterministic=true", "--test_after_fit=false"]


class InterruptAt(pl.Callback):
    """Interrupts training after the given global step, as Ctrl-C or a cluster's SIGTERM would."""

    def __init__(self, step: int, how: str = "ctrl-c") -> None:
        self.step, self.how = step, how

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            if self.how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt


@pytest.fixture
def run(synthetic_args, tmp_path):
    def fit(*args: str) -> dict:
        main(["fit", f"--config={CONFIG_DIR / 'sgd_nesterov.yaml'}", "--model.decay=1e-3", *EPOCHS, *args, *synthetic_args])
        return latest_results(tmp_path)

    return fit


@pytest.fixture(autouse=True)
def restore_signal_handlers():
    """Lightning ignores further Ctrl-C while it shuts down; give pytest its handlers back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def latest_results(tmp_path: Path) -> dict:
    path = max((tmp_path / "runs").glob("*/*/results.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(path.read_text())


def final_weights(results: dict) -> dict[str, torch.Tensor]:
    return torch.load(Path(results["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


def interrupted(run, tmp_path, how: str, step: int) -> dict:
    interrupt = f'--trainer.callbacks+={{"class_path": "tests.test_resume.InterruptAt", "init_args": {{"step": {step}, "how": "{how}"}}}}'
    with pytest.raises(SystemExit):
        run("--run_name=interrupted", interrupt)
    return latest_results(tmp_path)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interruption_leaves_a_resumable_checkpoint(run, tmp_path, how):
    results = interrupted(run, tmp_path, how, step=20)  # mid-way through the second epoch
    assert results["stop_reason"] == "interrupted"
    checkpoint = torch.load(Path(results["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 20


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(run, tmp_path):
    uninterrupted = run("--run_name=straight")
    cut = interrupted(run, tmp_path, "ctrl-c", step=20)
    resumed = run("--run_name=interrupted", "--ckpt_path=last")
    assert resumed["wall_time_s"] > cut["wall_time_s"]  # the clock goes on across the interruption
    assert resumed["run_dir"] == str(tmp_path / "runs" / "interrupted" / "version_0")  # same run, continued
    assert resumed["stop_reason"] == "max_epochs" and resumed["epochs"] == 2
    expected, actual = final_weights(uninterrupted), final_weights(resumed)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)
    for resumed_epoch, straight_epoch in zip(resumed["history"], uninterrupted["history"], strict=True):
        assert resumed_epoch == pytest.approx(straight_epoch)  # epoch means include the pre-interrupt steps


def test_resume_without_an_earlier_run_is_refused(run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run("--run_name=never_ran", "--ckpt_path=last")
    assert exit_info.value.code == 2
    assert "--ckpt_path last found no run to resume" in capsys.readouterr().err
