"""The notebook's figures are quoted exactly: every one the published pages show comes from one table."""

import re
from pathlib import Path

from src.keras_notebook import NOTEBOOK
from src.readme_tables import EXPERIMENTS_TABLE, readme_table

ROOT = Path(__file__).resolve().parent.parent
EXACT = {figure.exact for figure in NOTEBOOK.values() if figure.exact is not None}
FRACTION = re.compile(r"(?<![\d.])0\.\d{3,4}(?!\d)")


def notebook_cells(markdown: str) -> list[str]:
    """The cells of every table column that speaks for the notebook ("notebook", "its figures")."""
    cells, columns = [], []
    for line in markdown.splitlines():
        if not line.startswith("|"):
            columns = []
            continue
        row = [cell.strip() for cell in line.strip("|").split("|")]
        if not columns:  # a table's header
            columns = [i for i, name in enumerate(row) if "notebook" in name or "its figures" in name]
        elif not set(line) <= set("|-: "):
            cells += [row[i] for i in columns if i < len(row)]
    return cells


def test_every_notebook_figure_the_report_and_readme_quote_is_in_the_table_of_exact_values():
    pages = [(ROOT / "results" / "notebook" / "report.md").read_text(), readme_table(ROOT / "README.md", EXPERIMENTS_TABLE)]
    cells = [cell for page in pages for cell in notebook_cells(page)]
    quoted = {float(match) for cell in cells for match in FRACTION.findall(cell)}
    assert len(quoted) >= 7, f"the published pages quote too few notebook figures: {cells}"
    assert quoted <= EXACT, f"quoted but not in src/keras_notebook.py: {sorted(quoted - EXACT)}"


def test_a_figure_the_notebook_gave_in_words_or_not_at_all_has_no_invented_number():
    assert NOTEBOOK["rmsprop_decay_1e-5"].bounds is None
    assert NOTEBOOK["rmsprop_decay_1e-7"].exact is None and NOTEBOOK["rmsprop_decay_1e-7"].bounds == (0.77, 0.78)
    assert all(figure.text for figure in NOTEBOOK.values())


def test_exact_figures_are_shown_as_printed():
    assert all(str(figure.exact) in figure.text for figure in NOTEBOOK.values() if figure.exact is not None)
