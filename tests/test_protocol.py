"""What may join a published directory: a run whose protocol differs from the runs there, or
from its config's, is refused by name before anything is written."""

import re
from pathlib import Path

import pytest

from src.errors import UserInputError
from src.publish import main, publish_runs
from src.results import RunRecord
from src.sweep import sweep
from tests.synthetic import hashes, rerun, write_run_results


@pytest.fixture(scope="module")
def one_epoch_sweep(tmp_path_factory: pytest.TempPathFactory, tiny_run_args: list[str]) -> Path:
    """A try-out sweep as a new user makes one: ``sgd`` seeds 42 and 43, one epoch on a few hundred images."""
    sweep_dir = tmp_path_factory.mktemp("one_epoch") / "sweep"
    overrides = [arg for arg in tiny_run_args if not arg.startswith("--trainer.max_epochs")]
    overrides.append("--trainer.max_epochs=1")
    outcomes = sweep(["sgd"], seeds=2, sweep_dir=sweep_dir, overrides=overrides, parallel=2, progress=lambda line: None)
    assert [outcome["status"] for outcome in outcomes] == ["finished", "finished"]
    return sweep_dir


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
