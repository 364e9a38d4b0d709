"""An installed package, not only a checkout, runs with the shared defaults of configs/base.yaml."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # a pip install, then fresh pythons that import Lightning

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_FILES = ("setup.cfg", "pyproject.toml", "README.md", "src", "configs")


def test_a_non_editable_install_applies_the_shared_defaults(tmp_path):
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ and *.egg-info there
    source.mkdir()
    for name in PACKAGE_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         f"--target={site}", str(source)],
        check=True, timeout=120,
    )
    assert (site / "src" / "configs" / "base.yaml").is_file() and (site / "src" / "configs" / "sgd.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"  # no checkout here: `import src` finds the installed package
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def installed(*args: str) -> str:
        run = subprocess.run([sys.executable, *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert Path(installed("-c", "import src.paths; print(src.paths.BASE_CONFIG)").strip()).is_relative_to(site)
    config = yaml.safe_load(installed("-m", "src.cli", "fit", f"--config={site / 'src/configs/sgd.yaml'}", "--print_config"))
    assert config["trainer"]["max_epochs"] == 100 and config["early_stopping"]["patience"] == 5
    assert config["checkpoint"]["monitor"] == "val_acc"
    assert config["model"]["optimizer"]["class_path"] == "src.optim.KerasSGD"
