"""The decoded uint8 cache that later runs load in seconds, and the fingerprint of its source that
tells when the cache no longer holds what the source holds and must be rebuilt."""

from __future__ import annotations

import hashlib
import logging
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.data.image_folder import layout, listed, walk
from src.data.splits import SPLITS, Split
from src.errors import CannotWrite
from src.files import atomic_file

log = logging.getLogger(__name__)

CACHE_NAME = "cifar10-uint8.npz"


@dataclass(frozen=True)
class SourceState:
    """What a cache records of its image-folder source, to tell when the source has changed."""

    fingerprint: str  # exact for the files that are read, and readable in a log line
    changed_ns: int  # the newest inode change (ctime) in the source, for a cache without a fingerprint


def source_state(source: Path) -> SourceState | None:
    """A folder's images by relative path, size and mtime (a stat walk, no reading); an archive's
    size and mtime. None when the source is not there. A folder laid out wrongly is refused here."""
    if source.is_dir():
        files, changed_ns = walk(source)
        by_split = layout(source, files).values()
        images = sorted(path for by_class in by_split for paths in by_class.values() for path in paths)
        stats = [(path, files[path].st_size, files[path].st_mtime_ns) for path in images]
        listing = "".join(f"{path}\t{size}\t{mtime_ns}\n" for path, size, mtime_ns in stats)
        return SourceState(
            f"{len(stats)} images, {sum(size for _, size, _ in stats)} bytes, newest modified "
            f"{_when(max(mtime_ns for _, _, mtime_ns in stats))}, "
            f"listing sha256 {hashlib.sha256(listing.encode()).hexdigest()[:16]}",
            changed_ns,
        )
    if source.is_file():
        info = source.stat()
        return SourceState(f"{info.st_size} bytes, modified {_when(info.st_mtime_ns)}", info.st_ctime_ns)
    return None


def still_current(cache: Path, source: Path, state: SourceState | None, recorded: str | None) -> bool:
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
    with listed(source) as (paths, _):
        layout(source, paths)
    return True


def read_cache(cache: Path, origin: str) -> tuple[dict[str, Split] | None, str | None]:
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
    ``fingerprint`` is the source's :class:`SourceState` fingerprint; torchvision's copy has none."""
    arrays = {f"{s}_{field}": getattr(splits[s], field) for s in SPLITS for field in ("images", "labels")}
    try:
        with atomic_file(cache, "wb") as file:  # a crashed run never leaves a half-written cache
            np.savez(file, origin=np.array(origin), fingerprint=np.array(fingerprint), **arrays)
    except CannotWrite as err:
        raise CannotWrite(
            cache, err.error, "or point --data.data_dir at another directory; the source itself may stay read-only"
        ) from err


def _when(ns: int) -> str:
    """A file time to the nanosecond, readable, in UTC (a fingerprint must not depend on the time zone)."""
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(ns // 10**9))}.{ns % 10**9:09d} UTC"
