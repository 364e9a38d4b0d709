"""Whole runs on synthetic data: learning, what a run leaves behind, and how it stops."""

from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from src.callbacks.tensorboard_hparams import column_name

RESULT_KEYS = {
    "config", "hparams", "epochs", "stop_reason", "best_val_acc", "best_epoch",
    "test_loss", "test_acc", "wall_time_s", "train_images_per_s",
}
ADAM = ["--model.optimizer=src.optim.KerasAdam", "--model.optimizer.lr=1e-3"]


def test_training_learns_the_signal(fit):
    results = fit(*ADAM, "--trainer.max_epochs=4")
    assert results["best_val_acc"] > 0.5  # chance is 0.1; an untrained model stays near it
    assert results["test_acc"] > 0.5
    assert results["history"][-1]["train_loss"] < results["history"][0]["train_loss"]


def test_fit_leaves_a_complete_run_directory(fit):
    results = fit(*ADAM, "--trainer.max_epochs=2", "--run_name=my_run", "--trainer.log_every_n_steps=5")
    run_dir = Path(results["run_dir"])
    assert run_dir.parent.name == "my_run" and run_dir.name == "version_0"
    assert RESULT_KEYS <= set(results)
    assert results["epochs"] == 2 and results["stop_reason"] == "max_epochs"
    assert results["hparams"]["optimizer"] == "src.optim.KerasAdam"
    assert results["hparams"]["optimizer_args"]["lr"] == 1e-3
    assert {"decay", "batch_size", "loss", "seed", "val_split"} <= set(results["hparams"])
    assert results["best_val_acc"] == max(h["val_acc"] for h in results["history"])
    assert results["train_images_per_s"] > 0

    # what a reader needs to trust the number: data, precision, device, code
    assert results["schema_version"] == 2
    assert results["data"]["train_images"] + results["data"]["val_images"] == 600  # 60 per class
    assert results["data"]["val_images"] == 100 and results["data"]["test_images"] == 100
    assert results["data"]["validates_on_test"] is False
    assert Path(results["data"]["source"]).name.startswith("cifar10-synthetic")
    environment = results["environment"]
    assert (environment["device"], environment["precision"]) == ("cpu", "32-true")
    assert environment["torch"] and environment["pytorch_lightning"]
    assert (run_dir / results["best_checkpoint"]).is_file()

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["optimizer"]["class_path"] == "src.optim.KerasAdam"
    # the whole truth: the callbacks every run gets are in it too
    assert config["run_results"]["class_path"] == "src.callbacks.run_results.RunResults"
    assert config["tensorboard_hparams"]["class_path"] == "src.callbacks.tensorboard_hparams.TensorBoardHparams"
    assert config["divergence"]["check_every_n_steps"] == 10 and "last_checkpoint" in config
    checkpoints = {p.name for p in (run_dir / "checkpoints").iterdir()}
    assert "last.ckpt" in checkpoints and any(name.startswith("best-") for name in checkpoints)
    # checkpoint names count epochs as results.json does, from 1
    assert Path(results["tested_checkpoint"]).name.startswith(f"best-epoch{results['best_epoch']:03d}-")

    events = EventAccumulator(str(run_dir))
    events.Reload()
    val_acc = [event.value for event in events.Scalars("val_acc")]
    assert val_acc == pytest.approx([h["val_acc"] for h in results["history"]])
    assert {"train_loss", "train_acc", "val_loss", "test_acc", "test_loss"} <= set(events.Tags()["scalars"])
    assert any(tag.startswith("lr-") for tag in events.Tags()["scalars"])

    # the HPARAMS tab: hyperparameters beside the final metrics, and no stray hp_metric
    assert "hp_metric" not in events.Tags()["scalars"]
    assert events.Scalars("hp/test_acc")[-1].value == pytest.approx(results["test_acc"])
    assert events.Scalars("hp/best_val_acc")[-1].value == pytest.approx(results["best_val_acc"])
    assert len(events.Scalars("test_acc")) == 1  # the contract's own series is left alone
    summaries = {
        tag: plugin_data_pb2.HParamsPluginData.FromString(content)
        for tag, content in events.PluginTagToContent("hparams").items()  # the first of each tag: what TB reads
    }
    experiment = summaries["_hparams_/experiment"].experiment
    metric_tags = [info.name.tag for info in experiment.metric_infos]
    assert metric_tags[:2] == ["hp/test_acc", "hp/best_val_acc"] and "hp/test_loss" in metric_tags
    hparams = summaries["_hparams_/session_start_info"].session_start_info.hparams
    assert hparams[column_name("optimizer")].string_value == "src.optim.KerasAdam"
    assert hparams[column_name("lr")].number_value == pytest.approx(1e-3)
    assert hparams["stop_reason"].string_value == "max_epochs"


def test_hparams_table_leads_with_what_experiments_vary(fit):
    results = fit(*ADAM, "--trainer.max_epochs=1", "--test_after_fit=false")
    events = EventAccumulator(results["run_dir"])
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/experiment"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    names = [info.name for info in experiment.hparam_infos]
    assert names == sorted(names)  # TensorBoard 2.15+ sorts the columns by name; older ones keep this order
    columns = [info.display_name for info in experiment.hparam_infos]
    # declared even though Adam has no momentum: TensorBoard takes every run's columns from one run
    assert columns[:7] == ["optimizer", "lr", "decay", "momentum", "nesterov", "loss", "seed"]
    assert {"config", "batch_size", "betas"} <= set(columns)
    assert not {"data_dir", "source", "download", "channels_last", "compile", "foreach"} & set(columns)


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
