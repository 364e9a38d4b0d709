"""Every ``python -m src.<tool>``: flags written in full, and a sweep's or a search's own flags
kept apart from those it passes on to its runs."""

import pytest

from src import export, predict, publish, report, search, sweep
from src.commands import command_parser, parse_passing_on


@pytest.mark.parametrize("tool, args, message", [
    (export, ["run_dir", "--form=onnx"], "unrecognized arguments: --form=onnx"),
    (predict, ["model.pt", "images", "--batch=8"], "unrecognized arguments: --batch=8"),
    (publish, ["--rea=elsewhere.md"], "unrecognized arguments: --rea=elsewhere.md"),
    (report, ["sweep_dir", "--ou=elsewhere"], "unrecognized arguments: --ou=elsewhere"),
    (sweep, ["--seed=2", "--configs=sgd"], "--seed abbreviates --seeds; write it in full"),
    (search, ["space.yaml", "--n_trial=2"], "--n_trial abbreviates --n_trials; write it in full"),
], ids=["export", "predict", "publish", "report", "sweep", "search"])
def test_an_abbreviated_flag_is_refused_before_any_work(tool, args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        tool.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_what_a_tool_does_not_know_is_passed_on_to_the_runs_without_a_separator():
    parser = command_parser("sweep", "")
    parser.add_argument("--seeds", type=int)
    args, passed_on = parse_passing_on(parser, ["--seeds=2", "--", "--trainer.max_epochs=5", "--data.val_split", "0"])
    assert args.seeds == 2
    assert passed_on == ["--trainer.max_epochs=5", "--data.val_split", "0"]
