"""Reading ``sweep.json``, how every run of a sweep went: what the sweep that keeps it and the report
that counts its failed runs share, so that reading a sweep's outcomes needs nothing of the sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SWEEP_FILE = "sweep.json"


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
