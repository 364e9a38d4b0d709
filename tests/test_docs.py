"""The README and the pages in docs/: the layout names every module of src/ and scripts/ and only
modules that exist, the README leads to every page, and no link between them leads nowhere."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))


def test_the_layout_names_every_module_and_nothing_else():
    layout = (ROOT / "docs" / "layout.md").read_text()
    named = set(re.findall(r"`((?:src|scripts)/[\w/]+\.py)`", layout))
    named |= {f"{folder}{name}" for folder, names in re.findall(r"`((?:src|scripts)/(?:\w+/)*)`([^\n]*)", layout)
              for name in re.findall(r"`(\w+\.py)`", names)}
    modules = {str(path.relative_to(ROOT)) for folder in ("src", "scripts") for path in (ROOT / folder).rglob("*.py")
               if path.name != "__init__.py"}
    assert named - modules == set(), "the layout names modules that do not exist"
    assert modules - named == set(), "modules the layout does not name"


def prose(page: Path) -> str:
    """The page without its code blocks, whose ``#`` comments and brackets are no headings or links."""
    return re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)


def links(page: Path) -> list[str]:
    """The targets of the page's links and images; web addresses left out."""
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", prose(page)) if not re.match(r"\w+://", target)]


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", prose(page), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_the_readme_leads_to_every_page_in_docs():
    assert PAGES, "docs/ has no pages"
    linked = {(ROOT / target.split("#")[0]).resolve() for target in links(ROOT / "README.md")}
    assert [page.name for page in PAGES if page not in linked] == []


def test_every_link_of_the_readme_and_the_pages_leads_to_a_file_and_heading_that_exist():
    broken = []
    for page in [ROOT / "README.md", *PAGES]:
        for target in links(page):
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists() or (anchor and anchor not in anchors(file)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
