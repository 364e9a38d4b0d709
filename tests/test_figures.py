"""Figures that read well at this scale: one line and one row per config, bands within range,
single seeds shown as seeds, a staged run as one line, one epoch as marks with bars, nothing the
legend names hidden."""

import json

import pytest

from src.comparison import collect, summarize
from src.figures import SEED_OFFSET, plot_curves, plot_test_acc
from tests.synthetic import write_run_results


def test_figures_draw_one_line_and_one_row_per_config(recorded_sweep):
    groups = collect(recorded_sweep)
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


def test_a_spread_band_stays_within_what_accuracy_and_loss_can_be(tmp_path):
    # one seed near 0%, one near 100%: mean ± std would reach past both ends
    for seed, acc in ((1, 0.02), (2, 0.98)):
        write_run_results(tmp_path, "wild", seed, acc)
    figure = plot_curves(collect(tmp_path))
    accuracy, loss = figure.axes[:2]
    (acc_band,) = accuracy.collections
    acc_y = acc_band.get_paths()[0].vertices[:, 1]
    assert acc_y.min() >= 0.0 and acc_y.max() <= 100.0
    (loss_band,) = loss.collections
    assert (loss_band.get_paths()[0].vertices[:, 1] >= 0.0).all()


def test_a_config_with_one_seed_shows_that_seed_not_a_spread(tmp_path):
    write_run_results(tmp_path, "once", 1, 0.6)
    for seed, acc in ((1, 0.7), (2, 0.72)):
        write_run_results(tmp_path, "twice", seed, acc)
    groups = collect(tmp_path)
    ax = plot_test_acc(summarize(groups), groups).axes[0]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "each seed" in legend and "mean ± std over seeds" in legend
    (means,) = [line for line in ax.lines if line.get_marker() == "o"]  # one mean mark: twice's
    assert means.get_xdata()[0] == pytest.approx(71.0)


def test_a_staged_run_is_one_line_with_each_new_stage_marked(tmp_path):
    write_run_results(tmp_path, "adam_auto_staged", 1, 0.78)
    write_run_results(tmp_path, "rmsprop_decay_1e-2", 1, 0.40)
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


def test_the_notebook_mark_stays_visible_where_it_sits_on_our_mean(tmp_path):
    for seed in (1, 2):
        write_run_results(tmp_path, "sgd", seed, 0.8075)  # the notebook's own figure
    groups = collect(tmp_path)
    ax = plot_test_acc(summarize(groups), groups).axes[0]
    (notebook,) = [c for c in ax.collections if c.get_label() == "notebook (2017, one full run)"]
    (means,) = [line for line in ax.lines if line.get_marker() == "o"]
    assert notebook.get_offsets()[0][0] == pytest.approx(means.get_xdata()[0])
    assert notebook.get_zorder() > means.get_zorder()


def test_one_epoch_is_drawn_as_a_mark_per_config_with_its_spread_as_a_bar(tmp_path):
    for config, accuracies in (("sgd", (0.2, 0.3)), ("adam", (0.4, 0.5))):
        for seed, acc in enumerate(accuracies):
            write_run_results(tmp_path, config, seed, acc)
            path = tmp_path / config / f"seed_{seed}" / "results.json"
            record = json.loads(path.read_text())
            record["history"], record["epochs"] = record["history"][:1], 1
            path.write_text(json.dumps(record))
    for ax in plot_curves(collect(tmp_path)).axes[:2]:
        assert list(ax.get_xticks()) == [1]
        marks = ax.containers  # one errorbar per config
        assert len(marks) == 2 and all(mark.has_yerr for mark in marks)
        (x_sgd,), (x_adam,) = (mark.lines[0].get_xdata() for mark in marks)
        assert x_sgd != x_adam and 0.5 < min(x_sgd, x_adam) < max(x_sgd, x_adam) < 1.5  # side by side, not on one spot


def test_every_seed_the_legend_names_is_drawn_clear_of_the_mean(tmp_path):
    for seed in (1, 2, 3):  # all at their mean: on the mean's row, the mean's mark would hide them
        write_run_results(tmp_path, "steady", seed, 0.5)
    groups = collect(tmp_path)
    ax = plot_test_acc(summarize(groups), groups).axes[0]
    (seeds,) = [c for c in ax.collections if c.get_label() == "each seed"]
    (means,) = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(seeds.get_offsets()) == 3
    assert (seeds.get_offsets()[:, 1] == means.get_ydata()[0] - SEED_OFFSET).all()
    assert "single seed" not in [text.get_text() for text in ax.get_legend().get_texts()]


def test_a_notebook_figure_given_in_words_is_drawn_as_the_range_they_allow(tmp_path):
    for seed in (1, 2):
        write_run_results(tmp_path, "rmsprop_decay_1e-2", seed, 0.40)  # the notebook's "~40%"
    groups = collect(tmp_path)
    ax = plot_test_acc(summarize(groups), groups).axes[0]
    (notebook,) = [c for c in ax.collections if c.get_label().startswith("notebook (2017, one run, given in words")]
    (segment,) = notebook.get_segments()
    assert sorted(segment[:, 0]) == pytest.approx([37.5, 42.5])
