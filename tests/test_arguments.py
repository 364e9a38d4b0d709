"""The parser: flags are written in full, and a config file's syntax error names the file and line."""

import pytest


@pytest.mark.parametrize("args", [["--trainer.max_epoch=1"], ["--trainer.max_epoch", "1"]], ids=["joined", "apart"])
def test_an_abbreviated_flag_is_refused_with_the_full_one_suggested(refused, args):
    err = refused("fit", *args)
    assert "unrecognized arguments: --trainer.max_epoch" in err and "did you mean --trainer.max_epochs?" in err


@pytest.mark.parametrize("subcommand", ["validate", "test"])
def test_abbreviations_are_refused_in_every_subcommand(refused, subcommand):
    assert "did you mean --data.batch_size?" in refused(subcommand, "--data.batch=8")


def test_yaml_syntax_error_names_the_file_and_line(refused, tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("model:\n  decay: [1.0e-6\ndata:\n  batch_size: 32\n")
    err = refused("fit", f"--config={config}")
    assert f"{config}, line 3, column 5:" in err and "flow sequence at line 2" in err
    assert "<unicode string>" not in err
