"""The command line: every experiment config works, and mistakes get one clear message."""

import logging
from pathlib import Path

import pytest
import yaml
from pytorch_lightning.callbacks import DeviceStatsMonitor, LearningRateMonitor, ModelCheckpoint

from src.callbacks.console import EpochLog
from src.callbacks.divergence import DivergenceGuard
from src.callbacks.run_results import RunResults
from src.callbacks.tensorboard_hparams import TensorBoardHparams
from src.cli import BASE_CONFIG, HparamLabCLI, main
from src.run_messages import quiet_lightning
from tests.synthetic import write_tarball
from tests.test_fast import AMX_CPU, AVX2_CPU, on_a_cpu_with

CONFIGS = sorted(BASE_CONFIG.parent.glob("*.yaml"))
EXPERIMENTS = [c for c in CONFIGS if c != BASE_CONFIG]
NOTEBOOK_EXPERIMENTS = {
    "rmsprop_baseline", "rmsprop_lr_1e-3", "rmsprop_lr_1e-5", "rmsprop_decay_1e-7", "rmsprop_decay_1e-5",
    "rmsprop_decay_1e-2", "sgd", "sgd_momentum", "sgd_nesterov", "adam",
}


def printed_config(capsys, *args: str) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def test_every_notebook_experiment_has_a_config():
    assert NOTEBOOK_EXPERIMENTS <= {c.stem for c in EXPERIMENTS}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.stem)
def test_config_parses_alone_with_the_shared_defaults(capsys, config):
    resolved = printed_config(capsys, f"--config={config}")
    experiment = yaml.safe_load(config.read_text())
    assert resolved["trainer"]["max_epochs"] == experiment.get("trainer", {}).get("max_epochs", 100)
    assert resolved["data"]["batch_size"] == 32
    assert resolved["early_stopping"]["monitor"] == "val_acc"
    assert resolved["early_stopping"]["patience"] == 5
    if "optimizer" in experiment.get("model", {}):
        wanted = experiment["model"]["optimizer"]
        assert resolved["model"]["optimizer"]["class_path"] == wanted["class_path"]
        for key, value in wanted["init_args"].items():
            assert resolved["model"]["optimizer"]["init_args"][key] == value


def test_experiment_files_say_only_what_differs(capsys):
    base = yaml.safe_load(BASE_CONFIG.read_text())
    for config in EXPERIMENTS:
        experiment = yaml.safe_load(config.read_text())
        assert set(experiment) <= {"model", "data", "early_stopping", "trainer"}, config.name
        for section, values in experiment.items():
            for key, value in values.items():
                assert base.get(section, {}).get(key) != value, f"{config.name} repeats {section}.{key}"


def test_flags_override_any_hyperparameter(capsys):
    resolved = printed_config(
        capsys,
        f"--config={BASE_CONFIG.parent / 'sgd_nesterov.yaml'}",
        "--model.optimizer.lr=0.05",
        "--data.batch_size=64",
        "--trainer.max_epochs=7",
        "--early_stopping.patience=9",
    )
    assert resolved["model"]["optimizer"]["init_args"]["lr"] == 0.05
    assert resolved["model"]["optimizer"]["init_args"]["nesterov"] is True
    assert (resolved["data"]["batch_size"], resolved["trainer"]["max_epochs"]) == (64, 7)
    assert resolved["early_stopping"]["patience"] == 9


def test_callbacks_every_run_needs_show_in_the_config(capsys):
    resolved = printed_config(capsys)
    assert resolved["run_results"]["class_path"] == "src.callbacks.run_results.RunResults"
    assert resolved["tensorboard_hparams"]["class_path"] == "src.callbacks.tensorboard_hparams.TensorBoardHparams"
    assert resolved["divergence"]["check_every_n_steps"] == 10
    assert set(resolved["last_checkpoint"]) == {"dirpath"}  # last.ckpt's rules are the class's, not settings


def callbacks_of(tmp_path: Path, *args: str) -> list:
    cli = HparamLabCLI([*args, f"--trainer.logger.init_args.save_dir={tmp_path}"], run=False)
    return cli.trainer.callbacks


def test_a_config_with_its_own_callbacks_keeps_the_required_ones(tmp_path):
    own = tmp_path / "own_callbacks.yaml"
    own.write_text("trainer:\n  callbacks:\n    - class_path: pytorch_lightning.callbacks.LearningRateMonitor\n")
    callbacks = callbacks_of(tmp_path, f"--config={own}", "--divergence.check_every_n_steps=3")
    kinds = {type(c) for c in callbacks}
    assert {RunResults, TensorBoardHparams, DivergenceGuard, LearningRateMonitor} <= kinds
    assert EpochLog not in kinds  # its list replaced base.yaml's optional ones, as base.yaml says
    checkpoints = {c.filename for c in callbacks if isinstance(c, ModelCheckpoint)}
    assert checkpoints == {"last", "best-epoch{epoch:03d}-val_acc{val_acc:.4f}"}
    assert next(c for c in callbacks if isinstance(c, DivergenceGuard)).check_every_n_steps == 3


