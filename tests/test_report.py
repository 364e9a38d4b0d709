"""The report: the table and CSV, the Welch comparison in words, where the runs ran, and the figures written."""

import csv
import struct
from pathlib import Path

import pytest

from src.comparison import collect
from src.keras_notebook import NOTEBOOK
from src.report import activity, main, write_report
from src.report_markdown import where_they_ran
from tests.synthetic import write_run_results

HOUR = 3600.0

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_report_ranks_configs_best_first_in_markdown_and_csv(recorded_sweep):
    paths = write_report(recorded_sweep)
    text = paths["report.md"].read_text()
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert [line.split("`")[1] for line in table] == ["sgd", "sgd_nesterov", "rmsprop_baseline", "adam"]
    assert "| 80.0 ± 1.0 |" in table[0] and f"| {NOTEBOOK['sgd'].text} |" in table[0]
    assert "| 3 (1 diverged) |" in table[2]
    beyond, _, within = text.partition("Within seed noise")
    assert "`sgd` beats `adam` by 10.0 points" in beyond
    assert "`sgd` and `sgd_nesterov`" in within

    with open(paths["report.csv"]) as file:
        rows = list(csv.DictReader(file))
    assert [r["config"] for r in rows] == ["sgd", "sgd_nesterov", "rmsprop_baseline", "adam"]
    assert float(rows[0]["test_acc_mean"]) == pytest.approx(0.80)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    return struct.unpack(">II", data[16:24])  # IHDR: width, height


def test_report_of_a_real_sweep(small_sweep, tmp_path):
    """The 2-config x 2-seed sweep (plus a diverging config) from conftest, end to end."""
    paths = write_report(small_sweep.dir, tmp_path / "report")
    table = [line for line in paths["report.md"].read_text().splitlines() if line.startswith("| `")]
    assert sorted(line.split("`")[1] for line in table) == sorted(small_sweep.configs)
    diverged_row = next(line for line in table if "sgd_lr_1e6" in line)
    assert "2 (2 diverged)" in diverged_row
    with open(paths["report.csv"]) as file:
        assert len(list(csv.DictReader(file))) == 3
    for name in ("curves.png", "test_acc.png"):
        width, height = png_size(paths[name])
        assert 600 <= width <= 3000 and 150 <= height <= 2000
        assert paths[name].stat().st_size > 10_000  # drawn, not blank


def test_the_command_says_where_it_wrote_and_sums_the_report_up_in_a_line(recorded_sweep, capsys):
    main([str(recorded_sweep)])
    summary, written = capsys.readouterr().out.splitlines()
    assert summary.startswith("4 configs, runs: 12 (1 diverged); best `sgd`, test acc. 80.0 ± 1.0%; ")
    assert summary.endswith(" of 6 pairs of configs differ by more than seed noise")
    assert written == "written: " + ", ".join(str(recorded_sweep / name) for name in (
        "report.md", "report.csv", "curves.png", "test_acc.png"))

    main([str(recorded_sweep), "--print"])  # the whole report, to read or pipe on
    assert capsys.readouterr().out.startswith((recorded_sweep / "report.md").read_text())


def test_the_report_says_what_its_wall_time_measures_and_what_a_sweeps_seconds_add(recorded_sweep):
    text = write_report(recorded_sweep)["report.md"].read_text()
    assert "`wall time` is a run's own (mean over its runs): from the start of its training" in text
    assert "the seconds a sweep prints for a run are longer, as they also count the process's start-up" in text
    assert "(process start-up and data loading are not)" in text


def test_a_directory_without_runs_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "No runs found" in capsys.readouterr().err


def test_the_report_names_each_machine_and_precision_with_the_run_time_and_epoch_time_it_gave(tmp_path):
    cpu = {"device": "cpu", "cpu": "AMD EPYC", "cpu_count": 2, "cpu_flags": ["avx512f", "avx512_bf16"],
           "precision": "32-true", "torch": "2.14.1", "git_commit": "310af67af8df"}
    gpu = cpu | {"device": "cuda", "precision": "bf16-mixed", "git_commit": "416908cabc"}
    data = {"source": "/data/cifar10-jpg.tar.gz", "train_images": 45000, "val_images": 5000, "test_images": 10000,
            "validates_on_test": False}
    for seed in (1, 2, 3):  # wall times 101 + 102 + 103 s
        write_run_results(tmp_path, "sgd", seed, 0.8, environment=cpu, data=data)
    write_run_results(tmp_path, "adam", 7200, 0.7, environment=gpu, data=data)  # 7300 s
    lines = where_they_ran(collect(tmp_path))
    rows = [line for line in lines if line.startswith("| cpu") or line.startswith("| cuda")]
    assert rows == [
        "| cuda | AMD EPYC | 2 | avx512f, avx512_bf16 | bf16-mixed | 2.14.1 | 1 | 2.0 h | 30.4 min |",
        "| cpu | AMD EPYC | 2 | avx512f, avx512_bf16 | 32-true | 2.14.1 | 3 | 5.1 min | 26 s |",  # 306 s / 12 epochs
    ]
    text = "\n".join(lines)
    assert "2.1 h over all 4 runs" in text
    assert "commits 310af67, 416908c" in text
    assert "`cifar10-jpg.tar.gz` (45,000 train, 5,000 val, 10,000 test images; held-out validation)" in text
    assert "## Where these ran" in write_report(tmp_path)["report.md"].read_text()


def write_events(run_dir: Path, name: str, *wall_times: float) -> None:
    """A TensorBoard event file whose events carry exactly ``wall_times``."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    with open(run_dir / f"events.out.tfevents.{name}", "wb") as file:
        writer = RecordWriter(file)
        for wall_time in wall_times:
            writer.write(Event(wall_time=wall_time, step=0).SerializeToString())


def test_the_report_says_how_long_the_whole_sweep_took_from_the_runs_events(tmp_path):
    start = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    for seed in (1, 2):
        write_run_results(tmp_path, "sgd", seed, 0.8)
    first, second = (tmp_path / "sgd" / f"seed_{seed}" for seed in (1, 2))
    write_events(first, "a", start, start + 0.5 * HOUR, start + HOUR)  # two runs side by side: 1 h
    write_events(second, "b", start + 0.25 * HOUR, start + 0.75 * HOUR)
    write_events(first, "c", start + 3 * HOUR, start + 4 * HOUR)  # a resume after 2 h with nothing running
    when = activity(tmp_path)
    assert (when.first, when.last, when.training_s) == (start, start + 4 * HOUR, 2 * HOUR)
    report = write_report(tmp_path)["report.md"].read_text()
    assert "from 2027-01-15 08:00 to 2027-01-15 12:00 UTC, 4.0 h, with some run training during 2.0 h of it" in report
    assert activity(tmp_path / "sgd" / "seed_1") is None  # no runs below it: no span claimed


def test_a_report_onto_a_full_disk_leaves_the_earlier_files_whole_and_says_which_did_not_fit(
        recorded_sweep, small_disk, capsys):
    out = small_disk.path / "report"
    write_report(recorded_sweep, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    small_disk.fill(leave=16 * 2**10)  # the tables fit, the first figure does not
    with pytest.raises(SystemExit) as exit_info:
        main([str(recorded_sweep), f"--out={out}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1 and "Traceback" not in err, err
    assert f"error: Cannot write {out / 'curves.png'} (no space left on the device)" in err and "--out" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no figure cut off, no partial file
