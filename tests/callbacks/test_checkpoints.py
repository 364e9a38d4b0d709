"""The project's checkpoint callbacks stay compatible with Lightning's and follow a moved run."""

from pathlib import Path

from pytorch_lightning.callbacks import ModelCheckpoint

from src.callbacks.checkpoints import ResumeCheckpoint, RunCheckpoint


def test_checkpoints_written_with_lightnings_class_restore_into_ours():
    assert RunCheckpoint(monitor="val_acc", mode="max").state_key == ModelCheckpoint(monitor="val_acc", mode="max").state_key
    assert ResumeCheckpoint().state_key == ModelCheckpoint(monitor=None).state_key


def test_a_moved_run_keeps_its_best_scores_and_paths(tmp_path):
    old, new = Path("/old/run/checkpoints"), tmp_path / "checkpoints"
    callback = RunCheckpoint(dirpath=str(new), monitor="val_acc", mode="max")
    callback.load_state_dict({
        "monitor": "val_acc", "best_model_score": 0.7, "best_model_path": str(old / "best-epoch001.ckpt"),
        "current_score": 0.6, "dirpath": str(old), "best_k_models": {str(old / "best-epoch001.ckpt"): 0.7},
        "kth_best_model_path": str(old / "best-epoch001.ckpt"), "kth_value": 0.7, "last_model_path": "",
    })
    assert callback.best_model_score == 0.7
    assert callback.best_model_path == str(new / "best-epoch001.ckpt")
    assert callback.best_k_models == {str(new / "best-epoch001.ckpt"): 0.7}
