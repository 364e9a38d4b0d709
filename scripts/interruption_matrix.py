"""Interrupt a run at every kind of point with every kind of signal, resume it, and check that it
ends exactly as an uninterrupted run does (weights bit for bit, per-epoch history, test result).

    python scripts/interruption_matrix.py            # 4 points x 3 signals, ~3 minutes on 2 cores

Each case is a real ``python -m src.cli fit`` process on small synthetic data that signals itself
(``tests/faults.py``) after a random training step, during validation, as an epoch starts, or
during the test after fit; then ``fit --ckpt_path last`` resumes it. The suite runs a few of
these cases (``tests/test_resume.py``); this runs them all and prints one table.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from src.results import RunRecord  # noqa: E402
from tests.faults import POINTS, signal_at  # noqa: E402
from tests.synthetic import quiet_fit_args, write_image_folder  # noqa: E402

SIGNALS = ("SIGINT", "SIGTERM", "SIGKILL")
EPOCHS, STEPS_PER_EPOCH = 3, 16  # 500 synthetic training images in batches of 32


def fit(args: list[str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "src.cli", "fit", *args, *extra], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def same_run(run: RunRecord, reference: RunRecord) -> str:
    """'yes', or what differs."""
    if (run.stop_reason, run.epochs, run.test_acc) != (reference.stop_reason, reference.epochs, reference.test_acc):
        return f"no: {run.stop_reason}/{run.epochs} epochs/test {run.test_acc}"
    weights = [torch.load(Path(r.run_dir) / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
               for r in (run, reference)]
    if any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[1]):
        return "no: weights differ"
    if [{k: round(v, 6) for k, v in h.items()} for h in run.history] != [
        {k: round(v, 6) for k, v in h.items()} for h in reference.history
    ]:
        return "no: history differs"
    return "yes"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--seed", type=int, default=0, help="picks the random training step")
    args = parser.parse_args(argv)
    step = random.Random(args.seed).randrange(STEPS_PER_EPOCH + 1, 2 * STEPS_PER_EPOCH - 1)  # inside epoch 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = write_image_folder(root / "images", train_per_class=60, test_per_class=10)
        common = [f"--config={ROOT / 'configs' / 'sgd_nesterov.yaml'}", "--model.decay=1e-3",
                  f"--trainer.max_epochs={EPOCHS}", "--trainer.deterministic=true",
                  *quiet_fit_args(images, root / "data", root)]
        assert fit([*common, "--run_name=reference"]).returncode == 0
        reference = RunRecord.read(root / "runs" / "reference" / "version_0")
        print(f"{'signal':<8} {'point':<12} {'exit':>5}  {'record says':<12} {'resumed identical':<18} message")
        for signal_name in SIGNALS:
            for point in POINTS:
                name = f"{signal_name}_{point}"
                run_args = [*common, f"--run_name={name}"]
                cut = fit(run_args, signal_at(signal_name, point, epoch=2, step=step))
                said = RunRecord.read(root / "runs" / name / "version_0").stop_reason
                message = next((line for line in cut.stderr.splitlines() if line.startswith("Interrupted")), "-")
                resumed = fit(run_args, "--ckpt_path=last")
                verdict = (same_run(RunRecord.read(root / "runs" / name / "version_0"), reference)
                           if resumed.returncode == 0 else f"no: resume exit {resumed.returncode}")
                print(f"{signal_name:<8} {point:<12} {cut.returncode:>5}  {said:<12} {verdict:<18} "
                      f"{message[:60] + ('…' if len(message) > 60 else '')}", flush=True)
    print(f"(training point: after step {step}, in epoch 2 of {EPOCHS}; exit -9 is kill -9)")


if __name__ == "__main__":
    main()
