"""An image-folder copy of CIFAR-10 (a directory or ``.tar.gz`` holding ``train/<class>/*`` and
``test/<class>/*``, PNG or JPEG, perhaps inside one folder): its layout checked by name before any
image is decoded, so that a stray copy is never trained on or labelled by the wrong folder.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import tarfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from src.data.splits import CLASSES, IMAGE_SHAPE, SPLITS, Split
from src.errors import UserInputError

log = logging.getLogger(__name__)

PROGRESS_EVERY = 10_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_image_folder(source: str | Path) -> dict[str, Split]:
    """Decode an image-folder copy of CIFAR-10 (directory or ``.tar.gz``); labels follow ``CLASSES``.
    Its layout is checked before any image is decoded."""
    source = Path(source)
    with listed(source) as (paths, read):
        wanted = {path: (split, class_name) for split, by_class in layout(source, paths).items()
                  for class_name, files in by_class.items() for path in files}
        found: dict[str, dict[str, list[tuple[str, np.ndarray]]]] = {s: {c: [] for c in CLASSES} for s in SPLITS}
        started, count = time.perf_counter(), 0
        for path in paths:  # in the source's own order: an archive is read front to back
            if path in wanted:
                split, class_name = wanted[path]
                found[split][class_name].append((posixpath.basename(path), _decode(source, path, read(path))))
                count += 1
                if count % PROGRESS_EVERY == 0:
                    log.info("Decoded %d images from %s (%.0f s)", count, source, time.perf_counter() - started)
    log.info("Decoded %d images from %s in %.1f s", count, source, time.perf_counter() - started)
    return {split: _stack(found[split]) for split in SPLITS}


def _stack(by_class: dict[str, list[tuple[str, np.ndarray]]]) -> Split:
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


def layout(source: Path, paths: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    """The images to read, ``{split: {class: [path]}}``: the files of ``train/<class>/`` and
    ``test/<class>/``, at the source's top or inside a single folder there (``cifar10-jpg/``).
    Anything else that could pass for data is refused by name before anything is decoded;
    non-image files at the top (a README) are left alone."""
    paths = list(paths)
    parts = [tuple(path.split("/")) for path in paths]
    top: tuple[str, ...] = ()  # wrapping folders: while a level holds one folder and no split folder
    while True:
        folders = {p[len(top)] for p in parts if len(p) > len(top) + 1 and p[: len(top)] == top}
        if len(folders) != 1 or folders & set(SPLITS):
            break
        top += (folders.pop(),)
    found: dict[str, dict[str, list[str]]] = {split: {} for split in SPLITS}
    strays: Counter[tuple[str, str]] = Counter()  # (file or folder, what is wrong with it) -> files in it
    for path, p in zip(paths, parts):
        base = top if p[: len(top)] == top else p[:-1]  # not under ``top``: a file beside a wrapping folder
        inner = p[len(base):]
        if len(inner) <= 1:
            if not p[-1].lower().endswith(IMAGE_SUFFIXES):
                continue
            stray = (path, "an image outside train/ and test/")
        elif inner[0] not in SPLITS:
            stray = ("/".join(base + inner[:1]) + "/", "a folder other than train/ and test/")
        elif len(inner) == 2:
            stray = (path, f"a file in {'/'.join(base + inner[:1])}/, outside any class folder")
        elif len(inner) > 3:
            class_folder = "/".join(base + inner[:2])
            stray = (f"{class_folder}/{inner[2]}/", f"a folder inside class folder {class_folder}/")
        else:
            found[inner[0]].setdefault(inner[1], []).append(path)
            continue
        strays[stray] += 1
    if strays:
        named = [f"{name} ({f'{count} file(s), ' if name.endswith('/') else ''}{why})"
                 for (name, why), count in strays.items()]
        within = "".join(f"{folder}/" for folder in top)
        raise UserInputError(
            f"The data source {source} holds files outside {within}train/<class>/ and {within}test/<class>/: "
            f"{'; '.join(named[:3])}{f'; and {len(named) - 3} more' if len(named) > 3 else ''}. Only those class "
            "folders are read: a copy elsewhere would double images or label them by the wrong folder. Move "
            "these out of the source, or point --data.source at the folder that holds train/ and test/."
        )
    for split in SPLITS:
        missing = [c for c in CLASSES if not found[split].get(c)]
        unknown = sorted(set(found[split]) - set(CLASSES))
        if missing or unknown:
            raise UserInputError(
                f"The image folder {source} has no '{split}' images for class(es) {', '.join(missing) or '-'}"
                f"{' and unknown class folder(s) ' + ', '.join(unknown) if unknown else ''}. CIFAR-10 needs "
                f"{split}/<class>/ folders named exactly {', '.join(CLASSES)}."
            )
    return found


def _hidden(path: str) -> bool:
    """Names starting with a dot (``.DS_Store``, ``._0001.jpg``, ``.git/``) are the system's, not data."""
    return any(part.startswith(".") for part in path.split("/"))


def walk(root: Path) -> tuple[dict[str, os.stat_result], int]:
    """Every file under ``root`` by relative POSIX path, hidden names left out, and the newest
    inode change (ctime) of anything below ``root``: one stat per entry, nothing read."""
    files: dict[str, os.stat_result] = {}
    changed_ns, pending = 0, [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    info = entry.stat()
                except FileNotFoundError:  # a dangling link
                    continue
                changed_ns = max(changed_ns, info.st_ctime_ns)
                if entry.is_dir(follow_symlinks=False):  # as rglob: a link to a folder is not followed
                    pending.append((Path(entry.path), f"{prefix}{entry.name}/"))
                elif entry.is_file():
                    files[prefix + entry.name] = info
    return dict(sorted(files.items())), changed_ns


@contextmanager
def listed(source: Path) -> Iterator[tuple[list[str], Callable[[str], bytes]]]:
    """A directory's or archive's file paths (relative, POSIX, hidden names left out) and a
    function that reads one of them."""
    if source.is_dir():
        yield list(walk(source)[0]), lambda path: (source / path).read_bytes()
    elif source.is_file() and tarfile.is_tarfile(source):
        try:
            with tarfile.open(source) as tar:
                members = {posixpath.normpath(m.name): m for m in tar.getmembers() if m.isfile()}
                members = {name: member for name, member in members.items() if not _hidden(name)}
                yield list(members), lambda path: tar.extractfile(members[path]).read()
        except (EOFError, OSError, tarfile.TarError, zlib.error) as err:
            raise UserInputError(
                f"The archive {source} is truncated or corrupt ({type(err).__name__}: {err}). "
                "Copy or download it again, or give the unpacked folder."
            ) from err
    else:
        problem = "is neither a directory nor a .tar(.gz) archive" if source.exists() else "was not found"
        raise UserInputError(
            f"The data source {source} {problem}{'' if source.is_absolute() else f' (in {Path.cwd()})'}. Give "
            "a folder or archive holding train/<class>/* and test/<class>/* images, e.g. "
            "--data.source ../shared/data/cifar10-jpg.tar.gz."
        )
