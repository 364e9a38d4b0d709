"""results/ read back by folder: the precision runs beside the float32 grid, the JPEG ladder, and the
findings and figures drawn from them."""

from src.comparison import collect
from src.figures import write_figures
from src.findings import markdown
from src.published import add_fast_comparison, add_findings, ladder, write_precision_figures
from src.results import RunRecord
from tests.synthetic import write_run_results


def test_the_precision_figures_draw_bf16_and_float32_and_say_so(tmp_path, monkeypatch):
    for seed in (0, 1):
        write_run_results(tmp_path / "precision" / "bf16", "rmsprop_baseline", seed, 0.74)
        write_run_results(tmp_path / "notebook", "rmsprop_baseline", seed, 0.75)
    drawn = []
    monkeypatch.setattr("src.published.write_figures", lambda rows, groups, out, subject: drawn.append(
        ([g.name for g in groups], [r["config"] for r in rows], subject)) or write_figures(rows, groups, out, subject))
    paths = write_precision_figures(tmp_path / "precision", float32_runs=tmp_path / "notebook")
    both = ["rmsprop_baseline, bf16", "rmsprop_baseline, float32"]
    ((groups, rows, subject),) = drawn
    assert groups == both and sorted(rows) == both and subject == "bf16 vs float32"
    assert sorted(paths) == ["curves.png", "test_acc.png"]
    assert all(path.parent == tmp_path / "precision" and path.is_file() for path in paths.values())


def test_publishing_appends_the_findings_to_the_notebooks_report(tmp_path):
    for seed, acc in enumerate([0.76, 0.77]):
        RunRecord(config="sgd", stop_reason="early_stopping", epochs=30, test_acc=acc).write(
            tmp_path / "notebook" / "sgd" / f"seed_{seed}")
    report = tmp_path / "report.md"
    report.write_text("# Sweep report\n")
    add_findings(report, tmp_path)  # no protocol, Keras or ladder runs published yet
    assert report.read_text() == "# Sweep report\n\n" + markdown(collect(tmp_path / "notebook"), [])


def test_the_jpeg_ladder_takes_each_rungs_sgd_runs_and_the_shared_copys_from_the_notebook_grid(tmp_path):
    for folder, acc in (("notebook", 0.77), ("jpeg_ladder/q50", 0.75), ("jpeg_ladder/q30", 0.72)):
        for name in ("sgd", "adam"):
            RunRecord(config=name, stop_reason="early_stopping", epochs=30, test_acc=acc).write(
                tmp_path / folder / name / "seed_42")
    rungs = ladder(tmp_path)
    assert sorted(rungs) == [30, 50, 75] and {group.name for group in rungs.values()} == {"sgd"}
    assert rungs[50].test_accuracies == [0.75]


def test_publishing_the_fast_grid_appends_its_comparison_with_the_float32_grid(tmp_path):
    for folder, accuracies in (("notebook", [0.76, 0.77]), ("fast", [0.765, 0.772])):
        for seed, acc in enumerate(accuracies):
            RunRecord(config="sgd", stop_reason="early_stopping", epochs=30, test_acc=acc).write(
                tmp_path / folder / "sgd" / f"seed_{seed}")
    report = tmp_path / "fast" / "report.md"
    report.write_text("# Sweep report\n")
    add_fast_comparison(report, tmp_path)
    text = report.read_text()
    assert text.startswith("# Sweep report\n\n## Against the float32 grid")
    assert "| `sgd` | 76.5 ± 0.7 (n=2) | 76.8 ± 0.5 (n=2) | yes (" in text
