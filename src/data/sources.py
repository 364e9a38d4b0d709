"""Where CIFAR-10 comes from, decoded once into a uint8 cache (:mod:`src.data.cache`) that later
runs load in seconds.

Sources, in the order they are tried:

1. the cache in ``data_dir``, made by an earlier run from the same source as it is now (the
   cache records the source's fingerprint);
2. ``source``: an image-folder copy (:mod:`src.data.image_folder`: a directory or ``.tar.gz``
   holding only ``train/<class>/*`` and ``test/<class>/*``, PNG or JPEG, perhaps inside one
   folder), such as the shared ``cifar10-jpg.tar.gz``;
3. torchvision's CIFAR-10 in ``data_dir`` (``cifar-10-batches-py``), downloaded if missing
   and a network is there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.error import URLError

import numpy as np

from src.data.cache import CACHE_NAME, read_cache, source_state, still_current, write_cache
from src.data.image_folder import read_image_folder
from src.data.splits import SPLITS, Split
from src.errors import UserInputError

log = logging.getLogger(__name__)


def load_cifar10(data_dir: str | Path, source: str | Path | None = None, download: bool = True) -> dict[str, Split]:
    """The train and test splits, from the cache if it still holds what its source holds, or else
    from the first source that has them."""
    data_dir = Path(data_dir)
    cache = data_dir / CACHE_NAME
    source = Path(source) if source else None
    origin = str(source.resolve()) if source else "torchvision"
    state = source_state(source) if source else None  # before decoding: a change meanwhile shows next time
    with _removed_if_left_empty(data_dir):
        stored, recorded = read_cache(cache, origin) if cache.is_file() else (None, None)
        if stored is not None and (source is None or still_current(cache, source, state, recorded)):
            if state is not None and recorded is None:  # checked above: kept, and now fingerprinted
                write_cache(cache, stored, origin, state.fingerprint)
                log.info("Recorded the fingerprint of %s in the cache %s, made before caches kept one", source, cache)
            return stored
        splits = read_image_folder(source) if source else _read_torchvision(data_dir, download)
        write_cache(cache, splits, origin, state.fingerprint if state else "")
        return splits


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

