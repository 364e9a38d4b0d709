"""New stages from checkpoints: the notebook's recompile-with-a-new-lr, and continuing a run."""

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.cli import main
from src.module import CifarClassifier
from src.optim import KerasAdam
from src.paths import CONFIG_DIR
from src.stages import stage_checkpoint
from tests.synthetic import quiet_fit_args

pytestmark = pytest.mark.slow  # every test stages from first_stage's run

ADAM = [f"--config={CONFIG_DIR / 'adam.yaml'}", "--model.decay=1e-3", "--test_after_fit=false"]


@pytest.fixture(scope="module")
def first_stage(image_folder, data_dir, tmp_path_factory):
    """Two epochs of Adam (decay 1e-3, 16 steps an epoch), shared by the tests that stage from it."""
    root = tmp_path_factory.mktemp("stages")
    stage = ["--run_name=staged", "--trainer.logger.init_args.version=stage_1", "--trainer.max_epochs=2"]
    main(["fit", *ADAM, *stage, *quiet_fit_args(image_folder, data_dir, root)])
    return json.loads((root / "runs" / "staged" / "stage_1" / "results.json").read_text())


def checkpoint_of(results, name="last.ckpt"):
    return Path(results["run_dir"]) / "checkpoints" / name


def new_adam_module(lr):
    return CifarClassifier(optimizer=lambda params: KerasAdam(params, lr=lr), decay=1e-3)


def test_fresh_stage_has_new_lr_empty_optimizer_state_and_restarted_judges(first_stage):
    saved = torch.load(checkpoint_of(first_stage), weights_only=False)
    staged = stage_checkpoint(saved, new_adam_module(1e-4), keep_optimizer_state=False, source="x.ckpt")
    assert staged["optimizer_states"][0]["state"] == {}
    assert staged["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    assert staged["lr_schedulers"][0]["last_epoch"] == 0
    judges = ("StagedEarlyStopping", "ModelCheckpoint")
    assert any(key.startswith(judges) for key in saved["callbacks"])
    assert not any(key.startswith(judges) for key in staged["callbacks"])
    assert staged["state_dict"] is saved["state_dict"] and staged["loops"] is saved["loops"]


def test_kept_optimizer_state_keeps_moments_and_decay_counter(first_stage):
    saved = torch.load(checkpoint_of(first_stage), weights_only=False)
    staged = stage_checkpoint(saved, new_adam_module(1e-3), keep_optimizer_state=True, source="x.ckpt")
    steps = saved["global_step"]
    assert staged["lr_schedulers"][0]["last_epoch"] == steps
    assert staged["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-3 / (1 + 1e-3 * steps))
    assert saved["optimizer_states"][0]["state"]
    for index, state in saved["optimizer_states"][0]["state"].items():
        assert torch.equal(staged["optimizer_states"][0]["state"][index]["exp_avg"], state["exp_avg"])


def test_a_stage_continues_epochs_and_steps_with_the_new_lr(fit, first_stage):
    best = next(checkpoint_of(first_stage).parent.glob("best-*.ckpt"))
    start_epoch = torch.load(best, weights_only=False)["epoch"] + 1
    second = fit(
        *ADAM, "--model.optimizer.lr=1e-4", "--trainer.max_epochs=2", f"--new_stage_from={best}",
        "--run_name=staged", "--trainer.logger.init_args.version=stage_2",
    )
    assert [h["epoch"] for h in second["history"]] == [start_epoch + 1, start_epoch + 2]  # 2 more epochs
    assert second["history"][0]["lr"] == pytest.approx(1e-4 / (1 + 1e-3 * 16))  # fresh decay: 16 steps an epoch
    assert second["resumed_from"] == str(best)

    def val_acc_steps(results):
        events = EventAccumulator(results["run_dir"])
        events.Reload()
        return [e.step for e in events.Scalars("val_acc")]

    assert min(val_acc_steps(second)) > min(val_acc_steps(first_stage))  # one continuous step axis


def test_continuing_a_finished_run_keeps_its_optimizer(fit, first_stage):
    more = fit(
        *ADAM, "--trainer.max_epochs=1", f"--new_stage_from={checkpoint_of(first_stage)}",
        "--keep_optimizer_state=true", "--run_name=continued",
    )
    assert [h["epoch"] for h in more["history"]] == [3]
    steps = 3 * 16  # the decay counter went on from the first run's 32 updates
    assert more["history"][0]["lr"] == pytest.approx(1e-3 / (1 + 1e-3 * steps))


def test_resume_and_new_stage_together_are_refused(fit, first_stage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit(*ADAM, "--ckpt_path=last", f"--new_stage_from={checkpoint_of(first_stage)}")
    assert exit_info.value.code == 2
    assert "either --ckpt_path" in capsys.readouterr().err
