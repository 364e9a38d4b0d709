"""The pages in docs/: the layout names every module of src/ and scripts/ and only modules that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_layout_names_every_module_and_nothing_else():
    layout = (ROOT / "docs" / "layout.md").read_text()
    named = set(re.findall(r"`((?:src|scripts)/[\w/]+\.py)`", layout))
    named |= {f"{folder}{name}" for folder, names in re.findall(r"`((?:src|scripts)/(?:\w+/)*)`([^\n]*)", layout)
              for name in re.findall(r"`(\w+\.py)`", names)}
    modules = {str(path.relative_to(ROOT)) for folder in ("src", "scripts") for path in (ROOT / folder).rglob("*.py")
               if path.name != "__init__.py"}
    assert named - modules == set(), "the layout names modules that do not exist"
    assert modules - named == set(), "modules the layout does not name"

