"""What a run trained with, and what a resume may change of it.

Every checkpoint keeps the settings its run trained with, and a resume is compared with those, not
with ``config.yaml``: that file can be edited, what the checkpoint's weights were trained with cannot.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from src.errors import UserInputError

if TYPE_CHECKING:
    from jsonargparse import Namespace

CONFIG_FILE = "config.yaml"
SETTINGS_KEY = "run_settings"  # a checkpoint's copy of its run's experiment_settings
# What a resumed run may set differently from the run it continues: how long and where it runs,
# where the data is read from, in what batches it is evaluated, the divergence check, callbacks
# added beside the project's (a resumed search trial's pruner), what it prints and records, and
# --fast itself (what it set is compared under its own keys: precision, fast_dropout, compile_update).
# Anything else would change the experiment (limit_val_batches, say, changes what stops it).
RESUME_MAY_CHANGE = (
    "ckpt_path", "config", "run_name", "test_after_fit", "log_level", "run_results", "tensorboard_hparams",
    "last_checkpoint", "divergence", "data.data_dir", "data.source", "data.download", "data.eval_batch_size",
    "trainer.max_epochs", "trainer.max_steps", "trainer.max_time", "trainer.accelerator", "trainer.devices",
    "trainer.num_nodes", "trainer.strategy", "trainer.callbacks", "trainer.enable_progress_bar",
    "trainer.enable_model_summary", "trainer.logger", "trainer.default_root_dir", "trainer.num_sanity_val_steps",
    "trainer.log_every_n_steps", "fast",
)


def experiment_settings(config: Namespace) -> dict[str, Any]:
    """The settings that define a run's experiment (all but what a resume may change), flat and in the
    plain types a checkpoint opened weights-only holds: what every checkpoint keeps of its run."""
    return _settings(config.clone().as_dict())


def trained_settings(checkpoint: dict[str, Any], config_file: Path) -> dict[str, Any]:
    """The settings ``checkpoint``'s run trained with: those it keeps (a checkpoint written before it
    kept them: those of its run's ``config_file``), under the model's and data's hyperparameters,
    which every Lightning checkpoint holds."""
    saved = checkpoint.get(SETTINGS_KEY)
    if saved is None:
        saved = _settings(yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
    hparams = {
        section: {key: value for key, value in checkpoint.get(stored, {}).items() if not key.startswith("_")}
        for section, stored in (("model", "hyper_parameters"), ("data", "datamodule_hyper_parameters"))
    }
    return {**saved, **_settings(hparams)}


def check_resume(checkpoint_path: Path, checkpoint: dict[str, Any], given: dict[str, Any], run_dir: Path) -> None:
    """Refuses to resume ``run_dir`` from ``checkpoint`` with settings (``given``, as
    :func:`experiment_settings` has them) other than those it trained with."""
    saved = trained_settings(checkpoint, run_dir / CONFIG_FILE)
    differ = sorted(key for key in saved.keys() | given.keys() if saved.get(key) != given.get(key))
    if differ:
        shown = "; ".join(f"{key}: trained with {saved.get(key)!r}, given {given.get(key)!r}" for key in differ[:6])
        raise UserInputError(
            f"Cannot resume {run_dir} from {checkpoint_path}: the settings given differ from those it trained "
            f"with ({shown}{'; …' if len(differ) > 6 else ''}). A resume continues the same experiment, and the "
            f"checkpoint keeps the settings it trained with (editing the run's {CONFIG_FILE} changes none of them): "
            "give those, or start a new run (another --run_name, or no --ckpt_path). A resume may change only "
            f"{', '.join(RESUME_MAY_CHANGE)}."
        )


def _settings(values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that define the experiment, flat; jsonargparse's own (``__path__``,
    ``__default_config__``) say where the settings came from, not what they are."""
    return {
        key: _plain(value) for key, value in flatten(values).items()
        if not key.startswith(RESUME_MAY_CHANGE) and not key.startswith("__")
    }


def _plain(value: Any) -> Any:
    """``value`` as a plain type: a ``PositiveInt`` as an int, a path as a string."""
    if value is None or isinstance(value, bool):
        return value
    for plain in (int, float, str):
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """Nested settings as one level of dotted keys: ``{"model": {"decay": 0}}`` as ``{"model.decay": 0}``."""
    if isinstance(values, dict):
        flat: dict[str, Any] = {}
        for key, value in values.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: values}
