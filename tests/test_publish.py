"""Publishing: complete runs' small files into the repository, and a README table that is
always what results/ says."""

import hashlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from src import publish
from src.comparison import collect
from src.errors import UserInputError
from src.figures import write_figures
from src.findings import markdown
from src.publish import (
    PRECISION_TABLE, add_findings, describe_config, ladder, main, notebook_table, precision_table, publish_runs,
    readme_table, update_readme, write_precision_figures,
)
from src.results import RunRecord
from src.sweep import sweep
from tests.synthetic import write_run_results

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_experiments_table_is_what_results_say():
    # regenerate with: python -m src.publish
    assert readme_table(ROOT / "README.md") == notebook_table(ROOT / "results" / "notebook")


def test_the_readme_precision_table_is_what_results_say():
    # regenerate with: python -m src.publish
    assert readme_table(ROOT / "README.md", PRECISION_TABLE) == precision_table(ROOT / "results" / "precision")


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


def test_the_precision_figures_draw_bf16_and_float32_and_say_so(tmp_path, monkeypatch):
    for seed in (0, 1):
        write_run_results(tmp_path / "precision" / "bf16", "rmsprop_baseline", seed, 0.74)
        write_run_results(tmp_path / "notebook", "rmsprop_baseline", seed, 0.75)
    drawn = []
    monkeypatch.setattr(publish, "write_figures", lambda rows, groups, out, subject: drawn.append(
        ([g.name for g in groups], [r["config"] for r in rows], subject)) or write_figures(rows, groups, out, subject))
    paths = write_precision_figures(tmp_path / "precision", float32_runs=tmp_path / "notebook")
    both = ["rmsprop_baseline, bf16", "rmsprop_baseline, float32"]
    ((groups, rows, subject),) = drawn
    assert groups == both and sorted(rows) == both and subject == "bf16 vs float32"
    assert sorted(paths) == ["curves.png", "test_acc.png"]
    assert all(path.parent == tmp_path / "precision" and path.is_file() for path in paths.values())


def test_publishing_copies_complete_runs_without_checkpoints(small_sweep, tmp_path):
    publication = publish_runs(small_sweep.dir, tmp_path)
    assert len(publication.added) == 6  # adam, sgd and the diverging config, 2 seeds each: all ended by themselves
    for run in (tmp_path / name for name in publication.added):
        names = {p.name for p in run.iterdir()}
        assert {"results.json", "config.yaml"} <= names and any(n.startswith("events.out.tfevents") for n in names)
        assert not any(n.endswith(".ckpt") or n == "checkpoints" for n in names)
        assert RunRecord.read(run).is_complete


def test_an_unfinished_run_is_not_published_and_publishing_says_so(tmp_path):
    sweep_dir = tmp_path / "sweep"
    write_run_results(sweep_dir, "sgd", 42, 0.8)
    write_run_results(sweep_dir, "sgd", 43, None, stop_reason="running")
    write_run_results(sweep_dir, "adam", 42, None, stop_reason="interrupted")
    publication = publish_runs(sweep_dir, tmp_path / "out")
    assert publication.added == ["sgd/seed_42"] and not (tmp_path / "out" / "sgd" / "seed_43").exists()
    assert publication.lines(tmp_path / "out") == [
        f"published 1 new run to {tmp_path / 'out'}: sgd seed_42",
        "skipped 2 runs not finished: adam/seed_42 (interrupted), sgd/seed_43 (running); publish again once they have",
    ]


def hashes(*paths: Path) -> dict[str, str]:
    """Every file under ``paths`` (hidden ones too) and its SHA-256."""
    files = [file for path in paths for file in ([path] if path.is_file() else sorted(path.rglob("*")))]
    return {str(file): hashlib.sha256(file.read_bytes()).hexdigest() for file in files if file.is_file()}


