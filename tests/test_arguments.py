"""The parser: flags are written in full, a config file's syntax error names the file and line, and a
config or flag can name only the classes its fields take, never a function that would run code."""

import pytest

from src.cli import main


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


# Forms of a config that would run code when the classes are built: each names a function, in
# the optimizer's class_path (a Callable field, which jsonargparse lets take a function) or in a
# callback's hook; the first two would create MARKER.
CODE_IN_CONFIG = {
    "os.system": "model: {optimizer: {class_path: os.system, init_args: {command: 'touch MARKER'}}}",
    "subprocess": "model: {optimizer: {class_path: subprocess.getoutput, init_args: {cmd: 'touch MARKER'}}}",
    "builtins.eval": "model: {optimizer: {class_path: builtins.eval}}",
    "callback hook": "trainer: {callbacks: [{class_path: pytorch_lightning.callbacks.LambdaCallback, "
                     "init_args: {on_fit_start: os.system}}]}",
}


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "code-ran"


@pytest.mark.parametrize("print_config", [False, True], ids=["fit", "print_config"])
@pytest.mark.parametrize("form", CODE_IN_CONFIG)
def test_a_config_that_names_a_function_is_refused_before_anything_runs(refused, tmp_path, marker, form, print_config):
    config = tmp_path / "shared.yaml"
    config.write_text(CODE_IN_CONFIG[form].replace("MARKER", str(marker)))
    err = refused("fit", f"--config={config}", *(["--print_config"] if print_config else []))
    assert "is a function, but" in err and "A config or flag may name only the classes" in err
    assert not marker.exists()


def test_a_flag_that_names_a_function_is_refused_even_one_that_returns_an_optimizer(refused, marker):
    spec = f'{{"class_path": "os.system", "init_args": {{"command": "touch {marker}"}}}}'
    assert "model.optimizer: os.system is a function" in refused("fit", f"--model.optimizer={spec}")
    assert not marker.exists()
    err = refused("fit", "--model.optimizer=src.optim.compile_update", "--print_config")
    assert "src.optim.compile_update is a function, but model.optimizer takes a subclass of torch.optim" in err


def test_classes_the_fields_take_still_parse(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model.optimizer=torch.optim.SGD", "--model.optimizer.lr=0.1",
              "--trainer.callbacks+=pytorch_lightning.callbacks.DeviceStatsMonitor", "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "class_path: torch.optim.SGD" in printed and "DeviceStatsMonitor" in printed
