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
import json
import subprocess
import sys
from pathlib import Path

ADAM_SCHEDULE = ["configs/adam.yaml", "configs/adam_stage2_lr_1e-4.yaml", "configs/adam_stage3_lr_1e-5.yaml"]


def run_stages(stages: list[str], name: str, save_dir: str, fit_args: list[str]) -> list[dict]:
    """Fit each stage in turn; return each stage's results.json."""
    results: list[dict] = []
    for number, config in enumerate(stages, start=1):
        command = [
            sys.executable, "-m", "src.cli", "fit", f"--config={config}", f"--run_name={name}",
            f"--trainer.logger.init_args.save_dir={save_dir}", f"--trainer.logger.init_args.version=stage_{number}",
            *fit_args,
        ]
        if results:
            best = sorted((Path(results[-1]["run_dir"]) / "checkpoints").glob("best-*.ckpt"))
            if not best:
                raise SystemExit(f"error: stage {number - 1} left no best checkpoint to continue from.")
            command.append(f"--new_stage_from={best[-1]}")
        print(f"stage {number}/{len(stages)}: {config}", flush=True)
        subprocess.run(command, check=True)
        results.append(json.loads((Path(save_dir) / name / f"stage_{number}" / "results.json").read_text()))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--stages", nargs="+", default=ADAM_SCHEDULE, help="one config per stage, in order")
    parser.add_argument("--name", default="adam_staged", help="run name: runs/<name>/stage_N")
    parser.add_argument("--save_dir", default="runs", help="where runs go (the logger's save_dir)")
    args, fit_args = parser.parse_known_args(argv)
    fit_args = [a for a in fit_args if a != "--"]
    for flag in (a.split("=")[0] for a in fit_args if a.startswith("--")):
        meant = [option for option in parser._option_string_actions if option.startswith(flag) and option != flag]
        if meant:  # unknown flags go to every stage's fit, so an abbreviation would silently mean two things
            parser.error(f"{flag} abbreviates {meant[0]}; write it in full.")
    missing = [s for s in args.stages if not Path(s).is_file()]
    if missing:
        parser.error(f"stage config(s) not found: {', '.join(missing)}. Run from the project root.")
    try:
        results = run_stages(args.stages, args.name, args.save_dir, fit_args)
    except subprocess.CalledProcessError as err:
        print(f"error: a stage failed (exit {err.returncode}); its output is above.", file=sys.stderr)
        raise SystemExit(err.returncode) from None
    print("\nstage  lr        epochs  best val_acc  test_acc")
    for number, r in enumerate(results, start=1):
        lr = r["hparams"]["optimizer_args"]["lr"]
        epochs = f"{r['history'][0]['epoch']}-{r['history'][-1]['epoch']}" if r["history"] else "-"
        print(f"{number:<6} {lr:<9.0e} {epochs:<7} {r['best_val_acc']:<13.4f} {r['test_acc']}")


if __name__ == "__main__":
    main()
