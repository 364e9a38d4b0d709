"""The scripts/ files as modules, and a python that lacks TensorFlow wherever the tests run."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from tests.test_results import FAKE_CPUINFO

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture
def scripts(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Imports ``scripts/NAME.py`` as a script sees its neighbours: with scripts/ on sys.path."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    return importlib.import_module


@pytest.fixture
def without_tensorflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Child pythons cannot import tensorflow or keras, installed or not: modules of those names
    first on their PYTHONPATH fail as a missing package does."""
    for name in ("tensorflow", "keras"):
        (tmp_path / f"{name}.py").write_text(f"raise ModuleNotFoundError(\"No module named '{name}'\")\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path), prepend=os.pathsep)


@pytest.fixture
def rendered(scripts: Callable[[str], ModuleType], tmp_path: Path) -> Callable[[dict, str], list[str]]:
    """The performance page's lines ``scripts/benchmark.py --tables`` makes of a result saved as ``name``,
    measured on a made-up machine."""

    def render(report: dict, name: str) -> list[str]:
        benchmark = scripts("benchmark")
        saved = tmp_path / name
        saved.write_text(json.dumps({"machine": benchmark.describe_machine(None, cpuinfo=FAKE_CPUINFO), **report}))
        return benchmark.performance_tables([saved]).splitlines()

    return render
