"""While a run trains: one line per epoch."""

import logging
from types import SimpleNamespace

from src.callbacks.console import EpochLog


def test_one_line_per_epoch_without_a_progress_bar(fit, caplog):
    with caplog.at_level(logging.INFO, logger="src"):
        results = fit("--trainer.max_epochs=2")  # the synthetic runs switch the progress bar off
    lines = [r.getMessage() for r in caplog.records if r.name == "src.callbacks.console"]
    assert [line.split(" - ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    for line, epoch in zip(lines, results["history"]):
        assert f"val_acc {epoch['val_acc']:.4f}" in line and f"train_loss {epoch['train_loss']:.4f}" in line
        assert " s - " in line and "lr " in line


def test_an_epoch_resumed_midway_says_its_time_is_only_since_resuming(caplog):
    trainer = SimpleNamespace(is_global_zero=True, sanity_checking=False, current_epoch=21, max_epochs=300,
                              callback_metrics={}, optimizers=[])
    epoch_log = EpochLog()
    with caplog.at_level(logging.INFO, logger="src"):
        epoch_log.on_train_start(trainer, None)  # a resumed epoch: no on_train_epoch_start
        epoch_log.on_train_epoch_end(trainer, None)
        trainer.current_epoch = 22
        epoch_log.on_train_epoch_start(trainer, None)
        epoch_log.on_train_epoch_end(trainer, None)
    resumed, whole = [r.getMessage() for r in caplog.records]
    assert resumed.startswith("epoch 22/300 - 0 s since resuming")
    assert whole == "epoch 23/300 - 0 s"
