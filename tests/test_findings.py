""""What we found": each notebook conclusion settled by the runs' own seed noise, never typed in."""

from pathlib import Path

import pytest

from src.comparison import ConfigRuns, collect
from src.findings import CLAIMS, Claim, keras_conclusion, markdown, verdict
from src.publish import ladder
from src.results import RunRecord

BEATS = Claim("a beats b", "a", "b")
ALIKE = Claim("a and b train alike", "a", "b", same=True)


def runs(name, accuracies):
    return ConfigRuns(name, [RunRecord(config=name, stop_reason="early_stopping", epochs=30, test_acc=acc)
                             for acc in accuracies])


def protocol_runs(name, stopped, best):
    """Notebook-protocol runs: validated on the test set, so the last epoch's val_acc is its test accuracy."""
    return ConfigRuns(name, [
        RunRecord(config=name, stop_reason="early_stopping", epochs=30, test_acc=b, data={"validates_on_test": True},
                  history=[{"epoch": 29, "val_acc": b}, {"epoch": 30, "val_acc": s}])
        for s, b in zip(stopped, best)])


def groups(a, b):
    return {"a": runs("a", a), "b": runs("b", b)}


@pytest.mark.parametrize("a, b, expected", [
    ([0.80, 0.81, 0.82], [0.70, 0.71, 0.72], "holds: better by 10.0 points"),
    ([0.70, 0.71, 0.72], [0.80, 0.81, 0.82], "reversed: `b` is better by 10.0 points"),
    ([0.70, 0.75, 0.80], [0.69, 0.74, 0.79], "not shown: ahead by 1.0 points"),
    ([0.69, 0.74, 0.79], [0.70, 0.75, 0.80], "not shown: `b` is ahead, within seed noise (1.0 points"),
])
def test_a_claim_that_one_setting_beats_another_needs_a_gap_beyond_seed_noise(a, b, expected):
    assert verdict(BEATS, groups(a, b)).startswith(expected)


def test_a_claim_that_two_settings_train_alike_fails_only_on_a_real_difference():
    assert verdict(ALIKE, groups([0.70, 0.75, 0.80], [0.69, 0.74, 0.79])).startswith("holds: no difference")
    assert verdict(ALIKE, groups([0.70, 0.71, 0.72], [0.80, 0.81, 0.82])).startswith("does not hold: `b` is better")


def test_a_claim_is_not_settled_before_each_side_has_two_finished_runs():
    assert verdict(BEATS, groups([0.8, 0.9], [0.1])) == "not settled yet: 2 and 1 finished runs, 2 each needed"
    assert verdict(BEATS, {"a": runs("a", [0.8, 0.9])}).startswith("not settled yet: 2 and 0")


def test_the_section_lists_every_claim_and_the_lift_of_stopping_on_the_test_set():
    ours = [runs("sgd", [0.76, 0.77, 0.78]), runs("rmsprop_baseline", [0.74, 0.75])]
    text = markdown(ours, [protocol_runs("sgd", [0.80], [0.81])])
    assert all(f"| {claim.text} |" in text for claim in CLAIMS)
    assert "| `sgd` | 80.00 (n=1) | 81.00 | 77.00 (n=3) | +3.0 | yes (72.0–82.0) | 0.8075 (+3.8) |" in text
    assert "lifts a result by +3.0 points here; the notebook's figures lie +3.8 points above" in text
    assert "SGD beats RMSprop | inferred from its figures | `sgd` vs `rmsprop_baseline`: 0.8075 vs 0.7722 (34 epochs) | holds" in text
    assert "No notebook-protocol run is published yet" in markdown(ours)


def test_the_notebooks_own_conclusions_are_quoted_and_the_rest_said_to_be_inferred():
    text = markdown([runs("sgd", [0.76, 0.77, 0.78])])
    assert '| decay 1e-7 is better than 1e-6 | its words: "promising" (the RMSprop decay 1e-7 experiment) |' in text
    assert '| Nesterov momentum 0.5 beats momentum 0.1 | its words: "slightly better" (the SGD Nesterov 0.5 experiment) |' in text
    assert "| lr 1e-3 is too high for RMSprop | inferred from its figures |" in text


def test_the_lift_is_measured_on_the_stopped_epoch_as_the_notebook_reported_not_the_best():
    ours = [runs("sgd", [0.76, 0.77, 0.78]), runs("rmsprop_baseline", [0.74, 0.75, 0.76])]
    text = markdown(ours, [protocol_runs("sgd", [0.78], [0.79]), protocol_runs("rmsprop_baseline", [0.755], [0.76])])
    assert ("lifts a result by +0.5 to +1.0 points here; the notebook's figures lie "
            "+2.2 to +3.8 points above our held-out means. The gap less the lift, +1.7 to +2.8 points, is what the "
            "protocol does not explain") in text


