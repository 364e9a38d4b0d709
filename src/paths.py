"""Where the experiment configs live, found without importing Lightning (tools that only read
them start fast).

In a checkout they are ``configs/`` beside the ``src`` package; a wheel ships the same files
inside the package as ``src/configs`` (setup.cfg maps one onto the other).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent  # the folder that holds ``src``: a checkout, or site-packages
CONFIG_DIR = next(
    (folder for folder in (PACKAGE_DIR / "configs", PROJECT_ROOT / "configs") if (folder / "base.yaml").is_file()),
    PROJECT_ROOT / "configs",
)
BASE_CONFIG = CONFIG_DIR / "base.yaml"