def test_an_added_callback_keeps_base_yamls_and_the_required_ones(tmp_path):
    callbacks = callbacks_of(tmp_path, "--trainer.callbacks+=pytorch_lightning.callbacks.DeviceStatsMonitor")
    kinds = {type(c) for c in callbacks}
    assert {DeviceStatsMonitor, EpochLog, LearningRateMonitor, RunResults, TensorBoardHparams, DivergenceGuard} <= kinds


def test_log_level_info_brings_lightnings_messages_back(tmp_path):
    try:
        callbacks_of(tmp_path, "--log_level=INFO")
        assert logging.getLogger("pytorch_lightning.utilities.rank_zero").isEnabledFor(logging.INFO)
    finally:
        quiet_lightning("WARNING")


# the quick tier runs one config of each optimizer; every config runs in the full suite
QUICK_CONFIGS = {"sgd_nesterov", "rmsprop_baseline", "adam_auto_staged"}


@pytest.mark.parametrize("config", [
    pytest.param(config, id=config.stem, marks=() if config.stem in QUICK_CONFIGS else pytest.mark.slow)
    for config in CONFIGS
])
def test_config_runs_a_fast_dev_run_fit(synthetic_args, config):
    cli = HparamLabCLI(["fit", f"--config={config}", "--trainer.fast_dev_run=2", *synthetic_args])
    assert cli.trainer.global_step == 2
    assert 0.0 <= float(cli.trainer.callback_metrics["test_acc"]) <= 1.0


# --- mistakes ----------------------------------------------------------------------------


def test_unknown_optimizer_class(refused):
    err = refused("fit", "--model.optimizer=torch.optim.Adamm")
    assert "torch.optim.Adamm" in err


def test_negative_learning_rate(refused):
    err = refused("fit", "--model.optimizer=torch.optim.SGD", "--model.optimizer.lr=-0.1")
    assert "Invalid learning rate: -0.1" in err and "--model.optimizer" in err


@pytest.mark.parametrize(
    "flag, limit",
    [
        ("--model.decay=-1e-6", "NonNegativeFloat: -1e-6 does not conform to restriction v>=0"),
        ("--model.label_smoothing=2.0", "ClosedUnitInterval: 2.0 does not conform to restriction v>=0 and v<=1"),
        ("--early_stopping.patience=-1", "NonNegativeInt: -1 does not conform to restriction v>=0"),
        ("--early_stopping.lr_stages=0", "PositiveInt: 0 does not conform to restriction v>0"),
        ("--early_stopping.lr_factor=1", "OpenUnitInterval: 1 does not conform to restriction v>0 and v<1"),
        ("--data.batch_size=0", "PositiveInt: 0 does not conform to restriction v>0"),
        ("--data.val_split=-1", "NonNegativeInt: -1 does not conform to restriction v>=0"),
        ("--divergence.check_every_n_steps=0", "PositiveInt: 0 does not conform to restriction v>0"),
    ],
)
def test_a_value_out_of_range_fails_while_parsing_naming_the_limit(refused, flag, limit):
    err = refused("fit", flag)
    assert f'Parser key "{flag[2:].split("=")[0]}"' in err and limit in err


def test_limits_show_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--model.label_smoothing LABEL_SMOOTHING for ``loss: cross_entropy`` only. (type: ClosedUnitInterval" in help_text
    assert "(type: NonNegativeInt, default: 5000)" in help_text  # data.val_split


def test_typo_in_a_config_key(refused, tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("model:\n  decya: 1.0e-6\n")
    err = refused("fit", f"--config={config}")
    assert "model.decya" in err


def test_missing_shared_defaults_are_refused_not_skipped(refused, tmp_path, monkeypatch):
    # jsonargparse skips a missing default config file silently; every run would lose base.yaml
    monkeypatch.setattr("src.cli.BASE_CONFIG", tmp_path / "configs" / "base.yaml")
    err = refused("fit", "--print_config")
    assert "base.yaml" in err and "incomplete" in err


def test_missing_data_without_network(capsys, tmp_path, monkeypatch):
    import urllib.request
    from urllib.error import URLError

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--data.data_dir={tmp_path / 'nothing'}", f"--trainer.logger.init_args.save_dir={tmp_path}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "could not be downloaded" in err and "--data.source" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--data.val_split=600"], "data.val_split=600 leaves 0 of the 600 training images"),
        (["--data.val_split=595", "--data.batch_size=1"], "holds out every training image of airplane"),
        (["--data.source=nothere.tar.gz"], "The data source nothere.tar.gz was not found"),
        (["--trainer.limit_val_batches=0.5"], "0.5 of the `val_dataloader` but 0.5 * 1 < 1"),  # 100 images, 1 batch
    ],
    ids=["hold-out-too-large", "hold-out-takes-a-class", "missing-source", "eval-fraction-below-a-batch"],
)
def test_data_mistakes_leave_no_run_directory(refused, synthetic_args, flags, message):
    assert message in refused("fit", *synthetic_args, *flags)


