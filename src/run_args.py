"""What a run is given, resolved and checked in-process before any run starts: its config (a name
in ``configs/`` or a YAML path) and its arguments, parsed as ``src.cli`` will parse them, so that a
typo or a setting that cannot work stops a sweep or a study with one message, not one failed run per
config; and, for a sweep directory that keeps runs, whether new runs would be made alike.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from src.errors import UserInputError
from src.paths import BASE_CONFIG, CONFIG_DIR
from src.results import read_record
from src.run_settings import CONFIG_FILE, flatten

SET_BY_SWEEP = ("--seed_everything", "--run_name", "--trainer.logger", "--ckpt_path")
# What the runs of one sweep directory may have been given differently without a change to their
# results: what the sweep sets for each run, where files go, and what a run prints and logs.
MAY_DIFFER = (
    "seed_everything", "run_name", "ckpt_path", "log_level", "trainer.logger", "trainer.default_root_dir",
    "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps", "data.data_dir",
    "data.download", "data.eval_batch_size",
)


def available_configs() -> list[str]:
    """Names of the experiment configs in ``configs/``, base excluded."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p != BASE_CONFIG)


def resolve_config(name: str | Path) -> Path:
    """A config name from ``configs/`` (``base`` included) or a path to a YAML file."""
    for candidate in (CONFIG_DIR / f"{name}.yaml", Path(name)):
        if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
            return candidate.resolve()
    raise UserInputError(
        f"Unknown config {str(name)!r}: it is neither a file nor a name in {CONFIG_DIR}. "
        f"Available: {', '.join(available_configs())} (or give the path of a YAML file)."
    )


def run_arguments(overrides: str | Iterable[str]) -> list[str]:
    """The arguments for every run: a list of them, or one string split as a shell would split it."""
    arguments = shlex.split(overrides) if isinstance(overrides, str) else list(overrides)
    wrong = [argument for argument in arguments if not isinstance(argument, str)]
    if wrong:
        raise UserInputError(f"The run arguments must be strings, as on a command line; got {wrong[0]!r} in "
                             f"{arguments!r}. Write e.g. ['--trainer.max_epochs', '20'] or '--trainer.max_epochs 20'.")
    return arguments


