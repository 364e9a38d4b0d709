"""The notebook's conclusions, each checked against the published runs: "What we found".

The notebook drew its conclusions from one run per setting. Each :class:`Claim` below is one of
them, written as the comparison it rests on; :func:`verdict` settles it with the report's noise
test (Welch's t-test on test accuracy), so the section says only what the runs show and changes
by itself as more seeds are published.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from scipy import stats

from src.comparison import SIGNIFICANCE, ConfigRuns, compare, within_seed_noise
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


def protocol_lines(groups: dict[str, ConfigRuns], protocol: dict[str, ConfigRuns]) -> list[str]:
    """How much the notebook's protocol (``protocol``'s runs: stopped on the test set, the stopped epoch
    evaluated as the notebook's ``evaluate`` did) lifts each config over our held-out mean, beside how
    far the notebook's figure lies above that mean: whether the protocol explains the notebook's lead.
    The best epoch's test accuracy is shown too: what our own protocol would have tested."""
    lines, lifts, gaps = [], [], []
    for name, group in protocol.items():
        ours = groups.get(name)
        stopped = [100 * v for v in group.values(lambda r: r.stopped_epoch_test_acc)]
        if not stopped or not ours or not ours.test_accuracies:
            continue
        on_test = float(np.mean(stopped))
        best_epoch = float(np.mean([100 * v for v in group.test_accuracies]))
        held_out = [100 * v for v in ours.test_accuracies]
        held_out_mean = float(np.mean(held_out))
        lift = on_test - held_out_mean
        notebook = ""
        figure = NOTEBOOK[name].value if name in NOTEBOOK else None
        if figure is not None:
            lifts.append(lift)
            gaps.append(100 * figure - held_out_mean)
            quoted = NOTEBOOK[name]
            notebook = f"{quoted.exact:g} ({gaps[-1]:+.1f})" if quoted.exact is not None else f"{quoted.text} ({gaps[-1]:+.1f})"
        lines.append(f"| `{name}` | {on_test:.2f} (n={len(stopped)}) | {best_epoch:.2f} | {held_out_mean:.2f} "
                     f"(n={len(held_out)}) | {lift:+.1f} | {within_seed_noise(held_out, on_test)} | {notebook} |")
    if not lines:
        return ["No notebook-protocol run is published yet (`results/notebook_protocol`)."]
    table = ["| config | test acc. %, the stopped epoch (as the notebook reported) | the best epoch | held out (ours) "
             "| lift | within our seed noise? | the notebook (above ours) |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: |", *lines]
    if not gaps:
        return table
    left = [gap - lift for gap, lift in zip(gaps, lifts)]
    return [*table, "",
            f"The notebook's protocol, reported as it reported (the stopped epoch), lifts a result by {_span(lifts)} "
            f"points here; the notebook's figures lie {_span(gaps)} points above our held-out means. The gap less "
            f"the lift, {_span(left)} points, is what the protocol does not explain: the other reasons above."]


def stopped_epoch_runs(group: ConfigRuns, name: str) -> ConfigRuns:
    """``group``'s finished runs scored by the test accuracy of the epoch each stopped at, as the notebook's
    ``evaluate`` scored its run; runs that did not validate on the test set have no such figure and are left out."""
    return ConfigRuns(name, [replace(run, test_acc=run.stopped_epoch_test_acc) for run in group.finished
                             if run.stopped_epoch_test_acc is not None])


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    spread = f" ± {np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
    return f"{np.mean(values):.2f}{spread} (n={len(values)})"


def keras_comparisons(keras: dict[str, ConfigRuns], protocol: dict[str, ConfigRuns]) -> dict[str, tuple]:
    """Per config the Keras reference runs and the project's notebook-protocol runs, both scored at the
    stopped epoch, and their Welch comparison where each side has two runs (None before)."""
    paired = {}
    for name, group in keras.items():
        ours = stopped_epoch_runs(protocol.get(name, ConfigRuns(name)), "this project")
        theirs = stopped_epoch_runs(group, "Keras 3")
        tested = compare([theirs, ours])
        paired[name] = (theirs, ours, tested[0] if tested else None)
    return paired


def keras_conclusion(keras: dict[str, ConfigRuns], protocol: dict[str, ConfigRuns]) -> str:
    """One sentence: whether the port or the data explains the notebook's lead, from the Keras reference runs."""
    paired = keras_comparisons(keras, protocol)
    settled = {name: comparison for name, (_, _, comparison) in paired.items() if comparison is not None}
    if not settled:
        return ("Whether the port or the data explains the notebook's lead is not settled yet: it needs two runs of "
                "Keras 3 and two of this project on the same images, for one config at least "
                "(`results/keras_reference`, `results/notebook_protocol`).")
    differ = {name: c for name, c in settled.items() if c.beyond_noise}
    names = ", ".join(f"`{name}`" for name in settled)
    if not differ:
        leads = [100 * (NOTEBOOK[name].value - float(np.mean(paired[name][0].test_accuracies + paired[name][1].test_accuracies)))
                 for name in settled if name in NOTEBOOK and NOTEBOOK[name].value is not None]
        lead = f" (the notebook's figures lie {_span(leads)} points above both)" if leads else ""
        return (f"Keras 3 and this project, trained on the same JPEG images with the notebook's protocol, agree within "
                f"seed noise on {names}: the port is faithful end to end, and the notebook's lead{lead} lies in "
                "the data or in its single runs, not in the port.")
    parts = [f"`{name}` ({c.better} ahead by {100 * c.difference:.1f} points, p = {c.p_value:.2g})"
             for name, c in differ.items()]
    return (f"Keras 3 and this project, trained on the same JPEG images with the notebook's protocol, differ beyond "
            f"seed noise on {', '.join(parts)}: part of the notebook's lead there is the port's, to be found in it.")


