"""Whole runs on synthetic data: learning, what a run leaves behind, and how it stops."""

import json
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ADAM = ["--model.optimizer=src.optim.KerasAdam", "--model.optimizer.lr=1e-3"]


def test_training_learns_the_signal(fit):
    results = fit(*ADAM, "--trainer.max_epochs=4")
    assert results["best_val_acc"] > 0.5  # chance is 0.1; an untrained model stays near it
    assert results["test_acc"] > 0.5
    assert results["history"][-1]["train_loss"] < results["history"][0]["train_loss"]


def test_fit_leaves_a_complete_run_directory(trained_run):
    results = json.loads((trained_run / "results.json").read_text())
    assert trained_run.name == "version_0" and Path(results["run_dir"]) == trained_run
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["model"]["optimizer"]["class_path"] == "src.optim.KerasAdam"
    # the whole truth: the callbacks every run gets are in it too
    assert config["run_results"]["class_path"] == "src.callbacks.run_results.RunResults"
    assert config["tensorboard_hparams"]["class_path"] == "src.callbacks.tensorboard_hparams.TensorBoardHparams"
    assert config["divergence"]["check_every_n_steps"] == 10 and "last_checkpoint" in config
    checkpoints = {p.name for p in (trained_run / "checkpoints").iterdir()}
    assert "last.ckpt" in checkpoints and any(name.startswith("best-") for name in checkpoints)

    events = EventAccumulator(str(trained_run))
    events.Reload()
    val_acc = [event.value for event in events.Scalars("val_acc")]
    assert val_acc == pytest.approx([h["val_acc"] for h in results["history"]])
    assert {"train_loss", "train_acc", "val_loss", "test_acc", "test_loss"} <= set(events.Tags()["scalars"])
    assert any(tag.startswith("lr-") for tag in events.Tags()["scalars"])


def test_run_name_defaults_to_the_config_name(fit, tmp_path):
    config = tmp_path / "my_experiment.yaml"
    config.write_text("model:\n  decay: 1.0e-6\n")
    results = fit(f"--config={config}", "--trainer.max_epochs=1")
    assert Path(results["run_dir"]).parent.name == "my_experiment"


@pytest.mark.parametrize("keras_patience,epochs", [(False, 3), (True, 4)])
def test_early_stopping_ends_a_run_that_stopped_improving(fit, keras_patience, epochs):
    # lr 0: val_acc never changes, so epoch 1 stays the best. Lightning stops `patience` epochs
    # later; Keras 2.0.x, which the notebook ran, one epoch after that.
    results = fit(
        "--model.optimizer=torch.optim.SGD",
        "--model.optimizer.lr=0",
        "--early_stopping.patience=2",
        f"--early_stopping.keras_patience={keras_patience}",
    )
    assert results["stop_reason"] == "early_stopping"
    assert results["epochs"] == epochs
    assert results["best_epoch"] == 1


def test_bf16_mixed_precision_trains_through_the_cli(fit):
    results = fit(*ADAM, "--trainer.max_epochs=1", "--trainer.precision=bf16-mixed")
    assert results["hparams"]["precision"] == "bf16-mixed"
    assert results["best_val_acc"] > 0.5
