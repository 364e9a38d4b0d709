"""The training module: the fixed CNN plus everything an experiment varies around it."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat
from pytorch_lightning.cli import OptimizerCallable
from torch import Tensor
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from src.compat import saved_at_epoch_end
from src.errors import UserInputError
from src.losses import LossName, build_loss
from src.model import NUM_CLASSES, ByteMaskDropout, KerasCifarCNN
from src.optim import KerasRMSprop, compile_update, keras_decay

STAGES = ("train", "val", "test")


class CifarClassifier(pl.LightningModule):
    """Trains :class:`KerasCifarCNN` with the optimizer, decay and loss an experiment names.

    Logs ``{train,val,test}_{loss,acc}`` once per epoch; those names are the contract that
    configs, callbacks and reports rely on.

    Args:
        optimizer: any ``torch.optim`` optimizer (or one of ``src.optim``'s Keras forms),
            given in YAML as ``class_path`` plus ``init_args``.
        decay: Keras' legacy per-update decay, ``lr_t = lr / (1 + decay·t)``.
        loss: the loss function, see :mod:`src.losses`.
        label_smoothing: for ``loss: cross_entropy`` only.
        channels_last: NHWC memory layout, faster for convolutions on CPU and GPU alike.
        compile: run the network through ``torch.compile`` (slow first steps, faster later).
        fast_dropout: draw the CPU dropout masks from random bytes
            (:class:`~src.model.ByteMaskDropout`): the same dropout, faster steps, other masks
            for a seed than the default's.
        compile_update: fuse the optimizer's update with ``torch.compile``
            (:func:`~src.optim.compile_update`): faster steps, equal to float rounding.
    """

    def __init__(
        self,
        optimizer: OptimizerCallable = KerasRMSprop,
        decay: NonNegativeFloat = 0.0,
        loss: LossName = "cross_entropy",
        label_smoothing: ClosedUnitInterval = 0.0,
        channels_last: bool = True,
        compile: bool = False,
        fast_dropout: bool = False,
        compile_update: bool = False,
    ) -> None:
        super().__init__()
        _check_optimizer(optimizer)
        self.save_hyperparameters(ignore=["optimizer"])
        self.optimizer_factory = optimizer
        self.loss_fn = build_loss(loss, label_smoothing)
        self.net = KerasCifarCNN(dropout=ByteMaskDropout if fast_dropout else torch.nn.Dropout)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.example_input_array = torch.zeros(1, 3, 32, 32)
        self.metrics = _epoch_metrics()
        self._logged_this_epoch: set[str] = set()

    def configure_model(self) -> None:
        if self.hparams.compile:
            self.net.compile()  # in place: parameter names, and so checkpoints, stay the same

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.loss_fn(logits, labels)
        # one copy of the batch mean per image: a per-image mean over the epoch (Keras' figure)
        self.metrics[f"{stage}_loss"].update(loss.detach().expand(len(labels)))
        self.metrics[f"{stage}_acc"].update(logits.detach(), labels)
        self._log_epoch_metrics(stage)
        return loss

    def _log_epoch_metrics(self, stage: str) -> None:
        # Logged once per epoch, by its first step: Lightning keeps the metric objects, computes
        # them as the epoch ends and resets them. A self.log at every step costs more Python than
        # the metric updates themselves. (Not in on_train_epoch_start: an epoch resumed midway
        # does not run it.)
        if stage in self._logged_this_epoch:
            return
        self._logged_this_epoch.add(stage)
        for name in ("loss", "acc"):
            self.log(f"{stage}_{name}", self.metrics[f"{stage}_{name}"], on_step=False, on_epoch=True)

    def on_train_epoch_end(self) -> None:
        self._logged_this_epoch.discard("train")

    def on_validation_epoch_end(self) -> None:
        self._logged_this_epoch.discard("val")

    def on_test_epoch_end(self) -> None:
        self._logged_this_epoch.discard("test")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = _rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if saved_at_epoch_end(checkpoint):  # its training means are the finished epoch's
            _reset_train_means(self.metrics, checkpoint["state_dict"])
        _restore_rng_states(checkpoint.get("rng_states", {}))

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(self.parameters())
        return _optimization(optimizer, self.hparams.decay, self.hparams.compile_update)


def _epoch_metrics() -> torch.nn.ModuleDict:
    """``{train,val,test}_{loss,acc}``: the means over an epoch's images, kept in checkpoints so that
    a run resumed mid-epoch reports the same epoch means."""
    metrics = torch.nn.ModuleDict(
        {
            f"{stage}_{name}": metric
            for stage in STAGES
            for name, metric in (
                # no input checks: they cost a host sync every step; a NaN loss shows as a NaN mean
                ("loss", MeanMetric(nan_strategy="disable")),
                ("acc", MulticlassAccuracy(NUM_CLASSES, average="micro", validate_args=False)),
            )
        }
    )
    for metric in metrics.values():
        metric.persistent(True)
    return metrics


def _reset_train_means(metrics: torch.nn.ModuleDict, state_dict: dict[str, Any]) -> None:
    """The training means in a checkpoint's ``state_dict`` set back to empty: the next epoch starts its own."""
    for name in ("train_loss", "train_acc"):
        fresh = metrics[name].clone()
        fresh.reset()
        for state, value in fresh.metric_state.items():
            state_dict[f"metrics.{name}.{state}"] = value


def _optimization(optimizer: torch.optim.Optimizer, decay: float, fuse_update: bool) -> dict[str, Any]:
    """The optimizer (its update fused if asked) with Keras' per-step decay as a scheduler."""
    if fuse_update:
        compile_update(optimizer)
    scheduler = keras_decay(optimizer, decay)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _rng_states() -> dict[str, Any]:
    """The global RNGs, which dropout and augmentation draw from: saved with a checkpoint, a resume is exact."""
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states: dict[str, Any]) -> None:
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _check_optimizer(optimizer: OptimizerCallable) -> None:
    """Build the optimizer once on a dummy parameter, so bad arguments fail before any data work."""
    try:
        optimizer([torch.zeros(1, requires_grad=True)])
    except (ValueError, TypeError) as err:
        raise UserInputError(
            f"The optimizer cannot be built: {err}. Fix model.optimizer.init_args in the config "
            "or the --model.optimizer.* flags (learning rates and decays must be non-negative)."
        ) from err
