"""A study's trials as runs: the storage's id of a trial, which the trial's own process is given."""

import optuna

from src.search_trials import _storage_id


def test_the_trial_id_a_trials_process_is_given_reaches_that_trial(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="other", storage=storage).ask()  # the storage's ids and the trials' numbers part
    study = optuna.create_study(study_name="this", storage=storage)
    study.ask()
    trial = study.ask()
    reached = optuna.trial.Trial(optuna.load_study(study_name="this", storage=storage), _storage_id(trial))
    assert reached.number == trial.number == 1
    reached.set_user_attr("pruned_at_epoch", 3)  # what OptunaPruning writes from the trial's process
    assert study.trials[1].user_attrs == {"pruned_at_epoch": 3}
