"""The report: the table and CSV, the Welch comparison in words, and readable figures."""

import csv
import json
import struct
from pathlib import Path

import pytest

from src.report import (
    collect,
    compare,
    main,
    plot_curves,
    plot_test_acc,
    summarize,
    where_they_ran,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_run(sweep_dir: Path, config: str, seed: int, test_acc: float | None, stop_reason: str = "max_epochs",
              optimizer: str = "src.optim.KerasSGD", lr: float = 0.01, environment: dict | None = None,
              data: dict | None = None) -> None:
    """A results.json as a run leaves it; validation accuracy climbs to just above test accuracy."""
    final = test_acc if test_acc is not None else 0.1
    history = [
        {"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.0 / e, "val_acc": final * (0.8 + 0.05 * e)}
        for e in (1, 2, 3, 4)
    ]
    run_dir = sweep_dir / config / f"seed_{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({
        "config": config, "run_dir": str(run_dir), "stop_reason": stop_reason,
        "hparams": {"optimizer": optimizer, "optimizer_args": {"lr": lr, "momentum": 0.0, "nesterov": False},
                    "decay": 1e-6, "loss": "cross_entropy", "seed": seed},
        "epochs": 4, "best_val_acc": max(h["val_acc"] for h in history), "best_epoch": 4, "test_acc": test_acc,
        "test_loss": 1.0, "wall_time_s": 100.0 + seed, "train_images_per_s": 1000.0, "history": history,
        "environment": environment or {}, "data": data or {},
    }))


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """sgd clearly ahead of adam; sgd_nesterov within noise of sgd; one rmsprop run diverged."""
    accuracies = {
        "sgd": [0.80, 0.81, 0.79],
        "adam": [0.70, 0.71, 0.69],
        "sgd_nesterov": [0.80, 0.82, 0.77],
        "rmsprop_baseline": [0.75, 0.76, None],
    }
    for config, values in accuracies.items():
        for seed, acc in enumerate(values):
            write_run(tmp_path, config, seed, acc, stop_reason="max_epochs" if acc is not None else "diverged")
    return tmp_path


def test_one_row_per_config_sorted_by_test_accuracy(sweep_dir):
    rows = summarize(collect(sweep_dir))
    assert [r["config"] for r in rows] == ["sgd", "sgd_nesterov", "rmsprop_baseline", "adam"]
    sgd = rows[0]
    assert sgd["test_acc_mean"] == pytest.approx(0.80)
    assert sgd["test_acc_std"] == pytest.approx(0.01)
    assert (sgd["runs"], sgd["finished"], sgd["notebook"]) == (3, 3, "80.8%")
    rmsprop = rows[2]
    assert (rmsprop["runs"], rmsprop["finished"], rmsprop["diverged"]) == (3, 2, 1)
    assert rmsprop["test_acc_mean"] == pytest.approx(0.755)  # the diverged run is left out


def test_welch_test_tells_real_differences_from_seed_noise(sweep_dir):
    comparisons = {(c.better, c.worse): c for c in compare(collect(sweep_dir))}
    assert comparisons[("sgd", "adam")].beyond_noise
    assert comparisons[("sgd", "adam")].difference == pytest.approx(0.10)
    assert not comparisons[("sgd", "sgd_nesterov")].beyond_noise  # same mean, more spread


def test_markdown_and_csv(sweep_dir):
    paths = write_report(sweep_dir)
    text = paths["report.md"].read_text()
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert [line.split("`")[1] for line in table] == ["sgd", "sgd_nesterov", "rmsprop_baseline", "adam"]
    assert "| 80.0 ± 1.0 |" in table[0] and "| 80.8% |" in table[0]
    assert "| 3 (1 diverged) |" in table[2]
    beyond, _, within = text.partition("Within seed noise")
    assert "`sgd` beats `adam` by 10.0 points" in beyond
    assert "`sgd` and `sgd_nesterov`" in within

    with open(paths["report.csv"]) as file:
        rows = list(csv.DictReader(file))
    assert [r["config"] for r in rows] == ["sgd", "sgd_nesterov", "rmsprop_baseline", "adam"]
    assert float(rows[0]["test_acc_mean"]) == pytest.approx(0.80)


def test_figures_draw_one_line_and_one_row_per_config(sweep_dir):
    groups = collect(sweep_dir)
    curves = plot_curves(groups)
    accuracy, loss = curves.axes[:2]
    assert len(accuracy.lines) == len(loss.lines) == 4
    assert accuracy.get_xlabel() == "epoch" and "accuracy" in accuracy.get_ylabel()
    labels = [text.get_text() for text in loss.get_legend().get_texts()]
    assert "rmsprop_baseline (1 diverged)" in labels

    rows = summarize(groups)
    test_acc = plot_test_acc(rows, groups).axes[0]
    top_down = sorted(zip(test_acc.get_yticks(), (t.get_text() for t in test_acc.get_yticklabels())), reverse=True)
    assert [label for _, label in top_down] == [r["config"] for r in rows]  # best at the top
    assert "test accuracy" in test_acc.get_xlabel()


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


def test_failed_runs_without_results_are_counted_from_sweep_json(sweep_dir):
    (sweep_dir / "sweep.json").write_text(json.dumps({"runs": {"sgd/seed_9": {
        "config": "sgd", "seed": 9, "status": "failed", "run_dir": str(sweep_dir / "sgd" / "seed_9")}}}))
    sgd = next(r for r in summarize(collect(sweep_dir)) if r["config"] == "sgd")
    assert (sgd["runs"], sgd["finished"], sgd["unfinished"]) == (4, 3, 1)


