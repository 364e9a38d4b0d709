"""A run's arguments, checked in-process before any run starts: a config that would run code is
refused by the check itself, and a warning that holds for every config is said once."""

import os

import pytest

from src.errors import UserInputError
from src.run_args import check_run_args, check_runs_args, resolve_config


def test_a_config_that_would_run_code_is_refused_by_the_up_front_check(tmp_path):
    marker = tmp_path / "code-ran"
    config = tmp_path / "shared.yaml"
    config.write_text(f"model: {{optimizer: {{class_path: os.system, init_args: {{command: 'touch {marker}'}}}}}}\n")
    with pytest.raises(UserInputError, match="The arguments for the shared runs are not valid: model.optimizer: "
                                             "os.system is a function"):
        check_run_args(config, [])
    assert not marker.exists()


def test_a_warning_that_holds_for_every_config_is_said_once_not_once_per_config(caplog):
    too_many = str(len(os.sched_getaffinity(0)) + 1)  # training processes: more than the cores
    args = ["--trainer.accelerator=cpu", f"--trainer.devices={too_many}"]
    resolved = check_runs_args((resolve_config(name), args) for name in ("sgd", "adam"))
    optimizers = [config["model"]["optimizer"]["class_path"] for config in resolved]
    assert optimizers == ["src.optim.KerasSGD", "src.optim.KerasAdam"]  # each config checked, in order
    assert caplog.text.count(f"--trainer.devices {too_many} starts") == 1

    check_run_args(resolve_config("sgd"), args)  # a check on its own says it again
    assert caplog.text.count(f"--trainer.devices {too_many} starts") == 2
