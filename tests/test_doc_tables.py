"""The generated parts of the README and docs/performance.md: always what results/ says, and put between
their markers only."""

from pathlib import Path

import pytest

from src.doc_tables import (
    FAST_CONCLUSION, GAP_CONCLUSION, PRECISION_TABLE, describe_config, fast_grid_conclusion, gap_conclusion,
    notebook_table, page_table, precision_table, update_page,
)
from src.errors import UserInputError
from src.results import RunRecord

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_experiments_table_is_what_results_say():
    # regenerate with: python -m src.publish
    assert page_table(ROOT / "README.md") == notebook_table(ROOT / "results" / "notebook")


def test_the_readme_sentence_on_the_notebooks_lead_is_what_results_say():
    # regenerate with: python -m src.publish
    results = ROOT / "results"
    assert page_table(ROOT / "README.md", GAP_CONCLUSION) == gap_conclusion(results / "notebook_protocol",
                                                                             results / "keras_reference")


def test_the_readme_sentence_on_the_fast_grid_is_what_results_say():
    # regenerate with: python -m src.publish
    results = ROOT / "results"
    assert page_table(ROOT / "README.md", FAST_CONCLUSION) == fast_grid_conclusion(results / "fast", results / "notebook")


def test_the_performance_page_precision_table_is_what_results_say():
    # regenerate with: python -m src.publish
    page = ROOT / "docs" / "performance.md"
    assert page_table(page, PRECISION_TABLE) == precision_table(ROOT / "results" / "precision")


def write_runs(folder, config, test_accuracies):
    for seed, test_acc in enumerate(test_accuracies):
        RunRecord(config=config, stop_reason="max_epochs", epochs=12, best_val_acc=test_acc + 0.01,
                  test_acc=test_acc).write(folder / config / f"seed_{seed}")


def test_the_precision_table_compares_each_precision_and_says_whether_they_differ(tmp_path):
    write_runs(tmp_path / "float32", "rmsprop_baseline", [0.70, 0.71, 0.72])
    write_runs(tmp_path / "bf16", "rmsprop_baseline", [0.70, 0.715, 0.72])
    table = precision_table(tmp_path, float32_runs=tmp_path / "no_grid")
    assert "| rmsprop_baseline, float32 | 3 | 71.0 ± 1.0 | 72.0 ± 1.0 | 12 |" in table
    assert "within seed noise" in table and "more than" not in table

    write_runs(tmp_path / "bf16", "rmsprop_baseline", [0.60, 0.601, 0.602])
    assert "differs by more than seed noise" in precision_table(tmp_path, float32_runs=tmp_path / "no_grid")


def test_a_precision_whose_runs_all_diverged_shows_no_figures(tmp_path):
    for seed in (0, 1):
        RunRecord(config="sgd", stop_reason="diverged", epochs=3).write(tmp_path / "bf16" / "sgd" / f"seed_{seed}")
    assert "| sgd, bf16 | 0 | – | – | – |" in precision_table(tmp_path, float32_runs=tmp_path / "no_grid")


def test_the_float32_side_is_the_notebook_grids_runs_of_the_same_config(tmp_path):
    write_runs(tmp_path / "precision" / "bf16", "rmsprop_baseline", [0.70, 0.715, 0.72])
    write_runs(tmp_path / "notebook", "rmsprop_baseline", [0.70, 0.71, 0.72])
    write_runs(tmp_path / "notebook", "sgd", [0.80, 0.81])  # another config: not part of the comparison
    table = precision_table(tmp_path / "precision", float32_runs=tmp_path / "notebook")
    assert "| rmsprop_baseline, float32 | 3 | 71.0 ± 1.0 |" in table and "sgd" not in table
    assert "rmsprop_baseline, bf16 against rmsprop_baseline, float32" in table


def test_configs_are_described_as_the_notebook_wrote_them():
    assert describe_config("sgd_nesterov") == ("SGD", "0.01", "Nesterov momentum 0.5")
    assert describe_config("rmsprop_lr_1e-5") == ("RMSprop", "1e-5", "decay 1e-6")
    optimizer, lr, other = describe_config("adam_auto_staged")
    assert (optimizer, lr) == ("Adam", "1e-3 → 1e-4 → 1e-5") and "3 stages" in other


def test_a_page_that_is_not_there_is_refused_naming_the_table_it_should_show(tmp_path):
    with pytest.raises(UserInputError, match="performance.md is not a file; give the page that shows the precision-table"):
        update_page(tmp_path / "performance.md", "| new |\n", PRECISION_TABLE)


def test_the_table_goes_between_the_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- experiments-table:start -->\nold\n<!-- experiments-table:end -->\noutro\n")
    update_page(readme, "| new |\n")
    assert readme.read_text() == "intro\n<!-- experiments-table:start -->\n| new |\n<!-- experiments-table:end -->\noutro\n"
    assert page_table(readme) == "| new |\n"
