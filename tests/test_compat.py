"""The private library APIs of src/compat.py, each on a real library object doing what the project
relies on it for: an upgrade that moves one fails here, by name. And no private access elsewhere."""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import inspect
import re
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import optuna
import pytest
import pytorch_lightning as pl
import torch
from jsonargparse import ArgumentParser
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.cli import LightningArgumentParser, OptimizerCallable
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from src import compat

ROOT = Path(__file__).resolve().parents[1]


class Tiny(pl.LightningModule):
    """One weight, four training batches an epoch, and a validation ``score`` that improves every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("score", float(self.current_epoch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)


def tiny_trainer(tmp_path: Path, **kwargs: Any) -> pl.Trainer:
    settings = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                    enable_checkpointing=False, max_epochs=1, default_root_dir=tmp_path)
    return pl.Trainer(**{**settings, **kwargs})


class OnHooks(pl.Callback):
    """Calls ``on_batch(trainer, batch_idx)`` after each training batch and ``on_epoch(trainer)`` after each epoch."""

    def __init__(self, on_batch: Callable[[pl.Trainer, int], None] = lambda *_: None,
                 on_epoch: Callable[[pl.Trainer], None] = lambda _: None) -> None:
        self.on_batch, self.on_epoch = on_batch, on_epoch

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.on_batch(trainer, batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.on_epoch(trainer)


# argparse ------------------------------------------------------------------------------------------------


def test_option_strings_are_every_flag_the_parser_takes():
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--seeds", "-s")
    assert {"--seeds", "-s", "--help", "-h"} == set(compat.option_strings(parser))


def test_parser_actions_are_the_arguments_it_parses_with():
    parser = argparse.ArgumentParser()
    seeds = parser.add_argument("--seeds", type=int)
    assert seeds in compat.parser_actions(parser)
    assert [a.dest for a in compat.parser_actions(parser)] == ["help", "seeds"]


# jsonargparse --------------------------------------------------------------------------------------------


def test_type_hint_is_the_type_an_argument_declares_and_none_for_an_untyped_one():
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--optimizer", type=OptimizerCallable)  # what the module's optimizer takes
    hints = {action.dest: compat.type_hint(action) for action in compat.parser_actions(parser)}
    assert hints["optimizer"] == OptimizerCallable
    assert hints["help"] is None


def test_check_every_parse_sees_each_parse_before_it_is_used_and_can_refuse_it(tmp_path):
    seen = []

    class Recording(compat.CheckEveryParse, LightningArgumentParser):  # a class's init_args get one of these too
        def check_values(self, cfg: Any) -> None:
            seen.append(cfg.as_dict())
            if cfg.get("lr") == 13.0:
                raise TypeError("lr: 13 is unlucky")

    parser = Recording(exit_on_error=False)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--dropout", type=torch.nn.Module)
    assert parser.parse_args(["--lr=0.5"]).lr == 0.5
    assert seen[-1]["lr"] == 0.5
    config = tmp_path / "config.yaml"
    config.write_text("lr: 0.25\n")
    parser.parse_path(config)
    assert seen[-1]["lr"] == 0.25
    parser.parse_args(['--dropout={"class_path": "torch.nn.Dropout", "init_args": {"p": 0.75}}'])
    assert any(values.get("p") == 0.75 for values in seen)  # the class's own arguments, parsed by a parser of theirs
    with pytest.raises(argparse.ArgumentError, match="lr: 13 is unlucky"):
        parser.parse_args(["--lr=13"])


# Lightning -----------------------------------------------------------------------------------------------


class Kept(compat.RemoveReplacedLater, ModelCheckpoint):
    def replaced(self, trainer: pl.Trainer, filepath: str) -> None:
        self.kept = [*getattr(self, "kept", []), filepath]


@pytest.mark.parametrize("kind", [Kept, type("Removed", (compat.RemoveReplacedLater, ModelCheckpoint), {})])
def test_a_checkpoint_a_better_one_replaces_goes_to_replaced_which_by_default_removes_it(tmp_path, kind):
    checkpoint = kind(dirpath=tmp_path / "checkpoints", filename="{epoch}", monitor="score", mode="max", save_top_k=1)
    tiny_trainer(tmp_path, max_epochs=3, limit_train_batches=1, enable_checkpointing=True,
                 callbacks=[checkpoint]).fit(Tiny())
    on_disk = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    if kind is Kept:
        assert [Path(p).name for p in checkpoint.kept] == ["epoch=0.ckpt", "epoch=1.ckpt"]
        assert on_disk == ["epoch=0.ckpt", "epoch=1.ckpt", "epoch=2.ckpt"]
    else:
        assert on_disk == ["epoch=2.ckpt"]


def test_leaves_finished_bars_is_the_progress_bars_leave_argument():
    assert compat.leaves_finished_bars(TQDMProgressBar(leave=True))
    assert not compat.leaves_finished_bars(TQDMProgressBar())


def test_batches_done_counts_the_epochs_batches_used_so_far(tmp_path):
    seen = []
    hooks = OnHooks(on_batch=lambda trainer, batch_idx: seen.append((batch_idx, compat.batches_done(trainer))),
                    on_epoch=lambda trainer: seen.append(("end", compat.batches_done(trainer))))
    tiny_trainer(tmp_path, max_epochs=2, callbacks=[hooks], limit_val_batches=0).fit(Tiny())
    assert seen == [(0, 1), (1, 2), (2, 3), (3, 4), ("end", 4)] * 2  # the count starts again each epoch


def test_saved_at_epoch_end_tells_an_epochs_end_from_within_it(tmp_path):
    def save(name: str) -> Callable[..., None]:
        return lambda trainer, *_: trainer.save_checkpoint(tmp_path / name)

    hooks = OnHooks(on_batch=lambda trainer, batch_idx: batch_idx == 1 and save("within.ckpt")(trainer),
                    on_epoch=save("end.ckpt"))
    tiny_trainer(tmp_path, callbacks=[hooks], limit_val_batches=0).fit(Tiny())
    assert compat.saved_at_epoch_end(torch.load(tmp_path / "end.ckpt", weights_only=False))
    assert not compat.saved_at_epoch_end(torch.load(tmp_path / "within.ckpt", weights_only=False))


def test_set_max_epochs_makes_a_built_trainer_fit_that_many_epochs(tmp_path):
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0)
    compat.set_max_epochs(trainer, 3)
    trainer.fit(Tiny())
    assert trainer.max_epochs == 3 and trainer.current_epoch == 3


@pytest.mark.parametrize("limit", [1.0, 0.5, 3, 1])
def test_limited_batches_are_those_lightning_evaluates(tmp_path, limit):
    trainer = tiny_trainer(tmp_path, limit_val_batches=limit)
    model = Tiny()
    model.val_dataloader = lambda: DataLoader(TensorDataset(torch.randn(20, 2)), batch_size=2)  # 10 batches
    trainer.validate(model, verbose=False)
    assert compat.limited_batches("val", 10, limit) == trainer.num_val_batches[0]
    assert compat.limited_batches("test", 10, limit) == trainer.num_val_batches[0]


def test_limited_batches_refuses_a_fraction_that_leaves_none():
    with pytest.raises(MisconfigurationException, match="limit_val_batches"):
        compat.limited_batches("val", 3, 0.1)


# torch's TensorBoard writer ------------------------------------------------------------------------------


def test_event_file_writer_writes_into_the_runs_own_event_file_even_after_it_was_closed(tmp_path):
    experiment = SummaryWriter(tmp_path)
    experiment.add_scalar("loss", 1.0, 0)
    experiment.close()  # as Lightning's logger does when a fit ends
    compat.event_file_writer(experiment).add_summary(hparams({"lr": 0.1}, {"hp/acc": 0.5})[0])
    experiment.close()
    files = sorted(tmp_path.iterdir())
    assert all(f.is_file() and f.name.startswith("events.out.tfevents.") for f in files)  # no folder of its own
    plugins = [value.metadata.plugin_data.plugin_name for file in files for event in EventFileLoader(str(file)).Load()
               for value in event.summary.value]
    assert plugins.count("hparams") == 1


# Optuna --------------------------------------------------------------------------------------------------


def test_trial_heartbeat_beats_for_its_trial_while_entered_and_stops_after(tmp_path, monkeypatch):
    with warnings.catch_warnings():  # the heartbeat is experimental, and meant for Study.optimize
        warnings.simplefilter("ignore")
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1)
        trial = optuna.create_study(storage=storage).ask()
    beats, beat = [], threading.Event()
    monkeypatch.setattr(storage, "record_heartbeat", lambda trial_id: (beats.append(trial_id), beat.set()))
    with compat.trial_heartbeat(42, storage):
        while len(beats) < 2:  # one as it starts, another a second later
            assert beat.wait(timeout=30)
            beat.clear()
    assert set(beats) == {42}
    assert not beat.wait(timeout=1.5)  # none since it was left
    del trial


def test_trial_heartbeat_does_nothing_for_a_storage_without_one():
    storage = optuna.storages.InMemoryStorage()
    with compat.trial_heartbeat(0, storage):
        pass


# Keras -----------------------------------------------------------------------------------------------------


def test_keras_variable_index_finds_a_variables_slots(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")  # the [peer] extra; CI runs without it
    first, second = keras.Variable([1.0, 2.0]), keras.Variable([3.0])
    optimizer = keras.optimizers.SGD(momentum=0.5)
    optimizer.build([first, second])
    assert compat.keras_variable_index(optimizer, second) == 1 and compat.keras_variable_index(optimizer, first) == 0


# no private access elsewhere -----------------------------------------------------------------------------

# Lightning's loop internals: not underscored, but neither documented nor kept stable.
LOOP_INTERNALS = {"fit_loop", "epoch_loop", "batch_progress", "epoch_progress"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own_module(module: str | None) -> bool:
    return module is None or module.split(".")[0] in ("src", "scripts", "__future__")


@functools.cache
def _source(cls: type) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return ""


def _library_mentions(cls: type, name: str) -> bool:
    """Whether a library's class among ``cls``'s bases defines or uses ``name``."""
    return any(name in vars(base) or re.search(rf"\bself\.{name}\b", _source(base))
               for base in cls.__mro__[1:] if not _own_module(base.__module__) and base is not object)


def own_names(sources: list[str]) -> set[str]:
    """The names the project's code defines or assigns: its own ``_``-names are no library's."""
    nodes = [node for source in sources for node in ast.walk(ast.parse(source))]
    return ({n.name for n in nodes if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            | {n.attr for n in nodes if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)}
            | {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)})


def private_accesses(source: str, module: ModuleType | None, own: set[str]) -> list[str]:
    """``line name`` for each private name of a library that ``source`` (of ``module``, if imported)
    reaches: imported from a ``_``-module or by a ``_``-name; an ``_``-attribute of a library's object,
    or through ``self`` or ``super()`` of a library's class; an override of a library class's
    ``_``-method; Lightning's loop internals, as attributes or checkpoint keys."""
    found = []

    def visit(node: ast.AST, cls: type | None) -> None:
        if isinstance(node, ast.ClassDef):
            cls = getattr(module, node.name, None)  # None for a class defined in a function
        name = None
        if isinstance(node, ast.ImportFrom) and not _own_module(node.module):
            name = node.module if any(map(_private, node.module.split("."))) else next(
                (alias.name for alias in node.names if _private(alias.name)), None)
        elif isinstance(node, ast.Import):
            name = next((alias.name for alias in node.names if any(map(_private, alias.name.split(".")))), None)
        elif isinstance(node, ast.Attribute) and (_private(node.attr) or node.attr in LOOP_INTERNALS):
            receiver = node.value
            by_self = (isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")) or (
                isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name) and receiver.func.id == "super")
            if node.attr in LOOP_INTERNALS or (
                    _library_mentions(cls, node.attr) if by_self and cls else node.attr not in own):
                name = node.attr
        elif isinstance(node, ast.FunctionDef) and cls and _private(node.name) and _library_mentions(cls, node.name):
            name = node.name
        elif isinstance(node, ast.Constant) and node.value in LOOP_INTERNALS:
            name = repr(node.value)
        if name:
            found.append(f"{node.lineno} {name}")
        for child in ast.iter_child_nodes(node):
            visit(child, cls)

    visit(ast.parse(source), None)
    return found


