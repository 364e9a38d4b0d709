"""scripts/staged_fit.py: the notebook's recompile-with-a-new-lr as one command, and its own
flags kept apart from those it passes to every stage."""

import subprocess
import sys
from pathlib import Path

import pytest

from src.results import RunRecord

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_stage_starts_from_the_previous_best(image_folder, data_dir, tmp_path):
    output = subprocess.run(
        [
            sys.executable, "scripts/staged_fit.py",
            "--stages", "configs/adam.yaml", "configs/adam_stage2_lr_1e-4.yaml",
            "--name=adam_staged", f"--save_dir={tmp_path}",
            f"--data.source={image_folder}", f"--data.data_dir={data_dir}", "--data.val_split=100",
            "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false",
        ],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    assert "stage 2/2" in output
    rows = [line.split() for line in output.splitlines() if line[:1].isdigit()]
    assert [row[:3] for row in rows] == [["1", "1e-03", "1-1"], ["2", "1e-04", "2-2"]]  # epochs carry on
    first, second = (RunRecord.read(tmp_path / "adam_staged" / f"stage_{n}") for n in (1, 2))
    assert Path(second.resumed_from) == tmp_path / "adam_staged" / "stage_1" / first.best_checkpoint


@pytest.mark.parametrize("flag", ["--stage=configs/sgd.yaml", "--save_d=elsewhere", "--nam=x"])
def test_its_own_flags_abbreviated_are_refused(scripts, capsys, tmp_path, flag):
    with pytest.raises(SystemExit) as exit_info:
        scripts("staged_fit").main([flag, f"--save_dir={tmp_path / 'runs'}"])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert f"{flag.split('=')[0]} abbreviates --" in err and "write it in full" in err
    assert "stage 1" not in out and not (tmp_path / "runs").exists()
