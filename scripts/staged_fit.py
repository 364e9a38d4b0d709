"""Run a staged learning-rate schedule, one `fit` per stage, each from the last one's best checkpoint.

By default the notebook's best result: Adam at lr 1e-3, then the same weights "recompiled"
at 1e-4, then at 1e-5 (fresh optimizer each time, patience counting anew, epochs continuing).

    python scripts/staged_fit.py --data.source ../shared/data/cifar10-jpg.tar.gz
    python scripts/staged_fit.py --stages configs/sgd.yaml configs/my_sgd_lr_1e-3.yaml -- --trainer.max_epochs 10

Every other argument goes to each stage's `python -m src.cli fit`. Stage N lands in
runs/<name>/stage_N; TensorBoard shows the stages as one continuous curve.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.checkpoint_files import best_checkpoint  # noqa: E402
from src.commands import parse_passing_on  # noqa: E402
from src.results import RunRecord  # noqa: E402

ADAM_SCHEDULE = ["configs/adam.yaml", "configs/adam_stage2_lr_1e-4.yaml", "configs/adam_stage3_lr_1e-5.yaml"]


def run_stages(stages: list[str], name: str, save_dir: str, fit_args: list[str]) -> list[RunRecord]:
    """Fit each stage in turn, each from the previous stage's best checkpoint; return their records."""
    records: list[RunRecord] = []
    for number, config in enumerate(stages, start=1):
        run_dir = Path(save_dir) / name / f"stage_{number}"
        command = [
            sys.executable, "-m", "src.cli", "fit", f"--config={config}", f"--run_name={name}",
            f"--trainer.logger.init_args.save_dir={save_dir}", f"--trainer.logger.init_args.version={run_dir.name}",
            *fit_args,
        ]
        if records:
            best = best_checkpoint(run_dir.with_name(f"stage_{number - 1}"), records[-1])
            if not best:
                raise SystemExit(f"error: stage {number - 1} left no best checkpoint to continue from.")
            command.append(f"--new_stage_from={best}")
        print(f"stage {number}/{len(stages)}: {config}", flush=True)
        subprocess.run(command, check=True)
        records.append(RunRecord.read(run_dir))
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--stages", nargs="+", default=ADAM_SCHEDULE, help="one config per stage, in order")
    parser.add_argument("--name", default="adam_staged", help="run name: runs/<name>/stage_N")
    parser.add_argument("--save_dir", default="runs", help="where runs go (the logger's save_dir)")
    args, fit_args = parse_passing_on(parser, argv)
    missing = [s for s in args.stages if not Path(s).is_file()]
    if missing:
        parser.error(f"stage config(s) not found: {', '.join(missing)}. Run from the project root.")
    try:
        results = run_stages(args.stages, args.name, args.save_dir, fit_args)
    except subprocess.CalledProcessError as err:
        print(f"error: a stage failed (exit {err.returncode}); its output is above.", file=sys.stderr)
        raise SystemExit(err.returncode) from None
    print("\nstage  lr        epochs  best val_acc  test_acc")
    for number, record in enumerate(results, start=1):
        history = record.history
        epochs = f"{history[0]['epoch']}-{history[-1]['epoch']}" if history else "-"
        lr, best = record.optimizer_args["lr"], record.best_val_acc
        print(f"{number:<6} {lr:<9.0e} {epochs:<7} {best:<13.4f} {record.test_acc}")


if __name__ == "__main__":
    main()
