from types import SimpleNamespace

import pytest
import torch

from src.callbacks.early_stopping import StagedEarlyStopping
from src.optim import KerasAdam, keras_decay


def test_next_stage_restores_best_weights_lowers_lr_and_restarts_the_optimizer():
    model = torch.nn.Linear(3, 2)
    optimizer = KerasAdam(model.parameters(), lr=1e-3)
    decay = keras_decay(optimizer, decay=1e-2)
    callback = StagedEarlyStopping(monitor="val_acc", mode="max", patience=5, keras_patience=True, lr_stages=3,
                                   lr_factor=0.1)
    callback._trainer = SimpleNamespace(
        lightning_module=model, optimizers=[optimizer], lr_scheduler_configs=[SimpleNamespace(scheduler=decay)]
    )
    callback._best_weights = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(5):  # training moves on after the best epoch
        model(torch.randn(4, 3)).sum().backward()
        optimizer.step()
        decay.step()

    message = callback._next_stage()

    for name, value in model.state_dict().items():
        assert torch.equal(value, callback._best_weights[name])
    assert not optimizer.state  # fresh moments and step count, as after Keras' recompile
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)  # decay counter restarted too
    assert decay.last_epoch == 0 and decay.base_lrs == pytest.approx([1e-4])
    assert callback.stage == 2 and callback.wait_count == 0
    # patience 5 counted as Keras 2.0 did: the sixth epoch without improvement starts the stage
    assert message.startswith("val_acc did not improve for 6 epochs: learning-rate stage 2/3")


def test_stages_run_in_one_fit_and_stop_after_the_last(fit):
    # lr so small that val_acc never improves: every `patience` epochs a new stage begins
    results = fit(
        "--model.optimizer=torch.optim.SGD",
        "--model.optimizer.lr=1e-9",
        "--early_stopping.patience=1",
        "--early_stopping.keras_patience=false",
        "--early_stopping.lr_stages=3",
    )
    assert results["stop_reason"] == "early_stopping"
    assert [h["lr"] for h in results["history"]] == pytest.approx([1e-9, 1e-9, 1e-10, 1e-11])
