"""Run directories: one process owns a run at a time, and a resumed run is the same experiment.

``runs/<name>/version_N`` is claimed under a lock on ``runs/<name>``, so two fits started at once
get different versions, and the claimed version stays locked while its process lives. The locks
are ``flock`` locks: the system drops them when a process ends, even by ``kill -9``, so none is
ever left stuck.

Every checkpoint keeps the settings its run trained with, and a resume is compared with those, not
with ``config.yaml``: that file can be edited, what the checkpoint's weights were trained with cannot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import yaml

from src.errors import CannotWrite, UserInputError

if TYPE_CHECKING:
    from jsonargparse import Namespace

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not guarded there
    fcntl = None

LOCK_FILE = ".lock"
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


def _open_lock_file(path: Path) -> IO[str]:
    """The lock file ``path``, made with its folders where missing; :class:`CannotWrite` names a
    folder that is read-only, not ours, or full."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a+")
    except OSError as err:
        raise CannotWrite(err.filename or path, err) from err


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (waiting for it) while the block runs."""
    with _open_lock_file(path) as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextmanager
def lock_if_free(path: Path) -> Iterator[bool]:
    """Holds an exclusive lock on ``path`` while the block runs when no other process holds it; yields
    whether it does (always where there is no flock)."""
    with _open_lock_file(path) as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True


class RunClaim:
    """Ownership of one run directory, until released or until this process ends.

    ``made`` is the outermost folder the claim created (the run's, or its name's, or the save
    directory), so a start that fails can take back all it made.
    """

    def __init__(self, run_dir: Path, made: Path | None, handle: IO[str]) -> None:
        self.run_dir, self.made, self._handle = run_dir, made, handle

    @property
    def created(self) -> bool:
        return self.made is not None

    def release(self) -> None:
        self._handle.close()
        _held.pop(self.run_dir.resolve(), None)


_held: dict[Path, RunClaim] = {}  # this process's claims: a later fit in the same process takes them over


def release_all() -> None:
    """Releases this process's claims (a command's end; the system would at the process's end)."""
    for run_claim in list(_held.values()):
        run_claim.release()


def version_number(run_dir: Path) -> int | None:
    """N of a ``version_N`` folder, the logger's numbering of a config's runs; None for other names."""
    number = run_dir.name.removeprefix("version_")
    return int(number) if number != run_dir.name and number.isdigit() else None


def claim(name_dir: Path, version: int | str | None) -> RunClaim:
    """Claims ``name_dir/version_N`` (the next free N when ``version`` is None) for this process.

    Raises :class:`UserInputError` when another process is running that version.
    """
    missing = [d for d in (name_dir, *name_dir.parents) if not d.exists()]
    with exclusive_lock(name_dir / LOCK_FILE):
        if version is None:
            taken = [version_number(p) for p in name_dir.glob("version_*")]
            version = max((n for n in taken if n is not None), default=-1) + 1
        run_dir = name_dir / (version if isinstance(version, str) else f"version_{version}")
        made = missing[-1] if missing else (None if run_dir.exists() else run_dir)
        if run_dir.resolve() in _held:
            _held[run_dir.resolve()].release()
        handle = _open_lock_file(run_dir / LOCK_FILE)
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise UserInputError(
                    f"{run_dir} is in use by another running fit (it holds {run_dir / LOCK_FILE}). Wait for it "
                    "to end, stop it, or give this run another --run_name."
                ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
        except OSError as err:
            handle.close()
            raise CannotWrite(run_dir / LOCK_FILE, err) from err
        _held[run_dir.resolve()] = RunClaim(run_dir, made, handle)
        return _held[run_dir.resolve()]


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
        key: _plain(value) for key, value in _flat(values).items()
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


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(values, dict):
        flat: dict[str, Any] = {}
        for key, value in values.items():
            flat.update(_flat(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: values}
