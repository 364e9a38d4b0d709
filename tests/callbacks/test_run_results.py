"""results.json: what a run measured, and what a reader needs to trust it (data, precision,
device, code), written by the RunResults callback."""

import json
import logging
from pathlib import Path

import pytest
import torch

from src.results import RunRecord

RESULT_KEYS = {
    "config", "hparams", "epochs", "stop_reason", "best_val_acc", "best_epoch",
    "test_loss", "test_acc", "wall_time_s", "train_images_per_s",
}


def test_results_say_what_trained_how_long_and_how_well(trained_run):
    results = json.loads((trained_run / "results.json").read_text())
    assert RESULT_KEYS <= set(results) and results["schema_version"] == 2
    assert results["epochs"] == 2 and results["stop_reason"] == "max_epochs"
    assert results["hparams"]["optimizer"] == "src.optim.KerasAdam"
    assert results["hparams"]["optimizer_args"]["lr"] == 1e-3
    assert {"decay", "batch_size", "loss", "seed", "val_split"} <= set(results["hparams"])
    assert results["best_val_acc"] == max(h["val_acc"] for h in results["history"])
    assert results["train_images_per_s"] > 0


def test_results_say_on_what_data_and_machine_the_run_trained(trained_run):
    results = json.loads((trained_run / "results.json").read_text())
    data = results["data"]
    assert data["train_images"] + data["val_images"] == 600  # the synthetic folder's 60 per class
    assert data["val_images"] == 100 and data["test_images"] == 100
    assert data["validates_on_test"] is False
    assert (results["val_images_evaluated"], results["test_images_evaluated"]) == (100, 100)  # every image
    assert Path(data["source"]).name.startswith("cifar10-synthetic")
    environment = results["environment"]
    assert (environment["device"], environment["precision"]) == ("cpu", "32-true")
    assert environment["torch"] and environment["pytorch_lightning"]


def test_each_epoch_records_the_lr_it_ended_on_with_the_compiled_update_too(fit):
    # the compiled update keeps lr in a tensor that the decay fills in place, epoch after epoch
    args = ("--model.decay=0.01", "--trainer.max_epochs=2", "--trainer.limit_train_batches=3")
    eager, compiled = ([epoch["lr"] for epoch in fit(*args, f"--model.compile_update={on}")["history"]]
                       for on in ("false", "true"))
    assert all(isinstance(lr, float) for lr in compiled) and compiled[0] > compiled[1]
    assert compiled == pytest.approx(eager)


def test_the_tested_checkpoint_is_named_by_the_epoch_results_call_best(trained_run):
    results = json.loads((trained_run / "results.json").read_text())
    assert (trained_run / results["best_checkpoint"]).is_file()
    # checkpoint names count epochs as results.json does, from 1
    assert Path(results["tested_checkpoint"]).name.startswith(f"best-epoch{results['best_epoch']:03d}-")


def test_a_record_a_full_disk_cannot_take_at_the_end_still_names_a_checkpoint_on_disk(small_disk, second_epoch):
    fill = ('--trainer.callbacks+={"class_path": "tests.faults.FillDiskAt", '
            f'"init_args": {{"disk": "{small_disk.path}"}}}}')
    run = second_epoch(small_disk.path, fill)
    assert run.code == 2 and run.err.count("error:") == 1 and "Traceback" not in run.err, run.err
    assert f"error: Cannot write {run.run_dir / 'results.json'} (no space left on the device)" in run.err
    # as the second epoch began: the second epoch's checkpoint replaced the first's, which stays while named
    record = RunRecord.read(run.run_dir)
    assert (record.stop_reason, record.epochs, record.best_epoch) == ("running", 1, 1)
    assert (run.run_dir / record.best_checkpoint).is_file()


@pytest.mark.parametrize("added_threads", [0, 1])
def test_a_resume_on_other_cpu_threads_warns_that_the_run_will_not_repeat_exactly(
        second_epoch, tmp_path, caplog, added_threads):
    trained_on = torch.get_num_threads()
    try:
        with caplog.at_level(logging.WARNING, logger="src"):
            run = second_epoch(tmp_path, after_copy=lambda: torch.set_num_threads(trained_on + added_threads))
    finally:
        torch.set_num_threads(trained_on)
    said = [r.getMessage() for r in caplog.records if "CPU threads" in r.getMessage()]
    assert run.code == 0
    assert json.loads((run.run_dir / "results.json").read_text())["environment"]["threads"] == trained_on + added_threads
    if added_threads:
        assert said == [
            f"warning: resuming on {trained_on + 1} CPU threads, where the run trained on {trained_on}: sums come out "
            "in another order, so from here the run will not repeat, bit for bit, the one it would have been without "
            f"the stop. To resume it exactly, start it with OMP_NUM_THREADS={trained_on}."]
    else:
        assert said == []
