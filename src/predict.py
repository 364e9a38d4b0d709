"""``python -m src.predict MODEL_OR_RUN_DIR IMAGES... [--output predictions.csv]``.

Classifies image files, or folders of them (searched recursively, in sorted order), into a CSV
of ``file, class, probability`` (the top class) plus one ``p_<class>`` column per class. The
model is a file from ``python -m src.export`` (``.pt2``, TorchScript ``.pt`` or ``.onnx``), or a
run directory or ``.ckpt``, whose best checkpoint is then used directly.

A file that cannot be classified (not an image, or not 32x32 without ``--resize``) is reported
on stderr and skipped: one bad file must not cost the predictions for all the others.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from src.commands import command_parser
from src.data.image_folder import decode_rgb
from src.data.splits import CLASSES, IMAGE_SHAPE
from src.errors import CannotWrite, UserInputError, exit_on_user_error
from src.export import CLASSES_FILE, CLASSES_KEY, load_classifier
from src.files import write_atomic

PROGRESS_EVERY = 5_000
Classifier = Callable[[Tensor], Tensor]  # uint8 (N, 32, 32, 3) → probabilities (N, classes)


class Unclassifiable(Exception):
    """A file that is skipped; the message says why."""


@dataclass(frozen=True)
class Summary:
    classified: int
    skipped: list[tuple[Path, str]]


def load_model(path: Path) -> tuple[Classifier, tuple[str, ...]]:
    """The classifier in ``path`` and its class names: a ``.pt2``, TorchScript or ``.onnx`` file
    from ``src.export``, or a run directory or ``.ckpt`` (its best checkpoint, used directly)."""
    if not path.exists():
        raise UserInputError(
            f"The model {path} does not exist. Give a file written by `python -m src.export` (.pt2, .pt or "
            ".onnx), a run directory (runs/<config>/version_N) or a .ckpt file."
        )
    if path.is_dir() or path.suffix == ".ckpt":
        return load_classifier(path), CLASSES
    loaders = {".pt2": _load_exported_program, ".onnx": _load_onnx}
    return loaders.get(path.suffix, _load_torchscript)(path)


def _load_exported_program(path: Path) -> tuple[Classifier, tuple[str, ...]]:
    extra = {CLASSES_FILE: ""}
    if not zipfile.is_zipfile(path):  # checked first: torch.export.load logs a traceback before it raises
        raise UserInputError(f"{path} is not a .pt2 archive. Export one with `python -m src.export RUN_DIR`.")
    try:
        model = torch.export.load(path, extra_files=extra).module()
    except (RuntimeError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise UserInputError(f"{path} is not a torch.export program ({err}). "
                             "Export one with `python -m src.export RUN_DIR`.") from err
    return model, _classes_inside(path, extra)


def _load_torchscript(path: Path) -> tuple[Classifier, tuple[str, ...]]:
    extra = {CLASSES_FILE: ""}
    try:
        model = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as err:
        raise UserInputError(
            f"{path} is not a TorchScript file ({err}). Export one with "
            "`python -m src.export RUN_DIR --format torchscript`, or a .pt2 with `python -m src.export RUN_DIR`."
        ) from err
    return model, _classes_inside(path, extra)


def _classes_inside(path: Path, extra: dict[str, str]) -> tuple[str, ...]:
    """The class names an export carries as its extra file."""
    if not extra[CLASSES_FILE]:
        raise UserInputError(f"{path} has no class names inside; export it with `python -m src.export RUN_DIR`.")
    return tuple(json.loads(extra[CLASSES_FILE]))


def _load_onnx(path: Path) -> tuple[Classifier, tuple[str, ...]]:
    try:
        import onnxruntime
    except ImportError as err:
        raise UserInputError(
            f"Running {path} needs onnxruntime (pip install -e '.[onnx]'), or use the default .pt2 export "
            "(`python -m src.export RUN_DIR`) or the run directory itself."
        ) from err
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own untyped errors for files it cannot read
        raise UserInputError(
            f"{path} is not a readable ONNX model ({err}). Export one with "
            "`python -m src.export RUN_DIR --format onnx`."
        ) from err
    classes = session.get_modelmeta().custom_metadata_map.get(CLASSES_KEY)
    if classes is None:
        raise UserInputError(
            f"{path} has no class names inside; export it with `python -m src.export RUN_DIR --format onnx`."
        )
    input_name = session.get_inputs()[0].name

    def run(images: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {input_name: images.numpy()})[0])

    return run, tuple(json.loads(classes))


def find_files(inputs: list[Path]) -> list[Path]:
    """The given files, and every file under the given folders (sorted, hidden ones left out)."""
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.is_file())
            files += sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            files.append(path)
        else:
            raise UserInputError(f"{path} does not exist. Give image files or folders holding them.")
    if not files:
        raise UserInputError(
            f"No files found in {', '.join(map(str, inputs))}. Give image files or folders holding them."
        )
    return files


def read_image(path: Path, resize: bool) -> np.ndarray:
    """A file as uint8 (32, 32, 3) RGB; raises :class:`Unclassifiable` with the reason it is not one."""
    try:
        image = decode_rgb(path.read_bytes())
    except UnidentifiedImageError as err:
        raise Unclassifiable("not an image (Pillow does not recognise its format)") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise Unclassifiable(f"unreadable ({err})") from err
    if image.shape == IMAGE_SHAPE:
        return image
    height, width = image.shape[:2]
    if not resize:
        raise Unclassifiable(f"{width}x{height} pixels, not 32x32 (--resize to classify it anyway)")
    return np.asarray(Image.fromarray(image).resize((IMAGE_SHAPE[1], IMAGE_SHAPE[0]), Image.Resampling.BICUBIC))


def _batches(
    files: list[Path], batch_size: int, resize: bool, skipped: list[tuple[Path, str]]
) -> Iterator[tuple[list[Path], Tensor]]:
    """Decoded images in batches; files that fail go to ``skipped`` (and stderr) instead."""
    names: list[Path] = []
    images: list[np.ndarray] = []
    for count, path in enumerate(files, 1):
        try:
            images.append(read_image(path, resize))
            names.append(path)
        except Unclassifiable as reason:
            skipped.append((path, str(reason)))
            print(f"skipped {path}: {reason}", file=sys.stderr)
        if len(images) == batch_size or (count == len(files) and images):
            yield names, torch.from_numpy(np.stack(images))
            names, images = [], []
        if count % PROGRESS_EVERY == 0:
            print(f"{count}/{len(files)} files read", file=sys.stderr)


def predict(model: Path, inputs: list[Path], output: Path, batch_size: int = 256, resize: bool = False) -> Summary:
    """Classify the images among ``inputs`` with ``model`` and write the CSV to ``output``."""
    if batch_size < 1:
        raise UserInputError(f"--batch_size must be at least 1, got {batch_size}.")
    _check_writable(output)
    files = find_files(inputs)
    classify, classes = load_model(model)
    skipped: list[tuple[Path, str]] = []
    classified = 0
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["file", "class", "probability", *(f"p_{name}" for name in classes)])
    with torch.inference_mode():
        for names, images in _batches(files, batch_size, resize, skipped):
            for name, probabilities in zip(names, classify(images).tolist()):
                top = max(range(len(classes)), key=probabilities.__getitem__)
                writer.writerow(
                    [name, classes[top], f"{probabilities[top]:.6f}", *(f"{p:.6f}" for p in probabilities)]
                )
            classified += len(names)
    if not classified:
        raise UserInputError(
            f"None of the {len(files)} files is a 32x32 image (reasons above), so nothing was written to {output}. "
            "Give PNG or JPEG images of 32x32 pixels, or --resize to classify images of other sizes."
        )
    try:
        write_atomic(output, table.getvalue())  # whole or not at all: a failed run leaves an old file as it was
    except CannotWrite as err:
        raise CannotWrite(output, err.error, "or choose another --output") from err
    return Summary(classified, skipped)


def _check_writable(output: Path) -> None:
    """Refuse an output that cannot be written before the images are classified, not after."""
    folder = next(p for p in (output.absolute().parent, *output.absolute().parents) if p.exists())
    if output.is_dir() or not os.access(folder, os.W_OK):
        raise UserInputError(
            f"Cannot write {output} ({'a folder' if output.is_dir() else f'{folder} is not writable'}). "
            "Choose another --output."
        )


def main(args: list[str] | None = None) -> None:
    parser = command_parser(
        "predict",
        "Classify images (32x32 RGB, any format Pillow reads) into a CSV of file, class and probabilities. "
        "Files that are not such images are reported and skipped.",
    )
    parser.add_argument("model", type=Path, help="an exported model (.pt2, .pt, .onnx), a run directory or a .ckpt")
    parser.add_argument("images", type=Path, nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--output", type=Path, default=Path("predictions.csv"))
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument(
        "--resize", action="store_true", help="resize images that are not 32x32 (bicubic) instead of skipping them"
    )
    options = parser.parse_args(args)
    started = time.perf_counter()
    with exit_on_user_error():
        summary = predict(options.model, options.images, options.output, options.batch_size, options.resize)
    print(
        f"Classified {summary.classified} images into {options.output} in {time.perf_counter() - started:.1f} s"
        f"{f'; skipped {len(summary.skipped)} (listed above)' if summary.skipped else ''}.",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
