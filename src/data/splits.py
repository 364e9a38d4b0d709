"""What every source of CIFAR-10 gives: a train and a test split of 32x32 RGB uint8 images, labelled
in the official class order, so that the sources, the cache and the tools that name classes agree."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
IMAGE_SHAPE = (32, 32, 3)


@dataclass(frozen=True)
class Split:
    """Images as uint8 (N, 32, 32, 3), labels as int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray
