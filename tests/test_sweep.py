"""Sweeps: a directory per run, isolation from failures and divergence, restarts that skip
finished runs and resume cut-off ones, and mistakes refused before any training."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from src.sweep import SWEEP_FILE, main, run_environments, sweep

ROOT = Path(__file__).resolve().parent.parent


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_every_config_and_seed_runs_in_its_own_directory_seed_by_seed(small_sweep):
    # every config once before any config twice: a sweep cut short still covers them all
    assert [(o["config"], o["seed"]) for o in small_sweep.outcomes] == [
        (config, seed) for seed in (42, 43) for config in small_sweep.configs
    ]
    for outcome in small_sweep.outcomes:
        run_dir = small_sweep.dir / outcome["config"] / f"seed_{outcome['seed']}"
        results = results_of(run_dir)
        assert results["hparams"]["seed"] == outcome["seed"]
        assert results["config"] == outcome["config"]
        log = (run_dir / "train.log").read_text()  # the run's own output, not the terminal's
        assert f", seed {outcome['seed']}" in log
        if outcome["status"] == "finished":
            assert "epoch 2/2 - " in log  # a batch log gets one line per epoch
    recorded = json.loads((small_sweep.dir / SWEEP_FILE).read_text())
    assert set(recorded["runs"]) == {f"{c}/seed_{s}" for c in small_sweep.configs for s in (42, 43)}
    assert "--trainer.max_epochs=2" in recorded["overrides"]


def test_progress_is_one_line_per_run_start_and_end(small_sweep):
    starts = [line for line in small_sweep.lines if "] start " in line]
    ends = [line for line in small_sweep.lines if "] end " in line]
    assert len(starts) == len(ends) == 6
    assert len(small_sweep.lines) == 6 * 2 + 2  # plus the sweep's first and last line
    assert "6 of 6 runs complete" in small_sweep.lines[-1]


def test_a_diverging_config_is_recorded_as_diverged_while_the_others_finish(small_sweep):
    status = {(o["config"], o["seed"]): o["status"] for o in small_sweep.outcomes}
    assert {s for (c, _), s in status.items() if c == "sgd_lr_1e6"} == {"diverged"}
    assert {s for (c, _), s in status.items() if c != "sgd_lr_1e6"} == {"finished"}
    diverged = results_of(small_sweep.dir / "sgd_lr_1e6" / "seed_42")
    assert diverged["stop_reason"] == "diverged"
    assert not math.isfinite(diverged["history"][-1]["val_loss"])
    finished = results_of(small_sweep.dir / "adam" / "seed_42")
    assert finished["stop_reason"] == "max_epochs" and finished["epochs"] == 2


def test_starting_the_same_sweep_again_reruns_nothing(small_sweep, tiny_run_args):
    files = [*small_sweep.dir.glob("*/*/results.json"), *small_sweep.dir.glob("*/*/checkpoints/*.ckpt")]
    before = {path: path.stat().st_mtime_ns for path in files}
    lines = []
    outcomes = sweep([*small_sweep.configs[:2], str(small_sweep.dir.parent / "sgd_lr_1e6.yaml")], seeds=2,
                     sweep_dir=small_sweep.dir, overrides=tiny_run_args, progress=lines.append)
    assert {o["status"] for o in outcomes} == {"complete"}
    assert "6 already complete, 0 to run" in lines[0]
    assert {path: path.stat().st_mtime_ns for path in files} == before


def test_a_restart_resumes_a_cut_off_run_and_a_failing_run_does_not_stop_the_sweep(
    small_sweep, tiny_run_args, tmp_path, capsys
):
    # adam seed 42 as a sweep cut off after its last epoch: checkpoints there, results not final
    run_dir = tmp_path / "sweep" / "adam" / "seed_42"
    shutil.copytree(small_sweep.dir / "adam" / "seed_42", run_dir)
    interrupted = {**results_of(run_dir), "stop_reason": "interrupted", "test_acc": None}
    (run_dir / "results.json").write_text(json.dumps(interrupted))
    failing = tmp_path / "precision_64.yaml"  # parses, then the run refuses it
    failing.write_text("trainer:\n  precision: 64\n")

    with pytest.raises(SystemExit) as exit_info:
        main(["--configs", str(failing), "adam", "--seeds", "1", "--sweep_dir", str(tmp_path / "sweep"),
              *tiny_run_args])
    assert exit_info.value.code == 1  # something failed; everything else ran
    out = capsys.readouterr().out
    assert "start precision_64 seed 42" in out and "FAILED (exit 2" in out
    assert f"start adam seed 42 (resuming from {run_dir / 'checkpoints' / 'last.ckpt'})" in out

    resumed = results_of(run_dir)
    assert resumed["stop_reason"] == "max_epochs" and resumed["test_acc"] is not None
    assert Path(resumed["resumed_from"]).name == "last.ckpt"
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]  # continued, not started over
    recorded = json.loads((tmp_path / "sweep" / SWEEP_FILE).read_text())["runs"]
    assert recorded["precision_64/seed_42"]["status"] == "failed"
    assert recorded["precision_64/seed_42"]["returncode"] == 2
    assert "--trainer.precision 64 is not supported" in Path(recorded["precision_64/seed_42"]["log"]).read_text()
    assert recorded["adam/seed_42"]["status"] == "finished"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--configs", "sgd", "sgd_nestrov"], "Unknown config 'sgd_nestrov'"),
        (["--configs", "sgd", "--trainer.maxx_epochs", "2"], "unrecognized arguments: --trainer.maxx_epochs 2"),
        (["--configs", "sgd", "--seed_everything", "1"], "--seed_everything is set by the sweep"),
        (["--configs", "sgd", "--seeds", "0"], "--seeds and --parallel must be at least 1"),
    ],
    ids=["unknown config", "unknown flag", "seed flag", "no seeds"],
)
def test_mistakes_are_refused_before_any_run(capsys, tmp_path, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--sweep_dir", str(tmp_path / "sweep")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message.lower() in err.lower() and "Traceback" not in err  # jsonargparse 4.39 capitalises "Unrecognized"
    assert not (tmp_path / "sweep").exists()


def test_unknown_config_lists_the_available_ones(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["--configs", "nope", "--sweep_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert "Unknown config 'nope'" in err
    available = err.split("Available: ")[1]
    assert all(name in available for name in ("adam", "rmsprop_baseline", "sgd_nesterov"))


def test_parallel_runs_get_one_gpu_each_or_a_share_of_the_cores(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    slots = run_environments(2)
    assert sorted(slots.get()["CUDA_VISIBLE_DEVICES"] for _ in range(2)) == ["2", "5"]

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    slots = run_environments(4)
    assert [slots.get()["OMP_NUM_THREADS"] for _ in range(4)] == ["2"] * 4


def test_sweep_and_report_start_without_importing_lightning():
    # --help and the configs' names need no Lightning, which takes seconds to import
    code = "import sys, src.sweep, src.report; print(sorted(m for m in sys.modules if 'lightning' in m or m == 'src.cli'))"
    imported = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"