def test_a_directory_without_runs_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "No runs found" in capsys.readouterr().err


def test_a_spread_band_stays_within_what_accuracy_and_loss_can_be(tmp_path):
    # one seed near 0%, one near 100%: mean ± std would reach past both ends
    for seed, acc in ((1, 0.02), (2, 0.98)):
        write_run(tmp_path, "wild", seed, acc)
    figure = plot_curves(collect(tmp_path))
    accuracy, loss = figure.axes[:2]
    (acc_band,) = accuracy.collections
    acc_y = acc_band.get_paths()[0].vertices[:, 1]
    assert acc_y.min() >= 0.0 and acc_y.max() <= 100.0
    assert all((c.get_paths()[0].vertices[:, 1] >= 0.0).all() for c in loss.collections)


def test_a_damaged_results_file_is_named_and_the_other_runs_reported(sweep_dir, caplog):
    damaged = sweep_dir / "sgd" / "seed_2" / "results.json"
    damaged.write_text(damaged.read_text()[:100])  # cut off mid-write
    rows = {r["config"]: r for r in summarize(collect(sweep_dir))}
    assert f"left out {damaged}, which is not a readable run record" in caplog.text
    assert (rows["sgd"]["runs"], rows["sgd"]["finished"], rows["sgd"]["unfinished"]) == (3, 2, 1)
    assert len(rows) == 4


def test_a_damaged_sweep_record_is_named_and_the_runs_reported(sweep_dir, caplog):
    (sweep_dir / "sweep.json").write_text('{"runs": {"sgd/seed_9": {"status": "fai')  # cut off mid-write
    rows = {r["config"]: r for r in summarize(collect(sweep_dir))}
    assert f"warning: {sweep_dir / 'sweep.json'} is not valid JSON" in caplog.text
    assert rows["sgd"]["runs"] == 3 and len(rows) == 4


def test_a_config_with_one_seed_shows_that_seed_not_a_spread(tmp_path):
    write_run(tmp_path, "once", 1, 0.6)
    for seed, acc in ((1, 0.7), (2, 0.72)):
        write_run(tmp_path, "twice", seed, acc)
    groups = collect(tmp_path)
    ax = plot_test_acc(summarize(groups), groups).axes[0]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "single seed" in legend and "mean ± std over seeds" in legend
    (means,) = [line for line in ax.lines if line.get_marker() == "o"]  # one mean mark: twice's
    assert means.get_xdata()[0] == pytest.approx(71.0)


def test_the_report_names_each_machine_and_precision_with_the_run_time_and_epoch_time_it_gave(tmp_path):
    cpu = {"device": "cpu", "cpu": "AMD EPYC", "cpu_count": 2, "cpu_flags": ["avx512f", "avx512_bf16"],
           "precision": "32-true", "torch": "2.14.1", "git_commit": "310af67af8df"}
    gpu = cpu | {"device": "cuda", "precision": "bf16-mixed", "git_commit": "416908cabc"}
    data = {"source": "/data/cifar10-jpg.tar.gz", "train_images": 45000, "val_images": 5000, "test_images": 10000,
            "validates_on_test": False}
    for seed in (1, 2, 3):  # wall times 101 + 102 + 103 s
        write_run(tmp_path, "sgd", seed, 0.8, environment=cpu, data=data)
    write_run(tmp_path, "adam", 7200, 0.7, environment=gpu, data=data)  # 7300 s
    lines = where_they_ran(collect(tmp_path))
    rows = [line for line in lines if line.startswith("| cpu") or line.startswith("| cuda")]
    assert rows == [
        "| cuda | AMD EPYC | 2 | avx512f, avx512_bf16 | bf16-mixed | 2.14.1 | 1 | 2.0 h | 30.4 min |",
        "| cpu | AMD EPYC | 2 | avx512f, avx512_bf16 | 32-true | 2.14.1 | 3 | 5.1 min | 26 s |",  # 306 s / 12 epochs
    ]
    text = "\n".join(lines)
    assert "2.1 h over all 4 runs" in text
    assert "commit 310af67, 416908c" in text
    assert "`cifar10-jpg.tar.gz` (45,000 train, 5,000 val, 10,000 test images; held-out validation)" in text
    assert "## Where these ran" in write_report(tmp_path)["report.md"].read_text()


def test_a_staged_run_is_one_line_with_each_new_stage_marked(tmp_path):
    write_run(tmp_path, "adam_auto_staged", 1, 0.78)
    write_run(tmp_path, "rmsprop_decay_1e-2", 1, 0.40)
    lrs = {"adam_auto_staged": [1e-3, 1e-3, 1e-4, 1e-5], "rmsprop_decay_1e-2": [6.6e-6, 3.4e-6, 2.3e-6, 1.7e-6]}
    for config, rates in lrs.items():  # the second: decay 1e-2 roughly halving lr, which is no new stage
        path = tmp_path / config / "seed_1" / "results.json"
        record = json.loads(path.read_text())
        for epoch, lr in zip(record["history"], rates):
            epoch["lr"] = lr
        path.write_text(json.dumps(record))
    accuracy, loss = plot_curves(collect(tmp_path)).axes[:2]
    assert len(accuracy.lines) == 2  # one line per config, the staged run included
    (marks,) = accuracy.collections
    assert marks.get_offsets()[:, 0].tolist() == [3, 4]  # the epochs that began stages 2 and 3
    labels = [text.get_text() for text in loss.get_legend().get_texts()]
    assert labels.count("a new lr stage begins") == 1
