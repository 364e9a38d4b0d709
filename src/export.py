"""``python -m src.export RUN_DIR_OR_CKPT [--format pt2|torchscript|onnx] [--output PATH]``.

Saves a run's best checkpoint as one file that classifies images without this project (the
notebook's ``model.save``). The exported model takes exactly what a decoded 32x32 image file
is, uint8 RGB of shape (N, 32, 32, 3), scales and transposes it as training did (x/255, NCHW,
no mean/std) and returns softmax probabilities in ``CLASSES`` order, so no caller can feed it
differently preprocessed inputs by mistake. The class names travel inside the file: the extra
file ``classes.json`` (``torch.export``'s ``.pt2``, TorchScript's ``.pt``), or the ONNX metadata
property ``classes``. ``pt2`` is the default: TorchScript is deprecated in torch 2.14 and is kept
for consumers that still load it (libtorch's ``torch::jit::load``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from src.checkpoint_files import BEST_CHECKPOINTS, CHECKPOINT_DIR, best_candidates, best_checkpoint, load_checkpoint
from src.commands import command_parser
from src.data.batches import to_float_nchw
from src.data.splits import CLASSES, IMAGE_SHAPE
from src.errors import CannotWrite, UserInputError, exit_on_user_error
from src.files import write_atomic
from src.model import KerasCifarCNN

Format = Literal["pt2", "torchscript", "onnx"]
SUFFIXES: dict[str, str] = {"pt2": ".pt2", "torchscript": ".pt", "onnx": ".onnx"}
CLASSES_FILE = "classes.json"  # extra file of a .pt2 or TorchScript export
CLASSES_KEY = "classes"  # ONNX metadata property
# Traced on a batch of 2 (a batch of 1 would be specialised), exported for any batch size.
EXAMPLE_IMAGES = (torch.zeros(2, *IMAGE_SHAPE, dtype=torch.uint8),)
ANY_BATCH = {"images": {0: torch.export.Dim("batch")}}
NET_PREFIX = "net."  # CifarClassifier keeps the network as .net


class ImageClassifier(nn.Module):
    """uint8 NHWC images → class probabilities: the trained network with its input scaling inside."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: Tensor) -> Tensor:
        return self.net(to_float_nchw(images)).softmax(dim=1)


def find_checkpoint(path: Path) -> Path:
    """``path`` itself if it is a file, else the best checkpoint of the run directory ``path``
    (see :func:`src.checkpoint_files.best_checkpoint`)."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise UserInputError(
            f"{path} does not exist. Give a run directory (runs/<config>/version_N) or a .ckpt file."
        )
    best = best_checkpoint(path)
    if best:
        return best
    candidates = best_candidates(path)
    found = f"several: {', '.join(c.name for c in candidates)}" if candidates else "none"
    raise UserInputError(
        f"Cannot tell the best checkpoint of {path}: its results.json names none that exists, and looking for "
        f"{CHECKPOINT_DIR}/{BEST_CHECKPOINTS} found {found}. Give a run directory written by "
        "`python -m src.cli fit` (runs/<config>/version_N), or the .ckpt file itself."
    )


def load_classifier(path: Path) -> ImageClassifier:
    """The best checkpoint of a run directory (or the given ``.ckpt``), on the CPU, ready for inference."""
    checkpoint = find_checkpoint(path)
    state = load_checkpoint(checkpoint)["state_dict"]
    net = KerasCifarCNN()
    try:
        net.load_state_dict({k.removeprefix(NET_PREFIX): v for k, v in state.items() if k.startswith(NET_PREFIX)})
    except RuntimeError as err:
        raise UserInputError(
            f"{checkpoint} is not a checkpoint of this project's model ({err}). "
            "Give a run directory (runs/<config>/version_N) or one of its checkpoints/*.ckpt files."
        ) from err
    return ImageClassifier(net).eval().requires_grad_(False)


def default_output(path: Path, fmt: Format) -> Path:
    """``<run_dir>/model.pt2`` (``.pt``, ``.onnx``) for a run directory, else beside the given checkpoint."""
    return (path / "model" if path.is_dir() else path).with_suffix(SUFFIXES[fmt])


def export(path: Path, output: Path, fmt: Format = "pt2") -> None:
    """Write the classifier from ``path`` (a run directory or ``.ckpt``) to ``output`` as ``fmt``:
    serialised in memory first, then written whole, so a full disk leaves no part of a file."""
    content = _serialize(load_classifier(path), fmt)
    try:
        write_atomic(output, content)
    except CannotWrite as err:
        raise CannotWrite(output, err.error, "or choose another --output") from err


def _serialize(classifier: ImageClassifier, fmt: Format) -> bytes:
    """The file's content: torch's writers never see the disk, where a failed write aborts the process."""
    if fmt == "onnx":
        return _onnx_program(classifier).model_proto.SerializeToString()
    buffer = io.BytesIO()
    classes = {CLASSES_FILE: json.dumps(CLASSES)}
    if fmt == "pt2":
        program = torch.export.export(classifier, EXAMPLE_IMAGES, dynamic_shapes=ANY_BATCH)
        torch.export.save(program, buffer, extra_files=classes)
    else:
        torch.jit.save(torch.jit.script(classifier), buffer, _extra_files=classes)
    return buffer.getvalue()


def _onnx_program(classifier: ImageClassifier) -> torch.onnx.ONNXProgram:
    """One self-contained model (weights inside), with the class names as metadata."""
    try:
        program = torch.onnx.export(
            classifier, EXAMPLE_IMAGES, dynamo=True, verbose=False,
            input_names=["images"], output_names=["probabilities"], dynamic_shapes=ANY_BATCH,
        )
    except ImportError as err:
        raise UserInputError(
            f"ONNX export needs the onnx and onnxscript packages ({err}): pip install -e '.[onnx]'."
        ) from err
    program.model.metadata_props[CLASSES_KEY] = json.dumps(CLASSES)
    return program


def main(args: list[str] | None = None) -> None:
    parser = command_parser(
        "export",
        "Export a run's best checkpoint to one file that takes uint8 (N, 32, 32, 3) RGB images and returns "
        "class probabilities.",
    )
    parser.add_argument("run", type=Path, help="a run directory (runs/<config>/version_N) or a .ckpt file")
    parser.add_argument("--format", choices=list(SUFFIXES), default="pt2",
                        help="pt2: torch.export (default); torchscript: deprecated in torch, for libtorch; onnx")
    parser.add_argument("--output", type=Path,
                        help="default: <run_dir>/model.pt2 (.pt, .onnx), or beside the .ckpt")
    options = parser.parse_args(args)
    with exit_on_user_error():
        checkpoint = find_checkpoint(options.run)
        output = options.output or default_output(options.run, options.format)
        export(checkpoint, output, options.format)
    print(f"Exported {checkpoint} to {output} ({options.format}).")


if __name__ == "__main__":
    main()
