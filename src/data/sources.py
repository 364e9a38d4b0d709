"""Where CIFAR-10 comes from, decoded once into a uint8 cache that later runs load in seconds.

Sources, in the order they are tried:

1. the cache in ``data_dir``, made by an earlier run from the same source as it is now (the
   cache records the source's fingerprint);
2. ``source``: an image-folder copy (a directory or ``.tar.gz`` holding only
   ``train/<class>/*`` and ``test/<class>/*``, PNG or JPEG, perhaps inside one folder), such
   as the shared ``cifar10-jpg.tar.gz``;
3. torchvision's CIFAR-10 in ``data_dir`` (``cifar-10-batches-py``), downloaded if missing
   and a network is there.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import posixpath
import tarfile
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
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
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Split:
    """Images as uint8 (N, 32, 32, 3), labels as int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray


def load_cifar10(data_dir: str | Path, source: str | Path | None = None, download: bool = True) -> dict[str, Split]:
    """The train and test splits, from the cache if it still holds what its source holds, or else
    from the first source that has them."""
    data_dir = Path(data_dir)
    cache = data_dir / CACHE_NAME
    source = Path(source) if source else None
    origin = str(source.resolve()) if source else "torchvision"
    state = _source_state(source) if source else None  # before decoding: a change meanwhile shows next time
    with _removed_if_left_empty(data_dir):
        stored, recorded = _read_cache(cache, origin) if cache.is_file() else (None, None)
        if stored is not None and (source is None or _still_current(cache, source, state, recorded)):
            if state is not None and recorded is None:  # checked above: kept, and now fingerprinted
                write_cache(cache, stored, origin, state.fingerprint)
                log.info("Recorded the fingerprint of %s in the cache %s, made before caches kept one", source, cache)
            return stored
        splits = read_image_folder(source) if source else _read_torchvision(data_dir, download)
        write_cache(cache, splits, origin, state.fingerprint if state else "")
        return splits


@dataclass(frozen=True)
class _SourceState:
    """What a cache records of its image-folder source, to tell when the source has changed."""

    fingerprint: str  # exact for the files that are read, and readable in a log line
    changed_ns: int  # the newest inode change (ctime) in the source, for a cache without a fingerprint


def _source_state(source: Path) -> _SourceState | None:
    """A folder's images by relative path, size and mtime (a stat walk, no reading); an archive's
    size and mtime. None when the source is not there. A folder laid out wrongly is refused here."""
    if source.is_dir():
        files, changed_ns = _walk(source)
        by_split = _layout(source, files).values()
        images = sorted(path for by_class in by_split for paths in by_class.values() for path in paths)
        stats = [(path, files[path].st_size, files[path].st_mtime_ns) for path in images]
        listing = "".join(f"{path}\t{size}\t{mtime_ns}\n" for path, size, mtime_ns in stats)
        return _SourceState(
            f"{len(stats)} images, {sum(size for _, size, _ in stats)} bytes, newest modified "
            f"{_when(max(mtime_ns for _, _, mtime_ns in stats))}, "
            f"listing sha256 {hashlib.sha256(listing.encode()).hexdigest()[:16]}",
            changed_ns,
        )
    if source.is_file():
        info = source.stat()
        return _SourceState(f"{info.st_size} bytes, modified {_when(info.st_mtime_ns)}", info.st_ctime_ns)
    return None


def _still_current(cache: Path, source: Path, state: _SourceState | None, recorded: str | None) -> bool:
    """Whether a cache made from ``source`` still holds what the source holds; says why when not.

    A cache without a fingerprint (made before caches kept one) is kept if nothing in the source
    changed after the cache was written and the source is laid out as it must be."""
    if state is None:
        log.warning("The data source %s is not there; using the cache %s made from it unchecked", source, cache)
        return True
    if recorded is not None:
        if recorded != state.fingerprint:
            log.info("The data source %s changed since the cache %s was made from it (then %s; now %s); "
                     "rebuilding it", source, cache, recorded, state.fingerprint)
        return recorded == state.fingerprint
    if state.changed_ns > cache.stat().st_mtime_ns:
        log.info("The data source %s changed after the cache %s was made from it (%s); rebuilding it",
                 source, cache, state.fingerprint)
        return False
    with _listed(source) as (paths, _):
        _layout(source, paths)
    return True


@contextmanager
def _removed_if_left_empty(folder: Path) -> Iterator[None]:
    """Folders that a failed first load created are removed again if empty: no bare ``data/`` left."""
    created = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        yield
    except BaseException:
        for path in created:  # deepest first
            try:
                path.rmdir()
            except OSError:
                break
        raise


def _read_cache(cache: Path, origin: str) -> tuple[dict[str, Split] | None, str | None]:
    """The cached splits and their source's fingerprint (None in a cache made before caches kept
    one) if ``cache`` was made from ``origin``; no splits (said why) when it must be rebuilt."""
    try:
        with np.load(cache) as stored:
            if str(stored["origin"]) != origin:
                log.info("Cache %s was made from %s; rebuilding it from %s", cache, stored["origin"], origin)
                return None, None
            fingerprint = str(stored["fingerprint"]) if "fingerprint" in stored.files else None
            return {s: Split(stored[f"{s}_images"], stored[f"{s}_labels"]) for s in SPLITS}, fingerprint
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("The cache %s is not a readable .npz file (%s); rebuilding it from %s",
                    cache, type(err).__name__, origin)
        return None, None


def write_cache(cache: Path, splits: dict[str, Split], origin: str, fingerprint: str = "") -> None:
    """Save decoded splits as the cache a run with ``--data.data_dir`` reads instead of decoding
    ``origin`` again (also how a benchmark puts random images where a run finds CIFAR-10).
    ``fingerprint`` is the source's :class:`_SourceState` fingerprint; torchvision's copy has none."""
    arrays = {f"{s}_{field}": getattr(splits[s], field) for s in SPLITS for field in ("images", "labels")}
    try:
        with atomic_file(cache, "wb") as file:  # a crashed run never leaves a half-written cache
            np.savez(file, origin=np.array(origin), fingerprint=np.array(fingerprint), **arrays)
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
    """Decode an image-folder copy of CIFAR-10 (directory or ``.tar.gz``); labels follow ``CLASSES``.
    Its layout is checked before any image is decoded."""
    source = Path(source)
    with _listed(source) as (paths, read):
        wanted = {path: (split, class_name) for split, by_class in _layout(source, paths).items()
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


def _layout(source: Path, paths: Iterable[str]) -> dict[str, dict[str, list[str]]]:
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


def _walk(root: Path) -> tuple[dict[str, os.stat_result], int]:
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
def _listed(source: Path) -> Iterator[tuple[list[str], Callable[[str], bytes]]]:
    """A directory's or archive's file paths (relative, POSIX, hidden names left out) and a
    function that reads one of them."""
    if source.is_dir():
        yield list(_walk(source)[0]), lambda path: (source / path).read_bytes()
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


def _when(ns: int) -> str:
    """A file time to the nanosecond, readable, in UTC (a fingerprint must not depend on the time zone)."""
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(ns // 10**9))}.{ns % 10**9:09d} UTC"
