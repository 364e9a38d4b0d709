"""A rung of the JPEG ladder: the same archive, every image encoded again at the asked quality."""

import io
import subprocess
import sys
import tarfile

import numpy as np
from PIL import Image, JpegImagePlugin

from tests.scripts.conftest import SCRIPTS
from tests.scripts.test_keras_reference import archive


def images(path):
    with tarfile.open(path) as tar:
        return {m.name: Image.open(io.BytesIO(tar.extractfile(m).read())) for m in tar if m.isfile()}


def test_every_image_is_encoded_again_at_the_quality_asked_keeping_the_layout(scripts, tmp_path):
    archive(tmp_path / "c.tar.gz")
    count = scripts("jpeg_ladder").reencode(tmp_path / "c.tar.gz", tmp_path / "q30.tar.gz", 30)
    rung = images(tmp_path / "q30.tar.gz")
    assert count == len(rung) == 40
    assert sorted(rung) == sorted(name.replace(".png", ".jpg") for name in images(tmp_path / "c.tar.gz"))
    image = rung["cifar10-jpg/train/cat/0.jpg"]
    assert image.format == "JPEG" and JpegImagePlugin.get_sampling(image) == 2  # 4:2:0, as the shared copy
    assert np.abs(np.asarray(image.convert("RGB"), dtype=int) - 30).max() <= 3  # a flat grey stays about grey


def test_a_quality_out_of_range_is_refused_before_anything_is_written(tmp_path):
    archive(tmp_path / "c.tar.gz", per_class=1)
    run = subprocess.run([sys.executable, str(SCRIPTS / "jpeg_ladder.py"), str(tmp_path / "c.tar.gz"), "--quality", "0",
                          "--out", str(tmp_path / "q0.tar.gz")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--quality takes 1 to 95" in run.stderr
    assert not (tmp_path / "q0.tar.gz").exists()
