"""What a training run prints: what runs, the model summary, progress, one line per epoch and the
result, and Lightning's own chatter only when asked for."""

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from lightning_fabric.plugins.environments import SLURMEnvironment

from src.paths import CONFIG_DIR
from src.run_messages import quiet_lightning
from tests.synthetic import quiet_fit_args
from tests.test_fast import AMX_CPU, AVX2_CPU, on_a_cpu_with

ROOT = Path(__file__).resolve().parent.parent
LIGHTNING_CHATTER = (
    "Tip:", "litlogger", "GPU available", "TPU available", "Seed set", "already configured", "LeafSpec",
    "Restoring states", "`Trainer.fit` stopped", "Test metric", "The `srun` command is available",
)


@pytest.fixture
def srun_on_path(tmp_path, monkeypatch):
    """A machine where SLURM's ``srun`` is installed (a dummy one, first on PATH), outside a SLURM job."""
    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{srun.parent}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.slow
def test_a_run_shows_what_matters_and_no_lightning_chatter(image_folder, data_dir, tmp_path, srun_on_path):
    command = [
        sys.executable, "-m", "src.cli", "fit", f"--config={CONFIG_DIR / 'sgd.yaml'}",
        *quiet_fit_args(image_folder, data_dir, tmp_path), "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=true", "--trainer.enable_model_summary=true",
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=300)
    output = run.stdout + run.stderr
    for chatter in LIGHTNING_CHATTER:
        assert chatter not in output
    for line in ("config   ", "data     ", "device   ", "run      ", "result   max_epochs after 1 epoch", "results  "):
        assert line in output
    assert "Total params" in output  # the model summary
    assert "Epoch 1/1" in output and "Epoch 0" not in output  # the bar counts epochs as the lines do
    assert "Validation" not in output and "Sanity" not in output  # no nested bars: nothing to leave behind
    assert output.count("epoch 1/1 - ") == 1


def test_the_run_says_what_runs_and_where_its_results_are(fit, caplog):
    with caplog.at_level(logging.INFO, logger="src"):
        results = fit("--trainer.max_epochs=1")
    said = "\n".join(r.getMessage() for r in caplog.records if r.name == "src.run_messages")
    assert "base.yaml" in said and "seed 42" in said
    assert "held out for validation" in said and "precision 32-true" in said
    assert f"run      {results['run_dir']}" in said
    assert f"test_acc {results['test_acc']:.4f}" in said and f"{results['run_dir']}/results.json" in said
    assert "evaluate " not in said  # validation and test cover their whole sets


def test_a_run_that_evaluates_part_of_a_set_says_how_much_once_and_records_it(fit, caplog):
    with caplog.at_level(logging.INFO, logger="src"):
        results = fit("--trainer.max_epochs=2", "--trainer.limit_train_batches=2", "--data.eval_batch_size=10",
                      "--trainer.limit_val_batches=3", "--trainer.limit_test_batches=0.2")
    said = [r.getMessage() for r in caplog.records if r.name == "src.run_messages"]
    (line,) = [s for s in said if s.startswith("evaluate ")]
    assert "validation 30 of 100 images (--trainer.limit_val_batches 3)" in line
    assert "test 20 of 100 images (--trainer.limit_test_batches 0.2)" in line
    assert (results["val_images_evaluated"], results["test_images_evaluated"]) == (30, 20)


@pytest.mark.parametrize("level,shown", [("WARNING", False), ("INFO", True)])
def test_lightning_info_messages_need_log_level_info(level, shown):
    quiet_lightning(level)
    try:
        assert logging.getLogger("pytorch_lightning.utilities.rank_zero").isEnabledFor(logging.INFO) is shown
        assert logging.getLogger("lightning_fabric.utilities.seed").isEnabledFor(logging.INFO) is shown
        assert logging.getLogger("pytorch_lightning.callbacks.model_summary").isEnabledFor(logging.INFO)
    finally:
        quiet_lightning("WARNING")


@pytest.mark.parametrize("level,shown", [("WARNING", False), ("INFO", True)])
def test_torchs_advice_to_lightnings_own_code_needs_log_level_info(level, shown):
    with warnings.catch_warnings(record=True) as advice:  # what torch says when Lightning copies a tensor lr
        warnings.simplefilter("always")
        torch.tensor(torch.tensor(1e-3))
    (message,) = [str(w.message) for w in advice]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_lightning(level)
        for module in ("pytorch_lightning.callbacks.lr_monitor", "my_script"):
            warnings.warn_explicit(message, UserWarning, "lr_monitor.py", 217, module=module)
    quiet_lightning("WARNING")
    assert len(seen) == (2 if shown else 1)  # the user's own code is always told


@pytest.mark.parametrize("level,shown", [("WARNING", False), ("INFO", True)])
def test_lightnings_hint_to_use_srun_needs_log_level_info(level, shown, srun_on_path):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_lightning(level)
        SLURMEnvironment.detect()  # what the Trainer asks on every run
    quiet_lightning("WARNING")
    assert any("`srun` command is available" in str(w.message) for w in seen) is shown


@pytest.mark.parametrize("flags,hinted", [(AMX_CPU, True), (AVX2_CPU, False)])
def test_a_float32_run_on_a_cpu_with_native_bf16_gets_one_hint_line(fit, monkeypatch, caplog, flags, hinted):
    on_a_cpu_with(monkeypatch, flags)
    with caplog.at_level(logging.INFO, logger="src"):
        fit("--trainer.accelerator=cpu", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2")
    hints = [r.getMessage() for r in caplog.records if r.name == "src.run_messages" and r.getMessage().startswith("hint")]
    assert len(hints) == hinted
    if hinted:  # no benchmark of an "Example Xeon" is committed: no number, the way to measure one
        assert hints[0] == ("hint     this CPU computes bf16 natively (avx512_bf16, amx_bf16): --fast true trains "
                            "faster; measure how much here with python scripts/benchmark.py")
