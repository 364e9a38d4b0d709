"""Publishing: a sweep's complete runs' small files copied beside the published ones, a published
run replaced only when asked to, and the same runs published again left as they are."""

import shutil

import pytest

from src.publish import main, publish_runs
from src.results import RunRecord
from tests.synthetic import hashes, rerun, write_run_results


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

def _came_out_lower(record: RunRecord, config: dict) -> None:
    record.test_acc, record.epochs, record.stop_reason = 0.70, 40, "max_epochs"


def test_replacing_a_published_run_is_refused_without_replace_showing_what_would_change(published, capsys):
    rerun(published, "sgd/seed_42", change=_came_out_lower)
    published_acc = RunRecord.read(published.notebook / "sgd" / "seed_42").test_acc
    before = hashes(published.notebook, published.readme, published.performance)
    with pytest.raises(SystemExit) as exit_info:
        main([str(published.sweep), *published.flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1
    assert (f"sgd/seed_42: test_acc {100 * published_acc:.2f}% → 70.00%, epochs 49 → 40, "
            "stop_reason early_stopping → max_epochs") in err
    assert "--replace" in err and "Nothing was written" in err
    assert hashes(published.notebook, published.readme, published.performance) == before  # the pages' tables included


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
    before = hashes(published.notebook, published.readme, published.performance)
    main([str(published.sweep), *published.flags])
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"skipped 3 runs published there already, identical: sgd seed_42, seed_43, seed_44",
        "skipped 1 run not finished: sgd/seed_45 (running); publish again once they have",
        f"nothing new to publish: {published.notebook}, its report and {published.readme} are as they were",
    ]
    assert hashes(published.notebook, published.readme, published.performance) == before


def test_publishing_again_after_a_cut_off_publish_brings_the_pages_to_what_a_whole_one_writes(published, capsys):
    rerun(published, "sgd/seed_42", as_run="sgd/seed_45", change=_came_out_lower)
    untouched = published.sweep.parent / "untouched"
    shutil.copytree(published.notebook, untouched / "notebook")
    shutil.copy(published.readme, untouched / "README.md")
    main([str(published.sweep), *published.flags])
    whole = hashes(published.notebook, published.readme)
    shutil.rmtree(published.notebook)
    shutil.copytree(untouched / "notebook", published.notebook)
    shutil.copy(untouched / "README.md", published.readme)

    publish_runs(published.sweep, published.notebook)  # cut off here: the run copied, nothing regenerated
    capsys.readouterr()
    main([str(published.sweep), *published.flags])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "skipped 1 run published there already, identical: sgd seed_45"
    assert out[-1].startswith("no new run; regenerated ") and str(published.readme) in out[-1]
    assert hashes(published.notebook, published.readme) == whole
