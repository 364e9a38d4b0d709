"""The notebook's conclusions, each checked against the published runs: "What we found".

The notebook drew its conclusions from one run per setting. Each :class:`Claim` below is one of
them, written as the comparison it rests on; :func:`verdict` settles it with the report's noise
test (Welch's t-test on test accuracy), so the section says only what the runs show and changes
by itself as more seeds are published.
"""

from __future__ import annotations

from dataclasses import dataclass

from src.comparison import SIGNIFICANCE, ConfigRuns, compare
from src.gap import gap_sections
from src.keras_notebook import NOTEBOOK

MIN_RUNS = 2  # seed noise needs two runs of each side
STILL_IMPROVING = 5  # a best epoch among a run's last this many: its epoch limit ended it, not a plateau


@dataclass(frozen=True)
class Claim:
    """``first`` beats ``second`` (``same=False``), or the two train alike (``same=True``).

    ``said`` is the notebook's own words where it drew the conclusion itself, quoted from its
    experiment ``where``; without them the conclusion is ours, read from its figures.
    """

    text: str
    first: str
    second: str
    same: bool = False
    said: str | None = None
    where: str = ""

    @property
    def source(self) -> str:
        """Whose conclusion it is: the notebook's words and where they stand, or an inference from its figures."""
        return f'its words: "{self.said}" ({self.where})' if self.said else "inferred from its figures"


CLAIMS = (
    Claim("lr 1e-3 is too high for RMSprop", "rmsprop_baseline", "rmsprop_lr_1e-3"),
    Claim("lr 1e-5 is too low for RMSprop, even trained far longer", "rmsprop_baseline", "rmsprop_lr_1e-5"),
    Claim("decay 1e-7 is better than 1e-6", "rmsprop_decay_1e-7", "rmsprop_baseline",
          said="promising", where="the RMSprop decay 1e-7 experiment"),
    Claim("decay 1e-5 changes nothing", "rmsprop_baseline", "rmsprop_decay_1e-5", same=True,
          said="does not seem to help or hinder", where="the RMSprop decay 1e-5 experiment"),
    Claim("decay 1e-2 cripples training", "rmsprop_baseline", "rmsprop_decay_1e-2"),
    Claim("SGD beats RMSprop", "sgd", "rmsprop_baseline"),
    Claim("momentum 0.1 does not help SGD", "sgd", "sgd_momentum", same=True),
    Claim("Nesterov momentum 0.5 beats momentum 0.1", "sgd_nesterov", "sgd_momentum",
          said="slightly better", where="the SGD Nesterov 0.5 experiment"),
    Claim("Nesterov momentum 0.5 does not help SGD", "sgd", "sgd_nesterov", same=True),
    Claim("the staged Adam schedule beats SGD", "adam_auto_staged", "sgd"),
)

REASONS = """\
Where our accuracies differ from the notebook's, the likely reasons, in the order we would
check them:

- **Single runs.** The notebook ran each setting once; the spread over our seeds above shows how
  far one run can land from another of the same setting, and a gap smaller than that is no finding.
- **Stopping on the test set.** The notebook validated on the test set, so its early stopping
  chose when to stop by test accuracy, and it trained on all 50,000 images; it then evaluated the
  epoch it stopped at (Keras 2.0.8's EarlyStopping kept the last weights, not the best). Ours stop
  on 5,000 training images held out, train on 45,000 and test the best epoch once. The
  notebook-protocol runs below measure what that difference is worth.
- **Data encoding.** Our images are CIFAR-10 re-encoded as JPEG (quality 75); compression
  artefacts can cost a point against the original PNGs.
- **Keras' patience counting.** Keras 2.0 stopped one epoch later than its `patience` says; we
  count as it did (`keras_patience: true`), so stopping epochs are comparable, but a run that
  stops on a plateau depends on where the noise of one epoch falls."""


def verdict(claim: Claim, groups: dict[str, ConfigRuns]) -> str:
    """Whether ``claim`` holds in ``groups``' finished runs, with the gap and its p-value."""
    first, second = groups.get(claim.first), groups.get(claim.second)
    counts = [len(g.finished) if g else 0 for g in (first, second)]
    if min(counts) < MIN_RUNS:
        return f"not settled yet: {counts[0]} and {counts[1]} finished runs, {MIN_RUNS} each needed"
    (comparison,) = compare([first, second])
    gap = f"{100 * comparison.difference:.1f} points, p = {comparison.p_value:.2g}"
    if claim.same:
        if comparison.beyond_noise:
            return f"does not hold: `{comparison.better}` is better by {gap}"
        return f"holds: no difference beyond seed noise ({gap})"
    if comparison.better != claim.first:
        if comparison.beyond_noise:
            return f"reversed: `{comparison.better}` is better by {gap}"
        return f"not shown: `{comparison.better}` is ahead, within seed noise ({gap})"
    if comparison.beyond_noise:
        return f"holds: better by {gap}"
    return f"not shown: ahead by {gap}, within seed noise"


def epoch_limit_lines(groups: list[ConfigRuns]) -> list[str]:
    """A reason for each config whose every run was still improving when its epoch limit ended it."""
    lines = []
    for group in groups:
        runs = group.finished
        if runs and all(run.stop_reason == "max_epochs" and run.best_epoch is not None
                        and run.epochs - run.best_epoch < STILL_IMPROVING for run in runs):
            limits = "/".join(str(epochs) for epochs in sorted({run.epochs for run in runs}))
            figure = f"; the notebook's figure is {NOTEBOOK[group.name].text}" if group.name in NOTEBOOK else ""
            lines.append(
                f"- **Epoch limit.** Every `{group.name}` run reached its limit of {limits} epochs "
                f"(`trainer.max_epochs`) with its best epoch among the last {STILL_IMPROVING}, still improving"
                f"{figure}. More epochs would show how far it goes: a resume may raise the limit "
                "(`--ckpt_path last --trainer.max_epochs N`)."
            )
    return lines


def markdown(groups: list[ConfigRuns], protocol: list[ConfigRuns] = (), keras: list[ConfigRuns] = (),
             rungs: dict[int, ConfigRuns] | None = None) -> str:
    """The "What we found" section of the notebook's report."""
    by_name = {group.name: group for group in groups}
    rows = []
    for claim in CLAIMS:
        figures = f"{NOTEBOOK[claim.first].text} vs {NOTEBOOK[claim.second].text}"
        rows.append(f"| {claim.text} | {claim.source} | `{claim.first}` vs `{claim.second}`: {figures} "
                    f"| {verdict(claim, by_name)} |")
    return "\n".join([
        "## What we found", "",
        "Each of the notebook's conclusions, as the comparison it rests on, settled by Welch's t-test on our "
        f"test accuracies (p < {SIGNIFICANCE} counts as more than seed noise). Where the notebook said so itself "
        "its words are quoted; the other conclusions are read from its figures. A conclusion that two settings "
        "train alike holds when no difference beyond seed noise shows: few seeds can only rule out large gaps.", "",
        "| the conclusion | the notebook's, or read from its figures | its figures | here |",
        "| --- | --- | --- | --- |", *rows, "",
        REASONS, *epoch_limit_lines(groups), "",
        *gap_sections(by_name, {group.name: group for group in protocol}, {group.name: group for group in keras},
                      rungs or {}),
    ]) + "\n"
