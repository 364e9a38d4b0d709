"""The search space file: read and checked before any trial, sampled for each trial, and turned into
a few example flag sets that check every choice against the config up front.

A space file names the config the trials start from, the MedianPruner's settings and the space,
keyed by command-line flag (see ``configs/search/optimizers.yaml``)::

    config: base                       # a config name or path (default: base)
    pruner: {n_startup_trials: 5, n_warmup_steps: 2}
    space:
      model.decay: [0.0, 1.0e-6]                         # a list: one of these
      model.optimizer:                                   # a mapping: one of its keys, with
        src.optim.KerasSGD:                              # the space under it
          model.optimizer.lr: {low: 1.0e-3, high: 0.1, log: true}   # a range (ints: integer)
          model.optimizer.momentum: {low: 0.0, high: 0.9}
        src.optim.KerasAdam: {model.optimizer.lr: {low: 1.0e-5, high: 1.0e-2, log: true}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from src.errors import UserInputError
from src.run_args import resolve_config

RANGE_KEYS = {"low", "high", "log", "step"}
PRUNER_KEYS = {"n_startup_trials", "n_warmup_steps"}


@dataclass
class SearchSpace:
    """A checked space file: the config its trials start from, the space and the pruner's settings."""

    config: Path
    space: dict[str, Any]
    pruner: dict[str, int]


def load_space(path: str | Path) -> SearchSpace:
    """Read and check a space file, so that a mistake stops the study before any trial."""
    path = Path(path)
    try:
        declared = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise UserInputError(f"Cannot read the search space {path}: {err}") from err
    if not isinstance(declared, dict) or not declared.get("space"):
        raise UserInputError(
            f"The search space in {path} is empty: give a `space:` mapping from flags to ranges, lists or "
            "choices, e.g.  space: {model.optimizer.lr: {low: 1.0e-5, high: 1.0e-2, log: true}}"
        )
    unknown = set(declared) - {"config", "pruner", "space"}
    if unknown:
        raise UserInputError(f"Unknown keys in {path}: {', '.join(sorted(unknown))}. A space file has config, pruner "
                             "and space.")
    pruner = declared.get("pruner") or {}
    if not isinstance(pruner, dict) or set(pruner) - PRUNER_KEYS or not all(
        isinstance(count, int) and not isinstance(count, bool) and count >= 0 for count in pruner.values()
    ):
        raise UserInputError(f"The pruner in {path} takes {' and '.join(sorted(PRUNER_KEYS))}, whole numbers of at "
                             f"least 0, e.g.  pruner: {{n_startup_trials: 5, n_warmup_steps: 3}}; got {pruner!r}.")
    _check_space(declared["space"], path)
    config = resolve_config(declared.get("config") or "base")
    return SearchSpace(config, declared["space"], pruner)


def _check_space(space: dict, path: Path) -> None:
    if not isinstance(space, dict):
        raise UserInputError(f"In {path}, a space must map flags to ranges, lists or choices; got {space!r}.")
    for key, spec in space.items():
        if _is_range(spec):
            try:
                _range_distribution(spec)
            except (TypeError, ValueError) as err:
                raise UserInputError(f"In {path}, the range of {key} is not valid: {err}") from err
        elif isinstance(spec, dict):
            for subspace in spec.values():
                _check_space(subspace or {}, path)
        elif not (isinstance(spec, list) and spec):
            raise UserInputError(
                f"In {path}, {key}: {spec!r} is not a range ({{low, high, log, step}}), a non-empty list "
                "or a mapping of choices."
            )


def _is_range(spec: Any) -> bool:
    return isinstance(spec, dict) and {"low", "high"} <= set(spec) and set(spec) <= RANGE_KEYS


def _range_distribution(spec: dict) -> optuna.distributions.BaseDistribution:
    numbers = [spec[key] for key in ("low", "high", "step") if key in spec]
    if all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        return optuna.distributions.IntDistribution(
            spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step", 1)
        )
    return optuna.distributions.FloatDistribution(
        float(spec["low"]), float(spec["high"]), log=spec.get("log", False), step=spec.get("step")
    )


def _flag(key: str, value: Any) -> str:
    return f"--{key}={json.dumps(value) if not isinstance(value, str) else value}"


def suggest(trial: optuna.Trial, space: dict) -> list[str]:
    """The trial's flags, sampling each key of ``space`` (and the space under a chosen key)."""
    flags = []
    for key, spec in space.items():
        if _is_range(spec):
            d = _range_distribution(spec)
            if isinstance(d, optuna.distributions.IntDistribution):
                flags.append(_flag(key, trial.suggest_int(key, d.low, d.high, step=d.step, log=d.log)))
            else:
                flags.append(_flag(key, trial.suggest_float(key, d.low, d.high, step=d.step, log=d.log)))
        elif isinstance(spec, dict):
            choice = trial.suggest_categorical(key, list(spec))
            flags += [_flag(key, choice), *suggest(trial, spec[choice] or {})]
        else:
            flags.append(_flag(key, trial.suggest_categorical(key, spec)))
    return flags


def examples(space: dict) -> list[list[str]]:
    """A few flag sets that between them use every key and every choice of a mapping, to check
    the space against the config up front."""
    result: list[list[str]] = [[]]
    for key, spec in space.items():
        if _is_range(spec):
            branches = [[_flag(key, spec["low"])]]
        elif isinstance(spec, dict):
            branches = [
                [_flag(key, choice), *flags] for choice, subspace in spec.items() for flags in examples(subspace or {})
            ]
        else:
            branches = [[_flag(key, spec[0])]]
        count = max(len(result), len(branches))
        result = [result[i % len(result)] + branches[i % len(branches)] for i in range(count)]
    return result
