from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

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


class ScriptedScores(pl.LightningModule):
    """Validates to the next of ``scores`` each epoch; its one weight counts the training steps, so the
    weights a stage starts from say which epoch they are from."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.scores, self.weight, self.weights_at_epoch_start = scores, torch.nn.Parameter(torch.zeros(1)), []

    def on_train_epoch_start(self) -> None:
        self.weights_at_epoch_start.append(int(self.weight))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        with torch.no_grad():
            self.weight += 1

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val_acc", self.scores[self.current_epoch])

    def configure_optimizers(self) -> dict:
        optimizer = KerasAdam(self.parameters(), lr=1e-3)
        return {"optimizer": optimizer, "lr_scheduler": keras_decay(optimizer, decay=0.0)}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.zeros(1, 1)))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.zeros(1, 1)))


@pytest.mark.parametrize("check_on_train_epoch_end", [False, True], ids=["on_validation_end", "on_train_epoch_end"])
@pytest.mark.parametrize("keras_patience", [False, True])
def test_a_stage_starts_from_the_best_weights_where_lightning_would_stop_and_the_last_stage_stops(
    tmp_path, check_on_train_epoch_end, keras_patience
):
    scores = [0.5, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6]  # the best at epoch 2, then nothing better
    callback = StagedEarlyStopping(monitor="val_acc", mode="max", patience=1, keras_patience=keras_patience,
                                   lr_stages=2, check_on_train_epoch_end=check_on_train_epoch_end)
    model = ScriptedScores(scores)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, max_epochs=len(scores),
                         callbacks=[callback], default_root_dir=tmp_path)
    trainer.fit(model)
    patience = 2 if keras_patience else 1
    stage_start = 2 + patience  # the epoch after the one that ran out of patience
    assert model.weights_at_epoch_start[stage_start] == 2  # the second epoch's weights: the best
    assert model.weights_at_epoch_start[:stage_start] == list(range(stage_start))
    assert trainer.current_epoch == stage_start + patience  # stopped once the last stage ran out of patience
    assert callback.stage == 2 and callback.stopped_epoch == stage_start + patience - 1
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-4)