def test_truncated_archive_leaves_no_run_directory(refused, image_folder, tmp_path):
    whole = write_tarball(image_folder, tmp_path / "cifar.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    err = refused("fit", f"--data.source={tmp_path / 'cut.tar.gz'}", f"--data.data_dir={tmp_path / 'data'}")
    assert "cut.tar.gz is truncated or corrupt" in err
    assert not (tmp_path / "data").exists()  # no cache made from half an archive


@pytest.mark.parametrize("flags,given,precision", [
    (AMX_CPU, [], "bf16-mixed"),
    (AVX2_CPU, [], "32-true"),
    (AMX_CPU, ["--trainer.precision=32-true"], "32-true"),  # given on the command line: kept
    (AVX2_CPU, ["--trainer.precision=bf16-mixed"], "bf16-mixed"),
])
def test_fast_picks_the_precision_this_cpu_runs_fastest_unless_one_is_given(monkeypatch, tmp_path, flags, given,
                                                                           precision):
    on_a_cpu_with(monkeypatch, flags)
    cli = HparamLabCLI(["--fast=true", "--trainer.accelerator=cpu", *given,
                        f"--trainer.logger.init_args.save_dir={tmp_path}"], run=False)
    assert cli.trainer.precision == precision
    assert cli.model.hparams.fast_dropout and cli.model.hparams.compile_update
    assert cli.fast.precision == precision and (cli.fast.why == "given explicitly") == bool(given)


def test_a_precision_a_config_file_gives_is_kept_by_fast(monkeypatch, tmp_path):
    on_a_cpu_with(monkeypatch, AMX_CPU)
    config = tmp_path / "float32.yaml"
    config.write_text("trainer:\n  precision: 32-true\n")
    cli = HparamLabCLI([f"--config={config}", "--fast=true", "--trainer.accelerator=cpu",
                        f"--trainer.logger.init_args.save_dir={tmp_path}"], run=False)
    assert cli.trainer.precision == "32-true" and cli.model.hparams.fast_dropout


def test_without_fast_nothing_changes(monkeypatch, tmp_path):
    on_a_cpu_with(monkeypatch, AMX_CPU)
    cli = HparamLabCLI(["--trainer.accelerator=cpu", f"--trainer.logger.init_args.save_dir={tmp_path}"], run=False)
    assert cli.trainer.precision == "32-true" and cli.fast is None
    assert not cli.model.hparams.fast_dropout and not cli.model.hparams.compile_update


def test_a_fast_run_says_and_records_what_it_turned_on(fit, monkeypatch, caplog):
    on_a_cpu_with(monkeypatch, AMX_CPU)
    with caplog.at_level(logging.INFO, logger="src"):
        results = fit("--fast=true", "--trainer.accelerator=cpu", "--trainer.max_epochs=1",
                      "--trainer.limit_train_batches=2")
    said = [r.getMessage() for r in caplog.records if r.name == "src.run_messages"]
    assert "fast     precision bf16-mixed (the CPU has avx512_bf16 and amx_bf16), fast dropout masks, compiled " \
           "optimizer update" in said
    assert not any(line.startswith("hint") for line in said)
    assert results["hparams"]["fast"] == {"precision": "bf16-mixed", "fast_dropout": True, "compile_update": True}
    assert results["hparams"]["precision"] == "bf16-mixed" and results["hparams"]["compile_update"]


def test_fit_trains_with_freed_memory_kept(fit, monkeypatch):
    calls = []
    monkeypatch.setattr("src.cli.keep_freed_memory", lambda: calls.append("kept"))
    results = fit("--trainer.max_epochs=1", "--trainer.limit_train_batches=2")
    assert calls == ["kept"] and results["stop_reason"] == "max_epochs"
