"""TensorBoard's HPARAMS tab: each run's hyperparameters beside its final metrics, in columns that
lead with what the experiments vary."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from src.callbacks.tensorboard_hparams import column_name


@pytest.fixture(scope="module")
def hparams(trained_run):
    """The run's events, its results.json and its HPARAMS summaries (the first of each tag: what TensorBoard reads)."""
    events = EventAccumulator(str(trained_run))
    events.Reload()
    summaries = {
        tag: plugin_data_pb2.HParamsPluginData.FromString(content)
        for tag, content in events.PluginTagToContent("hparams").items()
    }
    return events, json.loads((trained_run / "results.json").read_text()), summaries


def test_the_final_metrics_stand_beside_the_hyperparameters(hparams):
    events, results, summaries = hparams
    assert "hp_metric" not in events.Tags()["scalars"]  # no stray placeholder metric
    assert events.Scalars("hp/test_acc")[-1].value == pytest.approx(results["test_acc"])
    assert events.Scalars("hp/best_val_acc")[-1].value == pytest.approx(results["best_val_acc"])
    assert len(events.Scalars("test_acc")) == 1  # the contract's own series is left alone
    metric_tags = [info.name.tag for info in summaries["_hparams_/experiment"].experiment.metric_infos]
    assert metric_tags[:2] == ["hp/test_acc", "hp/best_val_acc"] and "hp/test_loss" in metric_tags
    run = summaries["_hparams_/session_start_info"].session_start_info.hparams
    assert run[column_name("optimizer")].string_value == "src.optim.KerasAdam"
    assert run[column_name("lr")].number_value == pytest.approx(1e-3)
    assert run["stop_reason"].string_value == "max_epochs"


def test_the_table_leads_with_what_experiments_vary(hparams):
    _, _, summaries = hparams
    infos = summaries["_hparams_/experiment"].experiment.hparam_infos
    names = [info.name for info in infos]
    assert names == sorted(names)  # TensorBoard 2.15+ sorts the columns by name; older ones keep this order
    columns = [info.display_name for info in infos]
    # declared even though Adam has no momentum: TensorBoard takes every run's columns from one run
    assert columns[:7] == ["optimizer", "lr", "decay", "momentum", "nesterov", "loss", "seed"]
    assert {"config", "batch_size", "betas"} <= set(columns)
    assert not {"data_dir", "source", "download", "channels_last", "compile", "foreach"} & set(columns)