def test_private_library_apis_are_reached_only_in_compat():
    files = sorted({*ROOT.glob("src/**/*.py"), *ROOT.glob("scripts/*.py")} - {ROOT / "src" / "compat.py"})
    sources = {path.relative_to(ROOT): path.read_text() for path in files}
    own = own_names(list(sources.values()))
    found = [
        f"{path}:{access}" for path, source in sources.items()
        for access in private_accesses(
            source, importlib.import_module(".".join(path.with_suffix("").parts)) if path.parts[0] == "src" else None,
            own)
    ]
    assert not found, "private library APIs outside src/compat.py (fence them there):\n" + "\n".join(found)


EXAMPLE = """
from optuna.storages._heartbeat import get_heartbeat_thread
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.connectors.data_connector import _parse_num_batches


class Best(ModelCheckpoint):
    def _remove_checkpoint(self, trainer, filepath):
        self._mine = filepath

    def save(self, trainer):
        super().save(trainer)
        self._save_checkpoint(trainer, self._mine)


def f(parser, trainer, checkpoint, own):
    own._mine = 1
    return parser._actions, own._mine, trainer.fit_loop, checkpoint["loops"]["fit_loop"]
"""


def test_the_check_finds_each_kind_of_private_access(tmp_path):
    path = tmp_path / "example.py"
    path.write_text(EXAMPLE)
    spec = importlib.util.spec_from_file_location("example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert private_accesses(EXAMPLE, module, own_names([EXAMPLE])) == [
        "2 optuna.storages._heartbeat", "4 _parse_num_batches", "8 _remove_checkpoint", "13 _save_checkpoint",
        "18 _actions", "18 fit_loop", "18 'fit_loop'",
    ]
