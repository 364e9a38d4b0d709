"""The Python API for Jupyter: results as a table, and progress a notebook can take."""

import shlex
import sys
from types import SimpleNamespace

import pytest

from src.errors import UserInputError
from src.notebook import run_config, run_study, run_sweep, table


@pytest.mark.slow
def test_run_config_returns_its_row_with_a_line_per_epoch_at_most(tiny_run_args, tmp_path):
    lines = []
    rows = run_config("adam", seed=7, overrides=tiny_run_args, save_dir=tmp_path, progress=lines.append)
    assert isinstance(rows, list) and len(rows) == 1  # no pandas here: a list of dicts
    row = rows[0]
    assert (row["config"], row["seed"], row["status"], row["stop_reason"]) == ("adam", 7, "finished", "max_epochs")
    assert row["optimizer"] == "src.optim.KerasAdam" and row["test_acc"] is not None
    assert row["run_dir"] == str(tmp_path / "adam" / "seed_7")
    # a first and a last line, start and end, and at most one per epoch (the 2 s poll may miss one)
    assert 4 <= len(lines) <= 6
    assert all("step" not in line for line in lines)

    again = []  # re-executing the cell reads the results instead of retraining
    rerun = run_config("adam", seed=7, overrides=tiny_run_args, save_dir=tmp_path, progress=again.append)[0]
    assert rerun["status"] == "complete" and "1 already complete, 0 to run" in again[0]
    assert {**rerun, "status": "finished"} == row


def test_run_sweep_returns_the_report_table(small_sweep, tiny_run_args):
    lines = []
    rows = run_sweep(["adam", "sgd", str(small_sweep.dir.parent / "sgd_lr_1e6.yaml")], seeds=2,
                     sweep_dir=small_sweep.dir, overrides=tiny_run_args, progress=lines.append)
    assert [row["config"] for row in rows][:1] == ["adam"]  # synthetic data: Adam learns it in two epochs
    assert {row["config"] for row in rows} == set(small_sweep.configs)
    assert (small_sweep.dir / "report.md").is_file()
    assert len(lines) == 3  # nothing to run: the sweep's two lines and the report's


def test_one_config_and_a_string_of_overrides_are_read_as_written(small_sweep, tiny_run_args):
    lines = []
    run_sweep("adam", seeds=2, sweep_dir=small_sweep.dir, overrides=shlex.join(tiny_run_args), progress=lines.append)
    assert "2 runs, 2 already complete, 0 to run" in lines[0]  # one config, adam; not configs a, d, a, m

    (row,) = run_config("adam", seed="43", overrides=tiny_run_args, save_dir=small_sweep.dir, progress=print)
    assert (row["config"], row["seed"], row["status"]) == ("adam", 43, "complete")


@pytest.mark.parametrize("call, message", [
    # the bad flag after it: were [] taken for every config, it would be refused for that flag instead
    (lambda: run_sweep([], overrides=["--no_such_flag=1"]), "No configs given (an empty list)"),
    (lambda: run_config("adam", seed="forty-two"), "seed takes a whole number, got 'forty-two'"),
    (lambda: run_config(["adam"]), "run_config trains one config, given by its name or path; got ['adam']"),
    (lambda: run_sweep("adam", seeds=None), "--seeds takes a whole number, got None"),
    (lambda: run_sweep(["adam"], overrides=["--trainer.max_epochs", 2]), "The run arguments must be strings"),
], ids=["no configs", "seed not a number", "several configs to run_config", "seeds None", "an override not a string"])
def test_what_the_notebook_functions_cannot_take_is_refused_with_a_message(call, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default run directories, should anything get so far
    with pytest.raises(UserInputError) as refused:
        call()
    assert message in str(refused.value)
    assert not (tmp_path / "runs").exists()


def test_run_study_returns_one_row_per_trial(small_study, tiny_run_args):
    rows = run_study(small_study.space, n_trials=0, study_dir=small_study.dir, overrides=tiny_run_args, progress=print)
    assert [row["trial"] for row in rows] == [0, 1, 2]
    assert rows[1]["state"] == "pruned" and rows[1]["pruned_at_epoch"] == 1
    assert rows[0]["model.optimizer.lr"] == 1e-3 and rows[0]["test_acc"] is not None


def test_table_is_a_dataframe_when_pandas_is_there(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", SimpleNamespace(DataFrame=lambda rows: ("DataFrame", rows)))
    assert table([{"a": 1}]) == ("DataFrame", [{"a": 1}])
