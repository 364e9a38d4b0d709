"""The Optuna search: trials as runs, pruning from per-epoch val_acc, a signal that stops the
study at a safe point and a next search that resumes it, the space file and the study's
database checked before any training."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from src.comparison import collect, summarize
from src.search import main, search

ROOT = Path(__file__).resolve().parent.parent


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_a_study_runs_its_trials_and_prunes_the_hopeless_one(small_study):
    trials = small_study.study.trials
    assert len(trials) == 3
    first, hopeless = trials[0], trials[1]
    assert first.state == optuna.trial.TrialState.COMPLETE
    assert list(first.intermediate_values) == [1, 2]  # val_acc reported after every epoch
    results = json.loads((small_study.dir / "trial_000" / "seed_42" / "results.json").read_text())
    assert first.value == pytest.approx(results["best_val_acc"])
    assert results["hparams"]["optimizer_args"]["lr"] == pytest.approx(1e-3)

    assert hopeless.params == {"model.optimizer.lr": 0.0}
    assert hopeless.state == optuna.trial.TrialState.PRUNED
    assert list(hopeless.intermediate_values) == [1]  # stopped after its first epoch
    pruned = json.loads((small_study.dir / "trial_001" / "seed_42" / "results.json").read_text())
    assert pruned["stop_reason"] == "pruned" and pruned["epochs"] == 1
    assert "trial 1 pruned after epoch 1" in small_study.lines
    assert (small_study.dir / "study.db").is_file()  # SQLite inside the study's directory by default


@pytest.mark.slow
def test_ctrl_c_stops_the_study_at_a_safe_point_and_the_next_search_resumes_the_trial_first(tiny_run_args, tmp_path):
    space = tmp_path / "adam_lr.yaml"
    space.write_text("config: adam\nspace:\n  model.optimizer.lr: {low: 1.0e-4, high: 1.0e-3}\n")
    study_dir = tmp_path / "study"
    first_run = study_dir / "trial_000" / "seed_42"
    long_runs = [*tiny_run_args, "--trainer.max_epochs=500", "--early_stopping.patience=500"]
    search_process = subprocess.Popen(
        [sys.executable, "-m", "src.search", str(space), "--n_trials", "2", "--study_dir", str(study_dir), *long_runs],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (first_run / "checkpoints" / "last.ckpt").is_file():  # an epoch done: training is under way
            assert search_process.poll() is None and time.monotonic() < deadline, "the first trial never got going"
            time.sleep(0.5)
        os.killpg(search_process.pid, signal.SIGINT)  # as a terminal sends it: to the search and its run
        out, err = search_process.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(search_process.pid, signal.SIGKILL)  # whatever happened, nothing keeps training

    assert search_process.returncode == 130, err
    assert "Traceback" not in err
    assert "trial 0 interrupted at a safe point (exit 130)" in out
    assert "search stopped by SIGINT: 1 trials stopped at a safe point" in out
    stopped = results_of(first_run)
    assert stopped["stop_reason"] == "interrupted"
    assert not (study_dir / "trial_001").exists()  # no trial started after the signal
    done = len(stopped["history"])

    lines: list[str] = []
    one_more_epoch = [*long_runs, f"--trainer.max_epochs={done + 1}"]
    study, _ = search(space, n_trials=1, study_dir=study_dir, overrides=one_more_epoch, progress=lines.append)
    cut_off, resumed = study.trials
    assert cut_off.state == optuna.trial.TrialState.FAIL
    assert (cut_off.user_attrs["returncode"], resumed.user_attrs["returncode"]) == (130, 0)  # each run's own status
    assert resumed.state == optuna.trial.TrialState.COMPLETE and resumed.params == cut_off.params
    assert f"trial 1 start: --model.optimizer.lr={cut_off.params['model.optimizer.lr']} (resuming from " in lines[0]
    assert resumed.user_attrs["run_dir"] == str(first_run)  # the cut-off run, continued
    results = results_of(first_run)
    assert results["stop_reason"] == "max_epochs" and Path(results["resumed_from"]).name == "last.ckpt"
    assert [h["epoch"] for h in results["history"]] == list(range(1, done + 2))  # continued, not started over
    assert list(resumed.intermediate_values) == list(range(1, done + 2))  # its earlier epochs too, for the pruner
    assert resumed.value == pytest.approx(results["best_val_acc"])
    assert not (study_dir / "trial_001").exists()


def test_a_study_is_reported_like_a_sweep_with_its_pruned_trial_counted(small_study):
    rows = {row["config"]: row for row in summarize(collect(small_study.dir))}
    assert {"trial_000", "trial_001", "trial_002"} == set(rows)
    assert rows["trial_000"]["test_acc_mean"] is not None
    assert rows["trial_001"]["pruned"] == 1


@pytest.mark.parametrize(
    "space, message",
    [
        ("config: sgd\nspace: {}\n", "is empty"),
        ("space:\n  model.optimizer.lr: {low: 0, high: 0.1, log: true}\n", "range of model.optimizer.lr is not"),
        ("space:\n  model.optimizer.lr: 0.1\n", "is not a range"),
        ("space:\n  model.optimizer.lrr: [0.1]\n", "lrr"),
        ("config: sgd_nestrov\nspace:\n  model.decay: [0.0]\n", "Unknown config 'sgd_nestrov'"),
        ("pruner: {patience: 3}\nspace:\n  model.decay: [0.0]\n", "The pruner in"),
        ("pruner: 5\nspace:\n  model.decay: [0.0]\n", "takes n_startup_trials and n_warmup_steps"),
        ("pruner: {n_startup_trials: x}\nspace:\n  model.decay: [0.0]\n", "whole numbers of at least 0"),
        ("spaec:\n  model.decay: [0.0]\nspace:\n  model.decay: [0.0]\n", "Unknown keys in"),
    ],
    ids=["empty", "log of zero", "not a range", "unknown flag", "unknown config", "unknown pruner key",
         "pruner not a mapping", "pruner count not a number", "unknown top-level key"],
)
def test_a_bad_space_is_refused_before_any_training(capsys, tmp_path, space, message):
    (tmp_path / "space.yaml").write_text(space)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "space.yaml"), "--study_dir", str(tmp_path / "study")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("args, message", [
    (["--n_trials=-1"], "--n_trials must be at least 0, got -1"),
    (["--parallel=0"], "--parallel takes auto or a whole number of runs of at least 1, got '0'"),
], ids=["negative trials", "parallel 0"])
def test_counts_that_cannot_run_are_refused_before_any_training(capsys, tmp_path, args, message):
    (tmp_path / "space.yaml").write_text("space:\n  model.decay: [0.0]\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "space.yaml"), "--study_dir", str(tmp_path / "study"), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "study").exists()


def test_an_unreachable_database_is_refused_before_any_training(capsys, tmp_path):
    (tmp_path / "space.yaml").write_text("space:\n  model.decay: [0.0]\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "space.yaml"), "--study_dir", str(tmp_path / "study"),
              "--storage", "sqlite:////nonexistent-directory/study.db"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Cannot open study 'space' at sqlite:////nonexistent-directory/study.db" in err
    assert "unable to open database file" in err
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("storage", ["postgresql://user:s3cret@localhost:1/db", "postgresql//user:s3cret@localhost/db"],
                         ids=["no driver", "malformed"])
def test_a_database_password_is_not_shown_in_the_error(capsys, tmp_path, storage):
    (tmp_path / "space.yaml").write_text("space:\n  model.decay: [0.0]\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "space.yaml"), "--study_dir", str(tmp_path / "study"), "--storage", storage])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Cannot open study 'space' at postgresql" in err and "user:***@localhost" in err
    assert "s3cret" not in err


def test_a_storage_url_from_the_environment_is_written_nowhere(tiny_run_args, tmp_path, monkeypatch):
    database = tmp_path / "s3cret-place" / "study.db"
    database.parent.mkdir()
    monkeypatch.setenv("STUDY_DB", f"sqlite:///{database}")
    (tmp_path / "space.yaml").write_text("config: adam\nspace:\n  model.decay: [0.0]\n")
    study, study_dir = search(tmp_path / "space.yaml", n_trials=1, study_dir=tmp_path / "study", storage="env:STUDY_DB",
                              overrides=[*tiny_run_args, "--trainer.max_epochs=1"], progress=lambda line: None)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert list(trial.intermediate_values) == [1]  # the trial's own process reached the study through the variable
    written = [path for path in study_dir.rglob("*") if path.is_file()]
    assert any(path.name == "config.yaml" for path in written)
    assert [path for path in written if b"s3cret-place" in path.read_bytes()] == []
    assert "storage: env:HPARAM_LAB_STORAGE" in (study_dir / "trial_000" / "seed_42" / "config.yaml").read_text()


def test_an_unset_storage_variable_is_refused_before_any_training(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("STUDY_DB", raising=False)
    (tmp_path / "space.yaml").write_text("space:\n  model.decay: [0.0]\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "space.yaml"), "--study_dir", str(tmp_path / "study"), "--storage", "env:STUDY_DB"])
    assert exit_info.value.code == 2
    assert "environment variable 'STUDY_DB', which is not set" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()


def test_trials_that_would_not_be_tested_are_refused_before_any_training(capsys, tmp_path):
    (tmp_path / "space.yaml").write_text("space:\n  model.decay: [0.0]\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "space.yaml"), "--study_dir", str(tmp_path / "study"), "--test_after_fit=false"])
    assert exit_info.value.code == 2
    assert "The base runs would not be tested" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()


def test_a_space_or_config_that_would_run_code_is_refused_before_any_trial(capsys, tmp_path):
    marker = tmp_path / "code-ran"
    config = tmp_path / "shared.yaml"
    config.write_text(f"model: {{optimizer: {{class_path: os.system, init_args: {{command: 'touch {marker}'}}}}}}\n")
    spaces = {
        "model.optimizer: os.system is a function": f"config: {config}\nspace:\n  model.decay: [0.0]\n",
        "src.optim.compile_update is a function": "space:\n  model.optimizer:\n    src.optim.compile_update: {}\n",
    }
    for message, space in spaces.items():
        (tmp_path / "space.yaml").write_text(space)
        with pytest.raises(SystemExit) as exit_info:
            main([str(tmp_path / "space.yaml"), "--study_dir", str(tmp_path / "study"), "--n_trials=1"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("error:") == 1 and "Traceback" not in err
        assert not (tmp_path / "study").exists() and not marker.exists()


def test_a_malformed_space_is_refused_before_torch_or_lightning_is_imported(tmp_path):
    (tmp_path / "space.yaml").write_text("space:\n  model.optimizer.lr: 0.1\n")
    probe = ("import sys\nfrom src.search import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exit_:\n"
             "    print(exit_.code, *[m for m in ('torch', 'pytorch_lightning') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "space.yaml"), "--study_dir", str(tmp_path / "study")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["2"], done.stdout  # refused, and neither was imported for it
    assert "model.optimizer.lr: 0.1 is not a range" in done.stderr
