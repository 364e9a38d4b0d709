""""What we found": each notebook conclusion settled by the runs' own seed noise, never typed in."""

from pathlib import Path

import pytest

from src.comparison import ConfigRuns, collect
from src.findings import CLAIMS, Claim, markdown, verdict
from src.published import ladder
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
