"""Exported models: one self-contained file that gives the trained module's probabilities."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from src.data.splits import CLASSES
from src.errors import UserInputError
from src.export import CLASSES_FILE, CLASSES_KEY, find_checkpoint, main
from src.module import CifarClassifier
from tests.synthetic import synthetic_images

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def images_and_reference(trained_run: Path) -> tuple[np.ndarray, torch.Tensor]:
    """Synthetic test images (uint8 NHWC) and the best checkpoint's softmax on them, scaled as in training."""
    images, _ = synthetic_images(per_class=3, seed=1)
    (best,) = (trained_run / "checkpoints").glob("best-*.ckpt")
    module = CifarClassifier.load_from_checkpoint(best, map_location="cpu").eval()
    with torch.inference_mode():
        reference = module(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).softmax(dim=1)
    return images, reference


def load_pt2(path: Path, extra: dict[str, str]) -> torch.nn.Module:
    return torch.export.load(path, extra_files=extra).module()


def load_torchscript(path: Path, extra: dict[str, str]) -> torch.nn.Module:
    return torch.jit.load(str(path), _extra_files=extra)


@pytest.mark.parametrize("fmt,load", [("pt2", load_pt2), ("torchscript", load_torchscript)])
def test_a_pytorch_export_gives_the_modules_probabilities(exported, images_and_reference, fmt, load):
    images, reference = images_and_reference
    extra = {CLASSES_FILE: ""}
    model = load(exported[fmt], extra)  # needs nothing from src
    assert tuple(json.loads(extra[CLASSES_FILE])) == CLASSES
    with torch.inference_mode():
        probabilities = model(torch.from_numpy(images))
        single = model(torch.from_numpy(images[:1]))  # any batch size, down to one image
    torch.testing.assert_close(probabilities, reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(single, reference[:1], atol=1e-5, rtol=0)


def test_onnx_file_is_valid_and_gives_the_modules_probabilities(exported, images_and_reference):
    import onnx

    path = exported["onnx"]
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert not list(path.parent.glob("*.onnx.data"))  # weights inside the one file
    assert tuple(json.loads({p.key: p.value for p in model.metadata_props}[CLASSES_KEY])) == CLASSES

    onnxruntime = pytest.importorskip("onnxruntime")
    images, reference = images_and_reference
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"images": images})
    np.testing.assert_allclose(probabilities, reference.numpy(), atol=1e-5, rtol=0)


def test_of_several_best_checkpoints_the_one_results_json_tested_is_exported(tmp_path):
    for name in ("best-epoch001-val_acc0.5000.ckpt", "best-epoch003-val_acc0.7000.ckpt"):
        (tmp_path / "checkpoints").mkdir(exist_ok=True)
        (tmp_path / "checkpoints" / name).touch()
    with pytest.raises(UserInputError, match="found several: best-epoch001.*, best-epoch003"):
        find_checkpoint(tmp_path)  # no record says which: refused rather than guessed
    tested = "runs/x/version_0/checkpoints/best-epoch001-val_acc0.5000.ckpt"  # relative to fit's cwd
    (tmp_path / "results.json").write_text(json.dumps({"tested_checkpoint": tested}))
    # the record wins over the higher score in a name: the exported model is the one whose accuracy was published
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoints" / "best-epoch001-val_acc0.5000.ckpt"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "does not exist. Give a run directory"),
        ("not_a_run", "found none. Give a run directory"),
        ("not_a_checkpoint", "notes.ckpt is not a readable checkpoint"),
        ("unwritable_output", "Cannot write"),
    ],
)
def test_mistakes_get_one_clear_message(capsys, tmp_path, trained_run, case, expected):
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    (tmp_path / "file").touch()
    args = {
        "missing": [str(tmp_path / "nothing")],
        "not_a_run": [str(tmp_path)],
        "not_a_checkpoint": [str(tmp_path / "notes.ckpt")],
        "unwritable_output": [str(trained_run), f"--output={tmp_path / 'file' / 'model.pt2'}"],
    }[case]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_a_checkpoint_exports_beside_itself(tmp_path, trained_run, capsys):
    (best,) = (trained_run / "checkpoints").glob("best-*.ckpt")
    checkpoint = shutil.copy(best, tmp_path / "chosen.ckpt")
    main([str(checkpoint)])
    assert (tmp_path / "chosen.pt2").is_file()
    assert f"to {tmp_path / 'chosen.pt2'}" in capsys.readouterr().out


def test_an_export_onto_a_full_disk_leaves_the_earlier_file_and_one_error_line(small_disk, trained_run, capsys):
    output = small_disk.path / "model.pt2"
    output.write_bytes(b"an earlier export")
    small_disk.fill()
    args = [str(trained_run), f"--output={output}"]
    if small_disk.real:  # torch's own writer aborted the process there (exit 134): run it as a user would
        done = subprocess.run([sys.executable, "-m", "src.export", *args], cwd=ROOT, capture_output=True, text=True)
        code, err = done.returncode, done.stderr
    else:
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        code, err = exit_info.value.code, capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err, err
    assert f"error: Cannot write {output} (no space left on the device)" in err and "--output" in err
    assert output.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in small_disk.path.iterdir()) == sorted(["model.pt2", *(["filler"] * small_disk.real)])
