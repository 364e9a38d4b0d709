"""Figures that read well at this scale and do not mislead: a panel per config on shared scales, a
mean only while every seed runs, each seed's own lr stages, bands within range, single runs shown as
such, the notebook's protocol called test, one epoch as marks with bars, a legend of what is drawn."""

import json

import pytest

from src.comparison import collect, summarize
from src.figures import ALONE, BAND, MEAN, ONE_RUN, SEED_OFFSET, STAGE, plot_curves, plot_test_acc
from tests.synthetic import write_run_results


def panels(figure):
    """Per config (by its panel's title), its accuracy and loss axes; the last axes holds the legend."""
    axes = figure.axes[:-1]
    return {accuracy.get_title().split("\n")[0]: (accuracy, loss) for accuracy, loss in zip(axes[::2], axes[1::2])}


def legend_labels(figure):
    return [text.get_text() for text in figure.axes[-1].get_legend().get_texts()]


def edit_history(sweep_dir, config, seed, epochs=None, lrs=None):
    """Cut a written run's history to ``epochs`` and give its epochs the learning rates ``lrs``."""
    path = sweep_dir / config / f"seed_{seed}" / "results.json"
    record = json.loads(path.read_text())
    record["history"] = record["history"][:epochs]
    record["epochs"] = len(record["history"])
    for epoch, lr in zip(record["history"], lrs or []):
        epoch["lr"] = lr
    path.write_text(json.dumps(record))
    return [100 * epoch["val_acc"] for epoch in record["history"]]


def test_figures_draw_a_panel_and_a_row_per_config(recorded_sweep):
    groups = collect(recorded_sweep)
    curves = plot_curves(groups)
    assert sorted(panels(curves)) == sorted(g.name for g in groups)
    assert panels(curves)["rmsprop_baseline"][0].get_title() == "rmsprop_baseline\n(3 seeds, 1 diverged)"
    accuracy, loss = panels(curves)["adam"]  # the first panel: the row's axis labels
    assert loss.get_xlabel() == "epoch" and "accuracy" in accuracy.get_ylabel()

    rows = summarize(groups)
    test_acc = plot_test_acc(rows, groups).axes[0]
    top_down = sorted(zip(test_acc.get_yticks(), (t.get_text() for t in test_acc.get_yticklabels())), reverse=True)
    assert [label for _, label in top_down] == [r["config"] for r in rows]  # best at the top
    assert "test accuracy" in test_acc.get_xlabel()


def test_panels_share_one_scale_so_configs_compare_across_them(tmp_path):
    for config, accuracy in (("low", 0.3), ("high", 0.9)):
        for seed in (1, 2):
            write_run_results(tmp_path, config, seed, accuracy + 0.01 * seed)
    edit_history(tmp_path, "low", 1, epochs=2)
    drawn = panels(plot_curves(collect(tmp_path)))
    (low_acc, low_loss), (high_acc, high_loss) = drawn["low"], drawn["high"]
    assert low_acc.get_ylim() == high_acc.get_ylim() and low_loss.get_ylim() == high_loss.get_ylim()
    assert low_acc.get_xlim() == high_acc.get_xlim() == high_loss.get_xlim()
    bottom, top = low_acc.get_ylim()
    assert bottom <= 0.3 * 0.85 * 100 and top >= 1.0 * 0.91 * 100  # both configs' whole curves within it


def test_ten_configs_sit_in_rows_by_optimizer_family(tmp_path):
    families = {"src.optim.KerasAdam": ["adam"], "src.optim.KerasSGD": ["sgd", "sgd_momentum", "sgd_nesterov"],
                "src.optim.KerasRMSprop": [f"rmsprop_{i}" for i in range(6)]}
    for optimizer, configs in families.items():
        for config in configs:
            write_run_results(tmp_path, config, 1, 0.7, optimizer=optimizer)
    rows = {}
    for config, (accuracy, _) in panels(plot_curves(collect(tmp_path))).items():
        rows.setdefault(round(accuracy.get_position().y0, 3), set()).add(config)
    assert sorted(rows.values(), key=len) == [{"adam", "sgd", "sgd_momentum", "sgd_nesterov"},
                                              {f"rmsprop_{i}" for i in range(6)}]


def test_the_mean_runs_only_while_every_seed_runs_then_each_seed_on_its_own(tmp_path):
    for seed in (1, 2, 3):
        write_run_results(tmp_path, "sgd", seed, 0.5 + 0.1 * seed)
    kept = {seed: edit_history(tmp_path, "sgd", seed, epochs=epochs) for seed, epochs in ((1, 4), (2, 3), (3, 2))}
    accuracy, _ = panels(plot_curves(collect(tmp_path)))["sgd"]
    (mean,) = [line for line in accuracy.lines if line.get_label() == MEAN]
    assert list(mean.get_xdata()) == [1, 2]  # seed 3 stopped after epoch 2: no mean of fewer seeds after it
    assert mean.get_ydata() == pytest.approx([sum(kept[s][e] for s in kept) / 3 for e in (0, 1)])
    (band,) = accuracy.collections
    assert band.get_paths()[0].vertices[:, 0].max() <= 2
    alone = sorted((list(line.get_xdata()), list(line.get_ydata())) for line in accuracy.lines
                   if line.get_label() == ALONE)
    assert alone == [([2, 3], pytest.approx(kept[2][1:3])), ([2, 3, 4], pytest.approx(kept[1][1:4]))]


