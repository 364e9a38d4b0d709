"""The Keras peer's own contract, checked without TensorFlow: a python that lacks it is told how to get it."""

import subprocess
import sys

import numpy as np

from tests.scripts.conftest import SCRIPTS


def test_a_python_without_tensorflow_gets_one_error_line_and_status_2(without_tensorflow):
    run = subprocess.run([sys.executable, str(SCRIPTS / "keras_peer.py"), "--steps=1", "--warmup=0"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stdout == ""
    (line,) = run.stderr.splitlines()
    assert line.startswith("error: ") and "No module named 'tensorflow'" in line and 'pip install -e ".[peer]"' in line


def test_both_frameworks_train_on_the_same_random_images(scripts):
    images, labels = scripts("keras_peer").random_arrays(64, 0)
    split = scripts("benchmark").random_split(64, 0)
    assert images.dtype == np.uint8 and images.shape == (64, 32, 32, 3)
    assert np.array_equal(split.images, images) and np.array_equal(split.labels, labels)