def check_run_args(config: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """Resolve and check a run's arguments in-process, as ``src.cli`` will, so that a typo in an
    override or a setting that cannot work stops the sweep with one message before any run starts.
    Returns the run's resolved config, which says where it will train."""
    for flag in overrides:
        if flag.split("=", 1)[0].startswith(SET_BY_SWEEP):
            raise UserInputError(
                f"{flag} is set by the sweep for each run (config, seed, run directory, checkpoint); "
                "choose configs with --configs, seeds with --seeds/--first_seed and the directory with --sweep_dir."
            )
    from src.cli import resolve_fit_config  # here, not above: Lightning takes seconds to import
    from src.preflight import check_resolved_run

    try:
        resolved = resolve_fit_config([f"--config={config}", *overrides])
    except UserInputError as err:
        raise UserInputError(f"The arguments for the {config.stem} runs are not valid: {err}") from None
    if resolved.get("test_after_fit") is False:
        raise UserInputError(
            f"The {config.stem} runs would not be tested (test_after_fit false), but a run of a sweep or a study "
            "counts as finished only once tested: its report compares test accuracies. Drop --test_after_fit "
            "false (or test_after_fit: false in the config)."
        )
    try:  # what the run itself checks once parsed
        check_resolved_run("fit", resolved)
    except UserInputError as err:
        raise UserInputError(f"The {config.stem} runs cannot work: {err}") from None
    return resolved


def _what_counts(config: dict[str, Any]) -> dict[str, Any]:
    """A run's resolved config, flat, less what cannot change its results (:data:`MAY_DIFFER`) and
    the progress bar and model summary callbacks, which a run drops when its flags switch them off."""
    from pydoc import locate

    from pytorch_lightning.callbacks import ModelSummary, ProgressBar

    def shows_progress(callback: Any) -> bool:
        kind = locate(str(callback.get("class_path"))) if isinstance(callback, dict) else None
        return isinstance(kind, type) and issubclass(kind, (ProgressBar, ModelSummary))

    flat = {key: value for key, value in flatten(config).items()
            if not any(key == name or key.startswith(f"{name}.") for name in MAY_DIFFER)}
    flat["trainer.callbacks"] = [c for c in flat.get("trainer.callbacks") or [] if not shows_progress(c)]
    return flat


def _flag_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def check_same_run_args(sweep_dir: Path, configs: Sequence[Path], resolved: Sequence[dict[str, Any]]) -> None:
    """Refuses a sweep whose runs would differ from the runs of its configs that ``sweep_dir`` keeps
    (finished, or with a ``last.ckpt`` to resume), as each run's own ``config.yaml`` records them
    (``resolved``: :func:`check_run_args`' configs). Kept, they would be reported beside the new ones
    as one experiment; resumed, they would change course. Compared is what can change a run's
    results: everything but :data:`MAY_DIFFER`, so ``--trainer.max_epochs 4`` differs from 1 and
    ``--trainer.max_epochs=4`` does not differ from ``--trainer.max_epochs 4``; settings only one side
    knows (added to the code since) are not compared, nor those ``--fast`` leaves to the machine that
    trains a run (a run's own resume refuses another precision than it trained with)."""
    from src.checkpoint_files import last_checkpoint
    from src.fast import left_to_fast  # here, not above: it imports torch

    differ: dict[str, tuple[Any, Any]] = {}
    runs: list[str] = []
    for config, given in zip(configs, resolved):
        machine_chooses = left_to_fast(given)
        new = {key: value for key, value in _what_counts(given).items() if key not in machine_chooses}
        for saved_file in sorted((sweep_dir / config.stem).glob(f"*/{CONFIG_FILE}")):
            run_dir, record = saved_file.parent, read_record(saved_file.parent)
            if not ((record and record.is_complete) or last_checkpoint(run_dir)):
                continue  # nothing of it is kept: it starts afresh
            try:
                saved = _what_counts(yaml.safe_load(saved_file.read_text()) or {})
            except (OSError, yaml.YAMLError):
                continue  # src.cli says what is wrong with it, should the run be resumed
            changed = {key: (saved[key], new[key]) for key in saved.keys() & new.keys() if saved[key] != new[key]}
            if changed:
                runs.append(f"{config.stem} {run_dir.name.replace('seed_', 'seed ')}")
                for key, values in changed.items():
                    differ.setdefault(key, values)
    if differ:
        keys = sorted(differ)[:6]
        shown = "; ".join(f"--{key} {_flag_value(differ[key][0])} then, {_flag_value(differ[key][1])} now"
                          for key in keys)
        old = " ".join(f"--{key}={_flag_value(differ[key][0])}" for key in keys)
        raise UserInputError(
            f"{sweep_dir} holds runs made with other arguments than these ({', '.join(runs[:3])}"
            f"{f' and {len(runs) - 3} more' if len(runs) > 3 else ''}): {shown}{'; …' if len(differ) > 6 else ''}. "
            "A sweep's runs are reported together as one experiment, so they must be made alike: start the sweep "
            f"with the arguments those runs were made with ({old}), or give the new arguments another --sweep_dir."
        )


class _EachMessageOnce(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        first = message not in self.seen
        self.seen.add(message)
        return first


def check_runs_args(runs: Iterable[tuple[Path, Sequence[str]]]) -> list[dict[str, Any]]:
    """:func:`check_run_args` for each (config, overrides) of a sweep or study; a warning that holds
    for several (``--trainer.devices`` beyond the cores, say) is printed once, not once per config."""
    once = _EachMessageOnce()
    checks = logging.getLogger("src.preflight")
    checks.addFilter(once)
    try:
        return [check_run_args(config, overrides) for config, overrides in runs]
    finally:
        checks.removeFilter(once)