@pytest.fixture(scope="module")
def one_epoch_sweep(tmp_path_factory: pytest.TempPathFactory, tiny_run_args: list[str]) -> Path:
    """A try-out sweep as a new user makes one: ``sgd`` seeds 42 and 43, one epoch on a few hundred images."""
    sweep_dir = tmp_path_factory.mktemp("one_epoch") / "sweep"
    overrides = [arg for arg in tiny_run_args if not arg.startswith("--trainer.max_epochs")]
    overrides.append("--trainer.max_epochs=1")
    outcomes = sweep(["sgd"], seeds=2, sweep_dir=sweep_dir, overrides=overrides, parallel=2, progress=lambda line: None)
    assert [outcome["status"] for outcome in outcomes] == ["finished", "finished"]
    return sweep_dir


@pytest.fixture
def published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A copy of the repository's results/notebook and README, for ``main`` to publish into: the
    command's ``--to`` and ``--readme`` flags for it, and a sweep folder to fill."""
    notebook, readme = tmp_path / "results" / "notebook", tmp_path / "README.md"
    shutil.copytree(ROOT / "results" / "notebook", notebook)
    shutil.copy(ROOT / "README.md", readme)
    monkeypatch.setattr(publish, "RESULTS_ROOT", tmp_path / "results")  # whatever it regenerates stays in the copy
    return SimpleNamespace(notebook=notebook, readme=readme, flags=["--to", str(notebook), "--readme", str(readme)],
                           sweep=tmp_path / "sweep")


def rerun(published: SimpleNamespace, run: str, as_run: str | None = None,
          change: Callable[[RunRecord, dict], None] = lambda record, config: None) -> Path:
    """A published run as a sweep ran it again (under ``as_run``), its record and config.yaml ``change``d."""
    run_dir = published.sweep / (as_run or run)
    shutil.copytree(published.notebook / run, run_dir)
    record, config = RunRecord.read(run_dir), yaml.safe_load((run_dir / "config.yaml").read_text())
    change(record, config)
    record.write(run_dir)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return run_dir


