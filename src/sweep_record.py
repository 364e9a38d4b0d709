"""``sweep.json``, how every run of a sweep went: kept by the sweeps that share a directory, and
read by the report that counts its failed runs, so that reading a sweep's outcomes needs nothing of
the sweep."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from src.errors import UserInputError
from src.files import write_atomic
from src.results import read_record
from src.run_dir import exclusive_lock
from src.run_process import Run, recorded_status

SWEEP_FILE = "sweep.json"
SWEEP_LOCK_FILE = ".sweep.lock"


def read_sweep_record(sweep_dir: Path) -> dict[str, Any]:
    """``sweep.json`` (empty before a first sweep), its ``runs`` a mapping of run outcomes;
    ``ValueError`` says why a damaged one cannot be read."""
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        return {"runs": {}}
    try:
        record = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    runs = record.setdefault("runs", {}) if isinstance(record, dict) else None
    if not (isinstance(runs, dict) and all(isinstance(outcome, dict) for outcome in runs.values())):
        raise ValueError(f"{path} does not hold a sweep record (a JSON object whose runs map names to outcomes)")
    return record


class SweepRecord:
    """``sweep.json``: how every run of the sweep went, kept across restarts. Sweeps may share a
    directory at once (one per config, say), so each change is read, merged and written under a
    lock: none loses what another recorded. Its settings are those of the sweep started last.

    A run's own ``results.json`` has the last word: each start brings the recorded status of every
    run there, and of ``runs`` (this sweep's), in line with it, so a run recorded as failed that
    its own process finished later (one a sweep killed outright left running) reads finished."""

    def __init__(self, sweep_dir: Path, settings: dict, runs: Iterable[Run] = ()) -> None:
        self.path = sweep_dir / SWEEP_FILE
        self._lock = threading.Lock()
        runs = list(runs)

        def start(record: dict) -> None:
            record.update(settings)
            self._reconcile(record["runs"], runs)

        try:
            self._change(start)
        except ValueError as err:
            raise UserInputError(
                f"{err}. Move it aside or delete it, then start the sweep again: the run directories keep every "
                "result, and the sweep records their outcomes afresh."
            ) from err

    def update(self, run: Run, outcome: dict) -> None:
        self._change(lambda record: record["runs"].update({run.key: outcome}))

    def _reconcile(self, outcomes: dict[str, dict], runs: list[Run]) -> None:
        for run in runs:  # a run that ended with no outcome here (sweep.json moved aside, say)
            record = read_record(run.run_dir)
            if run.key not in outcomes and recorded_status(record):
                outcomes[run.key] = run.outcome(recorded_status(record), record)
        for key, outcome in outcomes.items():
            record = read_record(self.path.parent / key)
            status = recorded_status(record)
            if status and status != outcome.get("status"):  # its exit code and time were another attempt's
                kept = {name: value for name, value in outcome.items() if name not in ("returncode", "seconds")}
                outcomes[key] = {**kept, "status": status, "stop_reason": record.stop_reason,
                                 "test_acc": record.test_acc}

    def _change(self, change: Callable[[dict], None]) -> None:
        with self._lock, exclusive_lock(self.path.with_name(SWEEP_LOCK_FILE)):
            record = read_sweep_record(self.path.parent)
            change(record)
            write_atomic(self.path, json.dumps(record, indent=2) + "\n")
