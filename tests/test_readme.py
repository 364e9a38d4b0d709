"""The README's layout names every module of src/ and scripts/, and only modules that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layout_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]


def test_the_layout_names_every_module_and_nothing_else():
    layout = layout_section()
    named = set(re.findall(r"`((?:src|scripts)/[\w/]+\.py)`", layout))
    named |= {f"{folder}{name}" for folder, names in re.findall(r"`((?:src|scripts)/(?:\w+/)*)`([^\n]*)", layout)
              for name in re.findall(r"`(\w+\.py)`", names)}
    modules = {str(path.relative_to(ROOT)) for folder in ("src", "scripts") for path in (ROOT / folder).rglob("*.py")
               if path.name != "__init__.py"}
    assert named - modules == set(), "the layout names modules that do not exist"
    assert modules - named == set(), "modules the layout does not name"
