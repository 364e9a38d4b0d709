"""Settings that cannot work are refused before a run writes anything, each with its fix."""

import logging
import os

import pytest
import torch

from src.cli import HparamLabCLI


@pytest.fixture
def cut_checkpoint(tmp_path):
    """A checkpoint file cut off halfway, as a copy interrupted by a full disk leaves it."""
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "epoch": 3}, whole)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return cut


def test_double_precision_is_refused_naming_the_supported_ones(refused):
    err = refused("fit", "--trainer.precision=64")
    assert "--trainer.precision 64 is not supported" in err and "32-true, 32, bf16-mixed, bf16, 16-mixed, 16" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_accelerator_without_a_gpu_is_refused(refused):
    err = refused("fit", "--trainer.accelerator=gpu")
    assert "no GPU is available" in err and "--trainer.accelerator cpu" in err


@pytest.mark.parametrize("accelerator", ["tpu", "mps"])
def test_an_accelerator_lightning_finds_no_device_for_is_refused(refused, accelerator):
    err = refused("fit", f"--trainer.accelerator={accelerator}")
    assert f"Lightning finds no {accelerator} device here" in err and "--trainer.accelerator cpu" in err


def test_disabling_checkpoints_is_refused_with_what_to_do_instead(refused):
    err = refused("fit", "--trainer.enable_checkpointing=false")
    assert "not supported" in err and "--ckpt_path runs/<name>/version_N/checkpoints/last.ckpt" in err


def test_zero_epochs_is_refused_rather_than_testing_untrained_weights(refused):
    err = refused("fit", "--trainer.max_epochs=0")
    assert "--trainer.max_epochs 0 trains nothing" in err


def test_trainer_settings_lightning_refuses_get_one_message(refused):
    err = refused("fit", "--trainer.max_epochs=-2")
    assert "The trainer settings do not work together" in err and "You passed in -2" in err


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test"])
def test_missing_checkpoint_is_named(refused, tmp_path, subcommand):
    err = refused(subcommand, f"--ckpt_path={tmp_path / 'gone.ckpt'}")
    assert f"--ckpt_path {tmp_path / 'gone.ckpt'}: no such file" in err


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test"])
def test_truncated_checkpoint_is_named_with_the_fix(refused, cut_checkpoint, subcommand):
    err = refused(subcommand, f"--ckpt_path={cut_checkpoint}")
    assert f"--ckpt_path {cut_checkpoint} is not a complete checkpoint" in err and "Copy it again" in err


def test_truncated_new_stage_checkpoint_is_named(refused, cut_checkpoint):
    err = refused("fit", f"--new_stage_from={cut_checkpoint}")
    assert f"--new_stage_from {cut_checkpoint} is not a complete checkpoint" in err


@pytest.mark.parametrize("ckpt_path", [None, "best"])
def test_evaluating_needs_a_checkpoint_file(refused, ckpt_path):
    err = refused("test", *([f"--ckpt_path={ckpt_path}"] if ckpt_path else []))
    assert "`test` evaluates a checkpoint: give its path with --ckpt_path" in err


def test_more_cpu_processes_than_cores_is_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    with caplog.at_level(logging.WARNING, logger="src"):
        cli = HparamLabCLI(["--trainer.accelerator=cpu", "--trainer.devices=3", "--trainer.logger=false"], run=False)
    assert cli.trainer.num_devices == 3  # taken, not refused
    assert "--trainer.devices 3 starts 3 training processes on 2 CPU cores" in caplog.text