def test_a_config_the_notebook_never_ran_gets_its_lift_but_no_comparison_with_the_notebook():
    text = markdown([runs("mine", [0.70, 0.71, 0.72])], [protocol_runs("mine", [0.73], [0.74])])
    assert "| `mine` | 73.00 (n=1) | 74.00 | 71.00 (n=3) | +2.0 |" in text
    assert "The gap less the lift" not in text


def limited(name, best_epochs, stop_reason="max_epochs"):
    return ConfigRuns(name, [RunRecord(config=name, stop_reason=stop_reason, epochs=100, best_epoch=best, test_acc=0.7)
                             for best in best_epochs])


@pytest.mark.parametrize("group, said", [
    (limited("rmsprop_lr_1e-5", [99, 100, 96]), True),
    (limited("rmsprop_lr_1e-5", [99, 100, 95]), False),  # one run had stopped improving
    (limited("rmsprop_lr_1e-5", [99, 100], stop_reason="early_stopping"), False),
])
def test_runs_that_were_still_improving_at_their_epoch_limit_are_a_reason(group, said):
    text = markdown([group])
    assert ("Every `rmsprop_lr_1e-5` run reached its limit of 100 epochs" in text) is said
    assert ("the notebook's figure is 0.7323 (~150 epochs)" in text) is said


def test_the_published_report_says_what_the_published_runs_say():
    # regenerate with: python -m src.publish
    results = Path(__file__).resolve().parent.parent / "results"
    published = [collect(results / name) if (results / name).is_dir() else [] for name in ("notebook_protocol", "keras_reference")]
    expected = markdown(collect(results / "notebook"), *published, ladder(results))
    assert (results / "notebook" / "report.md").read_text().endswith(expected)


def keras_runs(name, stopped):
    """Keras reference runs: the stopped epoch is the one evaluated, and it validated on the test set."""
    return ConfigRuns(name, [
        RunRecord(config=name, stop_reason="early_stopping", epochs=30, test_acc=s, data={"validates_on_test": True},
                  history=[{"epoch": 30, "val_acc": s}]) for s in stopped])


def test_keras_and_the_project_agreeing_on_the_same_images_say_the_port_is_not_the_gap():
    protocol = [protocol_runs("sgd", [0.779, 0.781, 0.776], [0.79, 0.79, 0.79])]
    text = markdown([runs("sgd", [0.76, 0.77, 0.78])], protocol, [keras_runs("sgd", [0.780, 0.777, 0.782])])
    assert "| `sgd` | 77.97 ± 0.25 (n=3) | 77.87 ± 0.25 (n=3) | 0.8075 |" in text
    assert "agree within seed noise" in text
    assert ("agree within seed noise on `sgd`: the port is faithful end to end, and the notebook's lead (the "
            "notebook's figures lie +2.8 points above both) lies in the data or in its single runs") in text


def test_keras_ahead_of_the_project_beyond_seed_noise_puts_part_of_the_gap_in_the_port():
    protocol = {"sgd": protocol_runs("sgd", [0.770, 0.771, 0.769], [0.78, 0.78, 0.78])}
    sentence = keras_conclusion({"sgd": keras_runs("sgd", [0.800, 0.801, 0.799])}, protocol)
    assert sentence.startswith("Keras 3 and this project") and "differ beyond seed noise on `sgd` (Keras 3 ahead by 3.0 points" in sentence


def test_the_keras_comparison_waits_for_two_runs_on_each_side():
    protocol = {"sgd": protocol_runs("sgd", [0.77], [0.78])}
    assert "not settled yet" in keras_conclusion({"sgd": keras_runs("sgd", [0.78, 0.79])}, protocol)
    text = markdown([runs("sgd", [0.76, 0.77])], list(protocol.values()), [keras_runs("sgd", [0.78, 0.79])])
    assert "| needs two runs on each side |" in text


def test_the_jpeg_ladders_slope_is_a_line_through_every_run_and_says_what_it_cannot_show():
    rungs = {75: runs("sgd", [0.774, 0.776, 0.775]), 50: runs("sgd", [0.765, 0.767]), 30: runs("sgd", [0.755, 0.757])}
    text = markdown([runs("sgd", [0.76, 0.77])], rungs=rungs)
    assert "| 75 | 3 | 77.50 ± 0.10 (n=3) |" in text and "| 30 | 2 | 75.60 ± 0.14 (n=2) |" in text
    assert "A line through all 7 runs rises +0.42 points per 10 quality steps" in text
    assert "extrapolation beyond the measured range, not a measurement" in text


def test_the_jpeg_ladder_needs_two_qualities():
    assert "The JPEG ladder is not published yet" in markdown([runs("sgd", [0.76])], rungs={75: runs("sgd", [0.77])})