def test_a_one_epoch_sweep_changes_nothing_published(one_epoch_sweep, published, capsys):
    before = hashes(published.notebook, published.readme)
    with pytest.raises(SystemExit) as exit_info:
        main([str(one_epoch_sweep), *published.flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1 and "Traceback" not in err
    # seeds 42 and 43 are the ones it would replace, so the sgd run that stays is the one compared with
    assert f"{one_epoch_sweep / 'sgd' / 'seed_42'} (and 1 more run like it) cannot join" in err
    assert f"here, cifar10-jpg.tar.gz in {published.notebook / 'sgd' / 'seed_44'};" in err  # the data source
    assert re.search(r"; train images [\d,]+ here, 45,000 there;", err)
    assert "trainer.max_epochs per lr stage 1 here, 100 there" in err and "--to results/<name>" in err
    assert hashes(published.notebook, published.readme) == before


def _set_lr(record: RunRecord, config: dict) -> None:
    record.hparams["optimizer_args"]["lr"] = 0.05


def _set_precision(record: RunRecord, config: dict) -> None:
    record.environment["precision"] = "bf16-mixed"


def _set_max_epochs(record: RunRecord, config: dict) -> None:
    config["trainer"]["max_epochs"] = 20


def _limit_batches(record: RunRecord, config: dict) -> None:
    record.config = "sgd_short"
    config["trainer"]["limit_train_batches"] = 6


@pytest.mark.parametrize("as_run, change, said", [
    ("sgd/seed_45", _set_lr, "hparams.optimizer_args.lr 0.05 here, 0.01 in"),
    ("sgd/seed_45", _set_precision, "precision bf16-mixed here, 32-true in"),
    ("sgd/seed_45", _set_max_epochs, "trainer.max_epochs per lr stage 20 here, 100 in"),
    # a config not published yet is held to what every run there shares
    ("sgd_short/seed_42", _limit_batches, "trainer.limit_train_batches 6 here, not set in"),
])
def test_a_run_that_differs_from_the_published_ones_is_refused_naming_the_setting(published, as_run, change, said):
    rerun(published, "sgd/seed_42", as_run, change)
    before = hashes(published.notebook)
    with pytest.raises(UserInputError, match="cannot join the runs published in") as refusal:
        publish_runs(published.sweep, published.notebook)
    assert str(published.sweep / as_run) in str(refusal.value) and said in str(refusal.value)
    assert "Nothing was written" in str(refusal.value)
    assert hashes(published.notebook) == before


def test_runs_of_one_sweep_that_differ_among_themselves_are_refused_in_an_empty_directory(tmp_path):
    for config, train_images in (("sgd", 45000), ("sgd_momentum", 350)):  # a sweep whose source changed midway
        data = {"source": "cifar10.tar.gz", "train_images": train_images}
        write_run_results(tmp_path / "sweep", config, 42, 0.8, data=data)
    with pytest.raises(UserInputError, match="train images 350 here, 45,000 in"):
        publish_runs(tmp_path / "sweep", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _came_out_lower(record: RunRecord, config: dict) -> None:
    record.test_acc, record.epochs, record.stop_reason = 0.70, 40, "max_epochs"


def test_replacing_a_published_run_is_refused_without_replace_showing_what_would_change(published, capsys):
    rerun(published, "sgd/seed_42", change=_came_out_lower)
    published_acc = RunRecord.read(published.notebook / "sgd" / "seed_42").test_acc
    before = hashes(published.notebook, published.readme)
    with pytest.raises(SystemExit) as exit_info:
        main([str(published.sweep), *published.flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1
    assert (f"sgd/seed_42: test_acc {100 * published_acc:.2f}% → 70.00%, epochs 49 → 40, "
            "stop_reason early_stopping → max_epochs") in err
    assert "--replace" in err and "Nothing was written" in err
    assert hashes(published.notebook, published.readme) == before  # the README's table included


def test_replace_replaces_that_seed_and_nothing_else(published):
    new = rerun(published, "sgd/seed_42", change=_came_out_lower)
    before = hashes(published.notebook)
    publication = publish_runs(published.sweep, published.notebook, replace=True)
    assert (publication.replaced, publication.added) == (["sgd/seed_42"], [])
    after = hashes(published.notebook)
    seed_42 = str(published.notebook / "sgd" / "seed_42")
    assert {k: v for k, v in after.items() if not k.startswith(seed_42)} == {
        k: v for k, v in before.items() if not k.startswith(seed_42)}
    assert [v for k, v in after.items() if k.startswith(seed_42)] == list(hashes(new).values())


def test_publishing_the_same_runs_again_is_a_no_op_that_says_so(published, capsys):
    for seed in (42, 43, 44):
        shutil.copytree(published.notebook / "sgd" / f"seed_{seed}", published.sweep / "sgd" / f"seed_{seed}")
    write_run_results(published.sweep, "sgd", 45, None, stop_reason="running")
    before = hashes(published.notebook, published.readme)
    main([str(published.sweep), *published.flags])
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"skipped 3 runs published there already, identical: sgd seed_42, seed_43, seed_44",
        "skipped 1 run not finished: sgd/seed_45 (running); publish again once they have",
        f"nothing new to publish: {published.notebook}, its report and {published.readme} are as they were",
    ]
    assert hashes(published.notebook, published.readme) == before


def test_configs_are_described_as_the_notebook_wrote_them():
    assert describe_config("sgd_nesterov") == ("SGD", "0.01", "Nesterov momentum 0.5")
    assert describe_config("rmsprop_lr_1e-5") == ("RMSprop", "1e-5", "decay 1e-6")
    optimizer, lr, other = describe_config("adam_auto_staged")
    assert (optimizer, lr) == ("Adam", "1e-3 → 1e-4 → 1e-5") and "3 stages" in other


def test_a_readme_that_is_not_there_is_refused(tmp_path):
    with pytest.raises(UserInputError, match="README.md is not a file; give the README to update with --readme"):
        update_readme(tmp_path / "README.md", "| new |\n")


def test_the_table_goes_between_the_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- experiments-table:start -->\nold\n<!-- experiments-table:end -->\noutro\n")
    update_readme(readme, "| new |\n")
    assert readme.read_text() == "intro\n<!-- experiments-table:start -->\n| new |\n<!-- experiments-table:end -->\noutro\n"
    assert readme_table(readme) == "| new |\n"


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
