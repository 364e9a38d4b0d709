"""Every private API of a library that the project reaches, and nothing else.

A private name (a leading underscore, a ``_``-module, Lightning's loop internals) can change in
any release of its library. Each one the project needs is reached here only, with what it is
for, the public API that would replace it if there is one, and the version it was checked with;
``tests/test_compat.py`` exercises each on a real library object, so an upgrade that moves one
fails there, by name, and fails again if code elsewhere in ``src/`` or ``scripts/`` reaches a
private name of its own.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the libraries are imported where they are used: `src.sweep --help` needs none of them
    import argparse

    import pytorch_lightning as pl
    from jsonargparse import Namespace
    from optuna.storages import BaseStorage
    from pytorch_lightning.callbacks import TQDMProgressBar
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.writer import FileWriter

# argparse, checked with Python 3.11 -----------------------------------------------------------------


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every flag ``parser`` takes (``--help`` too), to suggest the one that an unknown or
    abbreviated flag meant. argparse's private ``_option_string_actions``; public: none (argparse
    lists its flags only inside the help text)."""
    return list(parser._option_string_actions)


def parser_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """``parser``'s arguments, to check each parsed value against its declared type. argparse's
    private ``_actions``; public: none."""
    return list(parser._actions)


# jsonargparse, checked with 4.53 ----------------------------------------------------------------------


def type_hint(action: argparse.Action) -> Any | None:
    """The type a jsonargparse argument declares (what its function or class signature says), or
    None for an untyped one. jsonargparse's ``ActionTypeHint``, of a private module, and its private
    ``_typehint``; public: none (the signature the parser read is not kept anywhere public)."""
    from jsonargparse._typehints import ActionTypeHint

    return action._typehint if isinstance(action, ActionTypeHint) else None


class CheckEveryParse:
    """Mixin for a jsonargparse ArgumentParser that shows every parse's values to :meth:`check_values`:
    a command line, a config file, a class's ``init_args``, before ``--print_config`` prints and before
    anything is validated or built. Overrides jsonargparse's private ``_parse_common``, the step every parse
    ends in; public: none (jsonargparse has no hook between reading values and using them)."""

    def check_values(self, cfg: Namespace) -> None:
        """Raise ``TypeError`` to refuse ``cfg``, which jsonargparse reports as the parse's error."""

    def _parse_common(self, cfg: Namespace, *args: Any, **kwargs: Any) -> Namespace:
        self.check_values(cfg)
        return super()._parse_common(cfg, *args, **kwargs)


# PyTorch Lightning, checked with 2.6.6 ----------------------------------------------------------------


class RemoveReplacedLater:
    """Mixin for a ModelCheckpoint that hands each checkpoint a better one replaces to :meth:`replaced`
    instead of removing it at once. Overrides ModelCheckpoint's private ``_remove_checkpoint``; public: none
    (``save_top_k`` keeps or removes, never later)."""

    def replaced(self, trainer: pl.Trainer, filepath: str) -> None:
        """What to do with ``filepath``, which a better checkpoint replaces: remove it now."""
        trainer.strategy.remove_checkpoint(filepath)

    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        self.replaced(trainer, filepath)


def leaves_finished_bars(progress_bar: TQDMProgressBar) -> bool:
    """Whether ``progress_bar`` leaves each epoch's finished bar on the screen (its ``leave``
    argument), so that an override of its epoch start opens a new bar as it does. TQDMProgressBar's
    private ``_leave``; public: none (Lightning keeps the argument only there; calling its own
    ``on_train_epoch_start`` first would print each bar once as ``Epoch 0``)."""
    return progress_bar._leave


def batches_done(trainer: pl.Trainer) -> int:
    """How many batches of the current epoch training has used: what a mid-epoch checkpoint's data
    loader skips on resume. Lightning's loop internals, ``fit_loop.epoch_loop.batch_progress``;
    public: none (a hook's ``batch_idx`` is not there when Lightning takes the loader's state)."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.processed


def saved_at_epoch_end(checkpoint: dict[str, Any]) -> bool:
    """Whether Lightning wrote ``checkpoint`` as an epoch ended (its epoch processed, not yet counted
    completed), not mid-epoch. The fit loop's state inside the checkpoint's ``loops``; public: none
    (``epoch`` and ``global_step`` are the same either way)."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    return progress.get("processed", 0) > progress.get("completed", 0)


def set_max_epochs(trainer: pl.Trainer, max_epochs: int) -> None:
    """Let an already built ``trainer`` fit up to ``max_epochs``: a stage's epochs after its checkpoint's.
    Lightning's fit loop, ``fit_loop.max_epochs``; public: only ``Trainer(max_epochs=...)`` as it is built
    (``Trainer.max_epochs`` is read-only)."""
    trainer.fit_loop.max_epochs = max_epochs


def limited_batches(split: str, batches: int, limit: int | float) -> int:
    """The batches of one rank's ``val`` or ``test`` loader of ``batches`` that
    ``--trainer.limit_{split}_batches`` ``limit`` leaves, raising as Lightning does for a fraction that
    leaves none. Lightning's private ``_parse_num_batches``; public: ``trainer.num_val_batches`` and
    ``num_test_batches``, but only for the rank's own loaders once they are set up."""
    from pytorch_lightning.trainer.connectors.data_connector import _parse_num_batches
    from pytorch_lightning.trainer.states import RunningStage

    stage = RunningStage.VALIDATING if split == "val" else RunningStage.TESTING
    return _parse_num_batches(stage, batches, limit)


# torch's TensorBoard writer, checked with torch 2.14 ---------------------------------------------------


def event_file_writer(experiment: SummaryWriter) -> FileWriter:
    """The writer of ``experiment``'s own event file (reopened if closed), for summaries that
    SummaryWriter has no method for, as Lightning's own ``log_hyperparams`` does. torch's private
    ``SummaryWriter._get_file_writer``; public: none (``add_hparams`` writes into a new folder, a
    FileWriter of one's own a second event file)."""
    return experiment._get_file_writer()


# Optuna, checked with 5.1 -----------------------------------------------------------------------------


def trial_heartbeat(trial_id: int, storage: BaseStorage) -> AbstractContextManager[Any]:
    """While it is entered, the trial records a heartbeat as often as ``storage`` asks (nothing if its
    heartbeat is off), as ``Study.optimize`` does for each of its trials. Optuna's private
    ``storages._heartbeat.get_heartbeat_thread``; public: none for ask-and-tell (a thread of one's own
    calling ``storage.record_heartbeat`` would re-write it)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial_id, storage)


# Keras, for scripts/keras_reference.py: written for 3.15, checked only where the [peer] extra is installed


def keras_variable_index(optimizer: Any, variable: Any) -> int:
    """The index of ``variable`` in the slot variables (moments, accumulators) that a Keras optimizer's
    ``build`` made, in a custom ``update_step``. Keras' private ``Optimizer._get_variable_index``, which
    its own SGD and Adam use there; public: none."""
    return optimizer._get_variable_index(variable)
