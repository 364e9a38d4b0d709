"""Copy a sweep's complete runs into the repository, small files only, ready to commit.

    python scripts/publish_runs.py /var/tmp/hparam-lab/notebook results/notebook

For every ``SWEEP_DIR/<config>/seed_<S>/`` whose results.json says it is complete, copies
results.json, config.yaml, hparams.yaml and the TensorBoard event files to
``DEST/<config>/seed_<S>/``; checkpoints and logs stay behind. Runs still going or cut off are
left out, so a sweep can be published while it runs and again as more runs finish.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.results import RESULTS_FILE, read_record  # noqa: E402

PUBLISHED = (RESULTS_FILE, "config.yaml", "hparams.yaml", "events.out.tfevents.*")


def publish(sweep_dir: Path, dest: Path) -> list[Path]:
    """Copy each complete run's small files; return the published run directories."""
    published = []
    for results in sorted(sweep_dir.glob(f"*/*/{RESULTS_FILE}")):
        run_dir = results.parent
        record = read_record(run_dir)
        if record is None or not record.is_complete:
            continue
        target = dest / run_dir.relative_to(sweep_dir)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for pattern in PUBLISHED:
            for file in run_dir.glob(pattern):
                shutil.copy2(file, target / file.name)
        published.append(target)
    return published


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        raise SystemExit(f"error: {args.sweep_dir} is not a directory; give the sweep's --sweep_dir.")
    for target in publish(args.sweep_dir, args.dest):
        print(target)


if __name__ == "__main__":
    main()
