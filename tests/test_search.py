"""The Optuna search: trials as runs, pruning from per-epoch val_acc, the space file and the
study's database checked before any training."""

import json

import optuna
import pytest

from src.errors import UserInputError
from src.report import collect, summarize
from src.search import examples, load_space, main, suggest
from src.sweep import CONFIG_DIR


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


def test_the_report_works_on_a_study(small_study):
    rows = {row["config"]: row for row in summarize(collect(small_study.dir))}
    assert {"trial_000", "trial_001", "trial_002"} == set(rows)
    assert rows["trial_000"]["test_acc_mean"] is not None
    assert rows["trial_001"]["pruned"] == 1


def test_the_space_samples_the_keys_under_the_chosen_option():
    space = load_space(CONFIG_DIR / "search" / "optimizers.yaml").space
    trial = optuna.trial.FixedTrial({
        "model.optimizer": "src.optim.KerasSGD", "model.optimizer.lr": 0.02, "model.optimizer.momentum": 0.5,
        "model.optimizer.nesterov": True, "model.decay": 1e-6,
    })
    assert suggest(trial, space) == [
        "--model.optimizer=src.optim.KerasSGD", "--model.optimizer.lr=0.02", "--model.optimizer.momentum=0.5",
        "--model.optimizer.nesterov=true", "--model.decay=1e-06",
    ]
    checked = examples(space)  # every option is checked against the config before a study starts
    assert {flags[0] for flags in checked} == {
        f"--model.optimizer=src.optim.Keras{name}" for name in ("SGD", "RMSprop", "Adam")
    }


@pytest.mark.parametrize(
    "space, message",
    [
        ("config: sgd\nspace: {}\n", "is empty"),
        ("space:\n  model.optimizer.lr: {low: 0, high: 0.1, log: true}\n", "range of model.optimizer.lr is not"),
        ("space:\n  model.optimizer.lr: 0.1\n", "is not a range"),
        ("space:\n  model.optimizer.lrr: [0.1]\n", "lrr"),
        ("config: sgd_nestrov\nspace:\n  model.decay: [0.0]\n", "Unknown config 'sgd_nestrov'"),
        ("pruner: {patience: 3}\nspace:\n  model.decay: [0.0]\n", "Unknown keys"),
    ],
    ids=["empty", "log of zero", "not a range", "unknown flag", "unknown config", "unknown pruner key"],
)
def test_a_bad_space_is_refused_before_any_training(capsys, tmp_path, space, message):
    (tmp_path / "space.yaml").write_text(space)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "space.yaml"), "--study_dir", str(tmp_path / "study")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
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


def test_load_space_names_the_file_it_cannot_read(tmp_path):
    with pytest.raises(UserInputError, match="missing.yaml"):
        load_space(tmp_path / "missing.yaml")
