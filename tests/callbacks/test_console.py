"""While a run trains: one line per epoch."""

import logging



def test_one_line_per_epoch_without_a_progress_bar(fit, caplog):
    with caplog.at_level(logging.INFO, logger="src"):
        results = fit("--trainer.max_epochs=2")  # the synthetic runs switch the progress bar off
    lines = [r.getMessage() for r in caplog.records if r.name == "src.callbacks.console"]
    assert [line.split(" - ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    for line, epoch in zip(lines, results["history"]):
        assert f"val_acc {epoch['val_acc']:.4f}" in line and f"train_loss {epoch['train_loss']:.4f}" in line
        assert " s - " in line and "lr " in line
