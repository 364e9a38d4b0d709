"""Two-process DDP on CPU through the CLI: one run directory, metrics over both ranks' data."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.cli import HparamLabCLI
from src.data.batches import to_float_nchw
from src.module import CifarClassifier
from src.paths import CONFIG_DIR

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SGD = f"--config={CONFIG_DIR / 'sgd.yaml'}"


def test_ddp_run_reduces_metrics_over_ranks_and_writes_once(image_folder, data_dir, tmp_path):
    runs = tmp_path / "runs"
    data_args = [f"--data.source={image_folder}", f"--data.data_dir={data_dir}", "--data.val_split=100"]
    subprocess.run(
        [
            sys.executable, "-m", "src.cli", "fit", SGD, *data_args,
            "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
            "--trainer.max_epochs=2", "--trainer.enable_progress_bar=false", "--run_name=ddp",
            f"--trainer.logger.init_args.save_dir={runs}",
        ],
        cwd=ROOT, check=True, timeout=300,
    )
    assert [p.name for p in (runs / "ddp").glob("version_*")] == ["version_0"]  # one run, not one per rank
    run_dir = runs / "ddp" / "version_0"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["hparams"]["devices"] == 2 and results["stop_reason"] == "max_epochs"
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and "last.ckpt" in checkpoints

    # The logged val_acc covers both ranks' halves of the validation set: a single process
    # validating the same checkpoint on the whole set gets the same number.
    best = next(p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("best-"))
    single = HparamLabCLI(
        ["validate", SGD, *data_args, f"--ckpt_path={best}",
         f"--trainer.logger.init_args.save_dir={tmp_path / 'validate'}", "--trainer.enable_progress_bar=false"]
    )
    assert float(single.trainer.callback_metrics["val_acc"]) == results["best_val_acc"]
    assert results["test_acc"] is not None

    # ... and rank 0's half alone would have given another number
    images, labels = single.datamodule.splits["val"]
    model = CifarClassifier.load_from_checkpoint(best).eval()
    with torch.no_grad():
        half = model(to_float_nchw(images[0::2])).argmax(1).eq(labels[0::2]).float().mean().item()
    assert half != results["best_val_acc"]