def test_a_spread_band_stays_within_what_accuracy_and_loss_can_be(tmp_path):
    # one seed near 0%, one near 100%: mean ± std would reach past both ends
    for seed, acc in ((1, 0.02), (2, 0.98)):
        write_run_results(tmp_path, "wild", seed, acc)
    accuracy, loss = panels(plot_curves(collect(tmp_path)))["wild"]
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


def test_each_seed_marks_the_stages_it_began_on_its_own_accuracy(tmp_path):
    write_run_results(tmp_path, "rmsprop_decay_1e-2", 1, 0.40)
    edit_history(tmp_path, "rmsprop_decay_1e-2", 1, lrs=[6.6e-6, 3.4e-6, 2.3e-6, 1.7e-6])  # decay halving: no stage
    stages = {1: [1e-3, 1e-3, 1e-4, 1e-5], 2: [1e-3, 1e-4, 1e-4, 1e-5]}  # stages 2 and 3 begin at 3, 4 and at 2, 4
    accuracies = {}
    for seed, lrs in stages.items():
        write_run_results(tmp_path, "adam_auto_staged", seed, 0.7 + 0.05 * seed)
        accuracies[seed] = edit_history(tmp_path, "adam_auto_staged", seed, lrs=lrs)
    figure = plot_curves(collect(tmp_path))
    drawn = panels(figure)
    assert not drawn["rmsprop_decay_1e-2"][0].collections[1:]  # its band only, no marks
    (marks,) = [c for c in drawn["adam_auto_staged"][0].collections if c.get_label() == STAGE]
    assert sorted(map(tuple, marks.get_offsets())) == sorted(  # one per seed per stage, on that seed's value
        [(3, accuracies[1][2]), (4, accuracies[1][3]), (2, accuracies[2][1]), (4, accuracies[2][3])])
    assert legend_labels(figure).count(STAGE) == 1


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
            edit_history(tmp_path, config, seed, epochs=1)
    drawn = panels(plot_curves(collect(tmp_path)))
    for config, mean in (("sgd", 100 * 0.25 * 0.85), ("adam", 100 * 0.45 * 0.85)):
        accuracy, loss = drawn[config]
        for ax in (accuracy, loss):
            assert list(ax.get_xticks()) == [1]
            (mark,) = ax.containers  # one errorbar per panel
            assert mark.has_yerr
        assert accuracy.containers[0].lines[0].get_ydata()[0] == pytest.approx(mean)


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


def test_runs_that_validated_on_the_test_set_are_drawn_as_test_curves_of_one_run(tmp_path):
    for config in ("sgd", "rmsprop_baseline"):  # the notebook's protocol: its "val" is the test set
        write_run_results(tmp_path, config, 42, 0.78, data={"validates_on_test": True})
    groups = collect(tmp_path)
    curves = plot_curves(groups)
    accuracy, loss = panels(curves)["rmsprop_baseline"]  # the first panel: the row's axis labels
    assert accuracy.get_ylabel() == "test accuracy (%)" and loss.get_ylabel() == "test loss"
    assert panels(curves)["sgd"][0].get_title() == "sgd\n(one run)"
    title = curves.get_suptitle()
    assert title.startswith("Test accuracy and loss per epoch") and "one run per config" in title
    assert "val" not in title.replace("validation set", "")
    assert legend_labels(curves) == [ONE_RUN]
    test_acc = plot_test_acc(summarize(groups), groups).axes[0]
    assert "one run per config" in test_acc.get_title() and "test set" in test_acc.get_title()


def test_the_legend_lists_what_is_drawn_and_nothing_else(tmp_path):
    for seed in (1, 2):  # stopped together, no stages: a mean and its band, nothing more
        write_run_results(tmp_path, "sgd", seed, 0.7)
    figure = plot_curves(collect(tmp_path))
    assert legend_labels(figure) == [MEAN, BAND]

    write_run_results(tmp_path, "adam", 1, 0.7)
    write_run_results(tmp_path, "adam", 2, 0.7)
    edit_history(tmp_path, "adam", 1, lrs=[1e-3, 1e-3, 1e-4, 1e-5])
    edit_history(tmp_path, "adam", 2, epochs=3)
    figure = plot_curves(collect(tmp_path))
    drawn = {artist.get_label() for accuracy, loss in panels(figure).values() for ax in (accuracy, loss)
             for artist in (*ax.lines, *ax.collections)}
    assert sorted(legend_labels(figure)) == sorted([MEAN, BAND, ALONE, STAGE]) and set(legend_labels(figure)) <= drawn


def test_a_subject_heads_both_figures(tmp_path):
    for precision in ("bf16", "float32"):
        write_run_results(tmp_path, f"rmsprop_baseline, {precision}", 1, 0.74)
    groups = collect(tmp_path)
    assert plot_curves(groups, "bf16 vs float32").get_suptitle().startswith("bf16 vs float32: ")
    assert plot_test_acc(summarize(groups), groups, "bf16 vs float32").axes[0].get_title().startswith("bf16 vs float32: ")
