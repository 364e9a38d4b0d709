"""What may join a published directory: runs of one protocol, so that its means and comparisons
are of like with like.

A run's :class:`Protocol` is what its test accuracy depends on besides its seed: the settings
every run of the directory shares (the data, the epoch limit, the precision) and those every run
of its config shares (its hyperparameters, and how its runs stop and which epoch they test).
:func:`check_protocols` refuses, before anything is written, a run whose protocol differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from src.errors import UserInputError
from src.results import MACHINE_HPARAMS, RESULTS_FILE, RunRecord, read_record
from src.run_settings import CONFIG_FILE

# Trainer settings that cut epochs, steps or batches short: the same in every run of a published directory.
EPOCH_LIMITS = ("trainer.max_steps", "trainer.max_time", "trainer.limit_train_batches", "trainer.limit_val_batches",
                "trainer.limit_test_batches")
# Beside results.json's hparams, the config.yaml settings that decide how a config's runs train, when
# they stop and which epoch they test: the same in every run of that config.
TRAINING = (
    "trainer.accumulate_grad_batches", "trainer.gradient_clip_val", "trainer.gradient_clip_algorithm",
    "early_stopping.monitor", "early_stopping.mode", "early_stopping.patience", "early_stopping.keras_patience",
    "early_stopping.min_delta", "early_stopping.lr_stages", "early_stopping.lr_factor",
    "checkpoint.monitor", "checkpoint.mode",
)
NOT_EXPERIMENT = MACHINE_HPARAMS | {"seed", "precision"}  # precision is the directory's, seeds differ by design


@dataclass(frozen=True)
class Protocol:
    """What a run's test accuracy depends on besides its seed, by setting: ``shared`` by every run
    in a published directory (the data, the epoch limit, the precision), ``experiment`` by the runs
    of one config (the hyperparameters, and how its runs stop and which epoch they test)."""

    shared: dict[str, Any]
    experiment: dict[str, Any]


def protocol(run_dir: Path, record: RunRecord) -> Protocol:
    """The run's :class:`Protocol`, from its ``results.json`` and ``config.yaml``; a setting neither
    records (an older run's) is left out, so it is never compared."""
    config = _read_config(run_dir)
    shared: dict[str, Any] = {}
    if record.data:
        shared["data source"] = Path(str(record.data.get("source"))).name  # the same file, wherever it sat
        shared |= {f"{split} images": record.data.get(f"{split}_images") for split in ("train", "val", "test")}
        shared["validates on the test set"] = record.data.get("validates_on_test")
    precision = record.environment.get("precision") or record.hparams.get("precision")
    if precision:
        shared["precision"] = precision
    settings = _present(config, ("trainer.max_epochs", *EPOCH_LIMITS, *TRAINING))
    if "trainer.max_epochs" in settings:
        max_epochs, stages = settings["trainer.max_epochs"], settings.get("early_stopping.lr_stages", 1)
        if isinstance(max_epochs, int) and max_epochs > 0 and isinstance(stages, int) and stages > 0:
            max_epochs /= stages  # a staged config gives each of its stages what another config gets
        shared["trainer.max_epochs per lr stage"] = max_epochs
    shared |= {key: settings[key] for key in EPOCH_LIMITS if key in settings}
    hparams = {key: value for key, value in record.hparams.items() if key != "optimizer_args"}
    hparams |= {f"optimizer_args.{key}": value for key, value in record.optimizer_args.items()}
    experiment = {f"hparams.{key}": value for key, value in hparams.items()
                  if key.rpartition(".")[2] not in NOT_EXPERIMENT}
    experiment |= {key: settings[key] for key in TRAINING if key in settings}
    return Protocol(shared, experiment)


def _read_config(run_dir: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def _present(config: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Those of the dotted ``keys`` that ``config`` sets, with their values."""
    found = {}
    for dotted in keys:
        value: Any = config
        for key in dotted.split("."):
            if not isinstance(value, dict) or key not in value:
                break
            value = value[key]
        else:
            found[dotted] = value
    return found


class _Published(NamedTuple):
    run_dir: Path
    config: str
    protocol: Protocol


def check_protocols(candidates: list[tuple[str, Path, RunRecord]], dest: Path) -> None:
    """Refuse the runs (``config/run`` name, directory, record) whose :class:`Protocol` differs from
    the directory's or their config's: from the first run of their config, else the first run, among
    the runs published in ``dest`` that stay and those before them in the sweep."""
    staying = {target.parent.relative_to(dest).as_posix() for target in dest.glob(f"*/*/{RESULTS_FILE}")}
    staying -= {name for name, _, _ in candidates}
    accepted = [_Published(dest / name, _config(name, record), protocol(dest / name, record))
                for name in sorted(staying) if (record := read_record(dest / name)) is not None]
    refused: list[tuple[Path, Path, list[tuple[str, Any, Any]]]] = []
    for name, run_dir, record in candidates:
        run = _Published(run_dir, _config(name, record), protocol(run_dir, record))
        peer = next((other for other in accepted if other.config == run.config), None)
        reference = peer or (accepted[0] if accepted else None)
        differences = []
        if reference is not None:
            differences = _differences(run.protocol.shared, reference.protocol.shared)
        if peer is not None:
            differences += _differences(run.protocol.experiment, peer.protocol.experiment)
        if differences:
            refused.append((run_dir, reference.run_dir, differences))
        else:
            accepted.append(run)
    if refused:
        run_dir, reference, differences = refused[0]
        named = "; ".join(f"{setting} {_shown(new)} here, {_shown(old)} {f'in {reference}' if i == 0 else 'there'}"
                          for i, (setting, new, old) in enumerate(differences))
        more = len(refused) - 1
        others = f" (and {more} more run{'' if more == 1 else 's'} like it)" if more else ""
        raise UserInputError(
            f"{run_dir}{others} cannot join the runs published in {dest}: {named}. A published directory holds "
            "runs of one protocol, so that its means and comparisons are of like with like: publish these runs "
            "to a directory of their own with --to results/<name>, or rerun them with the published settings. "
            "Nothing was written.")


def _config(name: str, record: RunRecord) -> str:
    """The config a run belongs to, as the report groups it."""
    return record.config or name.split("/")[0]


def _differences(new: dict[str, Any], published: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Each setting both record with different values: its name, the new value and the published one."""
    return [(key, new[key], published[key]) for key in new if key in published and new[key] != published[key]]


def _shown(value: Any) -> str:
    if value is None:
        return "not set"
    if isinstance(value, float):
        return f"{value:g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
