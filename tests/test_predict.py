"""Predictions for folders and files of images: a CSV a person can read, bad files skipped."""

import csv
import shutil
from pathlib import Path

import pytest
from PIL import Image

from src.cli import main as cli_main
from src.data.splits import CLASSES
from src.predict import main

HEADER = ["file", "class", "probability", *(f"p_{name}" for name in CLASSES)]


def predict(*args: str | Path) -> list[dict[str, str]]:
    main([str(a) for a in args])
    output = Path(str(args[args.index("--output") + 1]))
    with output.open(newline="") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == HEADER
        return list(reader)


@pytest.fixture
def mixed_folder(image_folder: Path, tmp_path: Path) -> Path:
    """Three test images, a text file, a 64x48 image and a hidden file, in nested folders."""
    folder = tmp_path / "mixed"
    for name in ("airplane", "cat", "truck"):
        (folder / name).mkdir(parents=True)
        shutil.copy(next((image_folder / "test" / name).iterdir()), folder / name / "a.png")
    (folder / "notes.txt").write_text("not an image")
    Image.new("RGB", (64, 48), "red").save(folder / "cat" / "big.png")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    return folder


@pytest.mark.parametrize("kind", ["pt2", "torchscript", "onnx", "run_dir"])
def test_the_synthetic_test_folder_is_classified_well_above_chance(exported, trained_run, image_folder, tmp_path, kind):
    if kind == "onnx":
        pytest.importorskip("onnxruntime")
    model = trained_run if kind == "run_dir" else exported[kind]
    rows = predict(model, image_folder / "test", "--output", tmp_path / "p.csv", "--batch_size=32")
    assert len(rows) == 10 * len(CLASSES)
    assert [r["file"] for r in rows] == sorted(r["file"] for r in rows)
    correct = sum(Path(r["file"]).parent.name == r["class"] for r in rows)
    assert correct / len(rows) > 0.5  # chance is 0.1
    for row in rows:
        probabilities = [float(row[f"p_{name}"]) for name in CLASSES]
        assert sum(probabilities) == pytest.approx(1, abs=1e-4)
        assert float(row["probability"]) == max(probabilities) == float(row[f"p_{row['class']}"])


def test_bad_files_are_reported_and_skipped(exported, mixed_folder, tmp_path, capsys):
    rows = predict(exported["pt2"], mixed_folder, "--output", tmp_path / "p.csv")
    assert [Path(r["file"]).relative_to(mixed_folder).as_posix() for r in rows] == [
        "airplane/a.png", "cat/a.png", "truck/a.png",
    ]
    err = capsys.readouterr().err
    assert f"skipped {mixed_folder / 'notes.txt'}: not an image" in err
    assert f"skipped {mixed_folder / 'cat' / 'big.png'}: 64x48 pixels, not 32x32" in err
    assert ".DS_Store" not in err
    assert "Classified 3 images" in err and "skipped 2" in err


def test_resize_opts_in_to_other_sizes_and_single_files_work(exported, mixed_folder, tmp_path):
    big, small = mixed_folder / "cat" / "big.png", mixed_folder / "truck" / "a.png"
    rows = predict(exported["pt2"], big, small, "--resize", "--output", tmp_path / "p.csv")
    assert [r["file"] for r in rows] == [str(big), str(small)]


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_model", "does not exist. Give a file written by `python -m src.export`"),
        ("not_a_model", "is not a TorchScript file"),
        ("not_a_pt2", "is not a .pt2 archive"),
        ("missing_images", "does not exist. Give image files or folders"),
        ("empty_folder", "No files found in"),
        ("no_image_among_files", "None of the 1 files is a 32x32 image"),
        ("zero_batch", "--batch_size must be at least 1"),
    ],
)
def test_mistakes_get_one_clear_message(exported, tmp_path, capsys, case, expected):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "notes.pt2").write_text("not an exported program")
    model = str(exported["pt2"])
    args = {
        "missing_model": [str(tmp_path / "model.pt2"), str(tmp_path)],
        "not_a_model": [str(tmp_path / "notes.txt"), str(tmp_path)],
        "not_a_pt2": [str(tmp_path / "notes.pt2"), str(tmp_path)],
        "missing_images": [model, str(tmp_path / "nothing")],
        "empty_folder": [model, str(tmp_path / "empty")],
        "no_image_among_files": [model, str(tmp_path / "notes.txt")],
        "zero_batch": [model, str(tmp_path), "--batch_size=0"],
    }[case]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, f"--output={tmp_path / 'p.csv'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_the_lightning_cli_points_to_the_predict_command(synthetic_args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["predict", *synthetic_args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "python -m src.predict" in err and "Traceback" not in err


@pytest.mark.parametrize("failure", ["no_image_among_files", "missing_model"])
def test_a_failed_prediction_leaves_an_existing_output_as_it_was(exported, tmp_path, capsys, failure):
    output = tmp_path / "predictions.csv"
    output.write_text("file,class\nearlier.png,cat\n")
    (tmp_path / "notes.txt").write_text("not an image")
    model = tmp_path / "gone.pt2" if failure == "missing_model" else exported["pt2"]
    with pytest.raises(SystemExit) as exit_info:
        main([str(model), str(tmp_path / "notes.txt"), f"--output={output}"])
    assert exit_info.value.code == 2
    assert output.read_text() == "file,class\nearlier.png,cat\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "predictions.csv"]  # no partial file


def test_an_unwritable_output_is_refused_before_classifying(exported, image_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(exported["pt2"]), str(image_folder / "test"), f"--output={tmp_path}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"Cannot write {tmp_path} (a folder)" in err and "Classified" not in err
