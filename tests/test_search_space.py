"""The search space file: a mistake in it named before any trial, each trial's flags sampled from it,
and a few flag sets that use every choice, to check them against the config up front."""

import optuna
import pytest

from src.errors import UserInputError
from src.paths import CONFIG_DIR
from src.search_space import examples, load_space, suggest


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


def test_load_space_names_the_file_it_cannot_read(tmp_path):
    with pytest.raises(UserInputError, match="missing.yaml"):
        load_space(tmp_path / "missing.yaml")
