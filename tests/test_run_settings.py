"""A run's settings: every checkpoint keeps those it trained with, and a resume may change only
where and how long it runs, never what it trains."""

import pytest

from src.checkpoint_files import load_checkpoint
from src.errors import UserInputError
from src.run_settings import RESUME_MAY_CHANGE, SETTINGS_KEY, check_resume, trained_settings


def trained(settings: dict | None = None, **hparams) -> dict:
    """A checkpoint as far as a resume reads it: the settings its run kept, its model's hyperparameters."""
    return {**({SETTINGS_KEY: settings} if settings is not None else {}),
            "hyper_parameters": {"_instantiator": "pytorch_lightning.cli.instantiate_module", **hparams}}


def test_a_resume_may_change_where_and_how_long_but_not_what(tmp_path):
    saved = {"seed_everything": 42, "model.optimizer.init_args.lr": 0.01, "model.decay": 0.0}
    checkpoint = trained(saved, decay=0.0)
    check_resume(tmp_path / "last.ckpt", checkpoint, saved, tmp_path)
    with pytest.raises(UserInputError, match=r"model.optimizer.init_args.lr: trained with 0.01, given 0.05; "
                                             r"seed_everything: trained with 42, given 7"):
        check_resume(tmp_path / "last.ckpt", checkpoint, {**saved, "seed_everything": 7,
                                                           "model.optimizer.init_args.lr": 0.05}, tmp_path)


def test_the_settings_a_checkpoint_keeps_are_whats_compared_not_its_runs_edited_config_yaml(tmp_path):
    (tmp_path / "config.yaml").write_text("model:\n  optimizer:\n    init_args:\n      lr: 0.05\n")
    assert trained_settings(trained({"model.optimizer.init_args.lr": 0.01}), tmp_path / "config.yaml") == {
        "model.optimizer.init_args.lr": 0.01}


def test_a_checkpoint_that_keeps_no_settings_is_compared_with_its_config_yaml_and_its_hyperparameters(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "seed_everything: 42\ntrainer:\n  max_epochs: 10\nmodel:\n  decay: 0.001\ndata:\n  data_dir: a\n"
    )
    assert trained_settings(trained(decay=0.0), tmp_path / "config.yaml") == {"seed_everything": 42, "model.decay": 0.0}


def test_every_checkpoint_keeps_the_settings_its_run_trained_with_and_nothing_a_resume_may_change(trained_run):
    settings = load_checkpoint(trained_run / "checkpoints" / "last.ckpt")[SETTINGS_KEY]
    assert settings["model.optimizer.class_path"] == "src.optim.KerasAdam"
    assert settings["model.optimizer.init_args.lr"] == 1e-3 and settings["data.val_split"] == 100
    assert not [key for key in settings if key.startswith(RESUME_MAY_CHANGE)]


def test_a_run_from_before_fast_existed_resumes_and_what_fast_set_is_compared(tmp_path):
    checkpoint = trained({"trainer.precision": None}, fast_dropout=False)  # keeps no "fast": --fast came later
    plain = {"trainer.precision": None, "model.fast_dropout": False}
    check_resume(tmp_path / "last.ckpt", checkpoint, plain, tmp_path)
    with pytest.raises(UserInputError, match=r"model.fast_dropout: trained with False, given True; "
                                             r"trainer.precision: trained with None, given 'bf16-mixed'"):
        check_resume(tmp_path / "last.ckpt", checkpoint,
                     {"trainer.precision": "bf16-mixed", "model.fast_dropout": True}, tmp_path)
