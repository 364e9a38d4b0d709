"""Where CIFAR-10 comes from, decoded once into a uint8 cache that later runs load in seconds.

Sources, in the order they are tried:

1. the cache in ``data_dir`` (made by an earlier run from the same source);
2. ``source``: an image-folder copy (a directory or ``.tar.gz`` holding
   ``train/<class>/*`` and ``test/<class>/*``, PNG or JPEG), such as the shared
   ``cifar10-jpg.tar.gz``;
3. torchvision's CIFAR-10 in ``data_dir`` (``cifar-10-batches-py``), downloaded if missing
   and a network is there.
"""

from __future__ import annotations

import io
import logging
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import URLError

import numpy as np
from PIL import Image, UnidentifiedImageError

from src.errors import CannotWrite, UserInputError
from src.results import atomic_file

log = logging.getLogger(__name__)

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
IMAGE_SHAPE = (32, 32, 3)
CACHE_NAME = "cifar10-uint8.npz"
PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class Split:
    """Images as uint8 (N, 32, 32, 3), labels as int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray


def load_cifar10(data_dir: str | Path, source: str | Path | None = None, download: bool = True) -> dict[str, Split]:
    """The train and test splits, from the cache or else from the first source that has them."""
    data_dir = Path(data_dir)
    cache = data_dir / CACHE_NAME
    origin = str(Path(source).resolve()) if source else "torchvision"
    stored = _read_cache(cache, origin) if cache.is_file() else None
    if stored is not None:
        return stored
    splits = read_image_folder(source) if source else _read_torchvision(data_dir, download)
    write_cache(cache, splits, origin)
    return splits


def _read_cache(cache: Path, origin: str) -> dict[str, Split] | None:
    """The cached splits if ``cache`` was made from ``origin``; None (said why) when it must be rebuilt."""
    try:
        with np.load(cache) as stored:
            if str(stored["origin"]) != origin:
                log.info("Cache %s was made from %s; rebuilding it from %s", cache, stored["origin"], origin)
                return None
            return {s: Split(stored[f"{s}_images"], stored[f"{s}_labels"]) for s in SPLITS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("The cache %s is not a readable .npz file (%s); rebuilding it from %s",
                    cache, type(err).__name__, origin)
        return None


def write_cache(cache: Path, splits: dict[str, Split], origin: str) -> None:
    """Save decoded splits as the cache a run with ``--data.data_dir`` reads instead of decoding
    ``origin`` again (also how a benchmark puts random images where a run finds CIFAR-10)."""
    arrays = {f"{s}_{field}": getattr(splits[s], field) for s in SPLITS for field in ("images", "labels")}
    try:
        with atomic_file(cache, "wb") as file:  # a crashed run never leaves a half-written cache
            np.savez(file, origin=np.array(origin), **arrays)
    except CannotWrite as err:
        raise CannotWrite(
            cache, err.error, "or point --data.data_dir at another directory; the source itself may stay read-only"
        ) from err


def _read_torchvision(data_dir: Path, download: bool) -> dict[str, Split]:
    from torchvision.datasets import CIFAR10

    try:
        datasets = {s: CIFAR10(str(data_dir), train=s == "train", download=download) for s in SPLITS}
    except (URLError, OSError, RuntimeError) as err:
        raise UserInputError(
            f"CIFAR-10 was not found in {data_dir.resolve()} and could not be downloaded ({err}). "
            "Without a network, give an image-folder copy, e.g. "
            "--data.source ../shared/data/cifar10-jpg.tar.gz (a directory or .tar.gz holding "
            "train/<class>/*.jpg and test/<class>/*.jpg), or put torchvision's "
            f"cifar-10-batches-py folder into {data_dir.resolve()}."
        ) from err
    return {s: Split(np.asarray(d.data, dtype=np.uint8), np.asarray(d.targets, dtype=np.int64)) for s, d in datasets.items()}


def read_image_folder(source: str | Path) -> dict[str, Split]:
    """Decode an image-folder copy of CIFAR-10 (directory or ``.tar.gz``); labels follow ``CLASSES``."""
    source = Path(source)
    if source.is_dir():
        files = _files_in_directory(source)
    elif source.is_file() and tarfile.is_tarfile(source):
        files = _files_in_tar(source)
    else:
        problem = "is neither a directory nor a .tar(.gz) archive" if source.exists() else "was not found"
        raise UserInputError(
            f"The data source {source} {problem}{'' if source.is_absolute() else f' (in {Path.cwd()})'}. Give "
            "a folder or archive holding train/<class>/* and test/<class>/* images, e.g. "
            "--data.source ../shared/data/cifar10-jpg.tar.gz."
        )
    found: dict[str, dict[str, list[tuple[str, np.ndarray]]]] = {s: {} for s in SPLITS}
    started, count = time.perf_counter(), 0
    for split, class_name, name, data in files:
        found[split].setdefault(class_name, []).append((name, _decode(source, f"{split}/{class_name}/{name}", data)))
        count += 1
        if count % PROGRESS_EVERY == 0:
            log.info("Decoded %d images from %s (%.0f s)", count, source, time.perf_counter() - started)
    log.info("Decoded %d images from %s in %.1f s", count, source, time.perf_counter() - started)
    return {split: _stack(source, split, found[split]) for split in SPLITS}


def _stack(source: Path, split: str, by_class: dict[str, list[tuple[str, np.ndarray]]]) -> Split:
    missing = [c for c in CLASSES if not by_class.get(c)]
    unknown = sorted(set(by_class) - set(CLASSES))
    if missing or unknown:
        raise UserInputError(
            f"The image folder {source} has no '{split}' images for class(es) {', '.join(missing) or '-'}"
            f"{' and unknown class folder(s) ' + ', '.join(unknown) if unknown else ''}. CIFAR-10 needs "
            f"{split}/<class>/ folders named exactly {', '.join(CLASSES)}."
        )
    images, labels = [], []
    for label, class_name in enumerate(CLASSES):
        for _, image in sorted(by_class[class_name], key=lambda item: item[0]):
            images.append(image)
            labels.append(label)
    return Split(np.stack(images), np.asarray(labels, dtype=np.int64))


def decode_rgb(data: bytes) -> np.ndarray:
    """An image file's bytes as uint8 (height, width, 3) RGB, whatever its mode (grey, palette,
    RGBA). Raises PIL's ``UnidentifiedImageError`` or ``OSError`` for what is not a readable image."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _decode(source: Path, name: str, data: bytes) -> np.ndarray:
    try:
        array = decode_rgb(data)
    except (UnidentifiedImageError, OSError) as err:
        raise UserInputError(
            f"{name} in {source} is not a readable image ({err}). The image folder must hold only "
            "PNG or JPEG images; remove or replace that file."
        ) from err
    if array.shape != IMAGE_SHAPE:
        raise UserInputError(
            f"{name} in {source} is {array.shape[1]}x{array.shape[0]} pixels; CIFAR-10 images are 32x32. "
            "Resize it or remove it from the folder."
        )
    return array


def _split_and_class(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """``(split, class)`` for a path ending in ``<split>/<class>/<file>``, else None."""
    if len(parts) >= 3 and parts[-3] in SPLITS and not parts[-1].startswith("."):
        return parts[-3], parts[-2]
    return None


def _files_in_directory(root: Path) -> Iterator[tuple[str, str, str, bytes]]:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        where = _split_and_class(path.relative_to(root).parts)
        if where:
            yield (*where, path.name, path.read_bytes())


def _files_in_tar(archive: Path) -> Iterator[tuple[str, str, str, bytes]]:
    read = 0
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                where = _split_and_class(PurePosixPath(member.name).parts) if member.isfile() else None
                if where:
                    yield (*where, PurePosixPath(member.name).name, tar.extractfile(member).read())
                    read += 1
    except (EOFError, OSError, tarfile.TarError, zlib.error) as err:
        raise UserInputError(
            f"The archive {archive} is truncated or corrupt: reading stopped after {read} images "
            f"({type(err).__name__}: {err}). Copy or download it again, or give the unpacked folder."
        ) from err