def keras_lines(keras: dict[str, ConfigRuns], protocol: dict[str, ConfigRuns]) -> list[str]:
    """The table of the Keras reference against the project, both on our images with the notebook's protocol."""
    if not keras:
        return ["No Keras reference run is published yet (`results/keras_reference`, made by "
                "`scripts/keras_reference.py`)."]
    lines = ["| config | Keras 3 on our images (stopped epoch, %) | this project on our images (stopped epoch, %) "
             "| the 2017 notebook | Welch's p | verdict |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for name, (theirs, ours, comparison) in keras_comparisons(keras, protocol).items():
        if comparison is None:
            p_value, verdict = "–", "needs two runs on each side"
        else:
            p_value = f"{comparison.p_value:.2g}"
            verdict = (f"differ: {comparison.better} ahead by {100 * comparison.difference:.1f} points"
                       if comparison.beyond_noise else "agree within seed noise")
        notebook = NOTEBOOK[name].text if name in NOTEBOOK else "–"
        lines.append(f"| `{name}` | {_mean_std([100 * v for v in theirs.test_accuracies])} | "
                     f"{_mean_std([100 * v for v in ours.test_accuracies])} | {notebook} | {p_value} | {verdict} |")
    return [*lines, "", keras_conclusion(keras, protocol)]


def encoding_lines(rungs: dict[int, ConfigRuns]) -> list[str]:
    """How test accuracy responds to JPEG encoding: ``rungs`` maps a quality to the runs of one config on
    images at that quality (the shared copy's 75 and the lower rungs of scripts/jpeg_ladder.py), and the
    slope of a line through every run says how many points ten quality steps are worth."""
    rows = {quality: [100 * v for v in group.test_accuracies] for quality, group in sorted(rungs.items(), reverse=True)}
    rows = {quality: values for quality, values in rows.items() if values}
    if len(rows) < 2:
        return ["The JPEG ladder is not published yet: it needs runs at two qualities at least "
                "(`results/jpeg_ladder/q<Q>`, images from `scripts/jpeg_ladder.py`)."]
    name = next(iter(rungs.values())).name
    table = ["| JPEG quality | runs | test acc. % (mean ± std) |", "| ---: | ---: | ---: |"]
    table += [f"| {quality} | {len(values)} | {_mean_std(values)} |" for quality, values in rows.items()]
    qualities = [quality for quality, values in rows.items() for _ in values]
    accuracies = [value for values in rows.values() for value in values]
    fit = stats.linregress(qualities, accuracies)
    half = stats.t.ppf(0.975, len(accuracies) - 2) * fit.stderr if len(accuracies) > 2 else float("nan")
    top = max(rows)
    return [*table, "",
            f"`{name}`, held-out protocol. A line through all {len(accuracies)} runs rises {10 * fit.slope:+.2f} points "
            f"per 10 quality steps (95% interval {10 * (fit.slope - half):+.2f} to {10 * (fit.slope + half):+.2f}). "
            f"The lower rungs are encoded twice (at {top}, then lower), so the slope measures more loss on top of the "
            f"shared copy's; what quality {top} itself costs against the original PNGs is an extrapolation beyond the "
            "measured range, not a measurement."]


def _span(values: list[float]) -> str:
    low, high = (f"{value:+.1f}" for value in (min(values), max(values)))
    return low if low == high else f"{low} to {high}"


def markdown(groups: list[ConfigRuns], protocol: list[ConfigRuns] = (), keras: list[ConfigRuns] = (),
             rungs: dict[int, ConfigRuns] | None = None) -> str:
    """The "What we found" section of the notebook's report."""
    by_name = {group.name: group for group in groups}
    protocol_by_name = {group.name: group for group in protocol}
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
        "### What stopping on the test set does", "",
        "The notebook's own protocol (`--data.val_split 0`: early stopping on the test set, and all 50,000 "
        "images trained rather than 45,000), against ours for the same config. The notebook reported the epoch "
        "it stopped at, so the lift is measured on that epoch's test accuracy; the best epoch's is shown beside "
        "it. The lift is both effects together.", "",
        *protocol_lines(by_name, protocol_by_name), "",
        "### The notebook's framework on the same images", "",
        "The notebook's cells trained again by Keras 3 on TensorFlow (`scripts/keras_reference.py`: its network and "
        "initialisation, Keras 2.0.8's optimizer updates and decay, its early stopping, the stopped epoch evaluated) "
        "on the same JPEG images and with the same protocol as the project's runs above, float32 on both sides. "
        "Where the two agree, the port is not what separates us from the notebook.", "",
        *keras_lines({group.name: group for group in keras}, protocol_by_name), "",
        "### What the encoding costs", "",
        "The same config trained on the shared images (JPEG quality 75) and on copies encoded again at lower "
        "qualities (`scripts/jpeg_ladder.py`), all else equal:", "",
        *encoding_lines(rungs or {}),
    ]) + "\n"
