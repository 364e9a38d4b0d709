"""The fast grid (``--fast true``) against the float32 grid it stands in for: does it answer the notebook's
questions the same way (each config's accuracy, each conclusion of "What we found"), and what does it save
(run time per epoch, on each kind of machine that ran both; until one has, the benchmark's per-step figure
for the machines it ran on)? Said in ``results/fast/report.md`` and in one README sentence, both made from
the published runs and benchmark results alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.comparison import ConfigRuns, compare, mean_std, within_seed_noise
from src.findings import CLAIMS, MIN_RUNS, Claim, verdict
from src.report_markdown import Activity, duration
from src.results import RunRecord


@dataclass(frozen=True)
class ConfigAgreement:
    """One config's runs in both grids, and whether the fast grid's mean is one the float32 runs could have given."""

    name: str
    float32: ConfigRuns
    fast: ConfigRuns

    @property
    def comparable(self) -> bool:
        return min(len(self.float32.finished), len(self.fast.finished)) >= MIN_RUNS

    @property
    def inside(self) -> str:
        """Whether the fast mean lies inside the float32 runs' 95% prediction interval, and the interval."""
        if not self.comparable:
            return "–"
        return within_seed_noise(_percent(self.float32), float(np.mean(_percent(self.fast))))

    @property
    def agrees(self) -> bool:
        return self.inside.startswith("yes")

    @property
    def p_value(self) -> float | None:
        """Welch's t-test between the two grids' test accuracies."""
        if not self.comparable:
            return None
        (tested,) = compare([ConfigRuns("float32", self.float32.runs), ConfigRuns("fast", self.fast.runs)])
        return tested.p_value


@dataclass(frozen=True)
class ClaimAgreement:
    """One of the notebook's conclusions, settled on each grid."""

    claim: Claim
    float32: str
    fast: str

    @property
    def settled(self) -> bool:
        return not any(v.startswith("not settled") for v in (self.float32, self.fast))

    @property
    def same(self) -> bool:
        """The same kind of answer ("holds", "not shown", "reversed", …); the gap and p may differ."""
        return _kind(self.float32) == _kind(self.fast)


def config_agreements(float32: dict[str, ConfigRuns], fast: dict[str, ConfigRuns]) -> list[ConfigAgreement]:
    """Every config of the fast grid beside the same config's float32 runs, in the fast grid's order."""
    return [ConfigAgreement(name, float32.get(name, ConfigRuns(name)), group) for name, group in fast.items()]


def claim_agreements(float32: dict[str, ConfigRuns], fast: dict[str, ConfigRuns]) -> list[ClaimAgreement]:
    return [ClaimAgreement(claim, verdict(claim, float32), verdict(claim, fast)) for claim in CLAIMS]


def machine_kind(run: RunRecord) -> str:
    """The machine a run's speed depends on, whatever precision it trained in."""
    env = run.environment
    flags = ", ".join(env.get("cpu_flags", [])) or "no bf16 or AVX flags recorded"
    device = f"{env.get('device')}: " if env.get("device") not in (None, "cpu") else ""
    return f"{device}{env.get('cpu', 'unknown CPU')}, {env.get('cpu_count', '?')} cores ({flags})"


def per_epoch_seconds(groups: dict[str, ConfigRuns]) -> dict[str, tuple[int, float]]:
    """By :func:`machine_kind`: the finished runs there that timed themselves, and their run time per epoch."""
    by_kind: dict[str, list[RunRecord]] = {}
    for run in (run for group in groups.values() for run in group.finished):
        if run.wall_time_s and run.epochs:
            by_kind.setdefault(machine_kind(run), []).append(run)
    return {kind: (len(runs), sum(run.wall_time_s for run in runs) / sum(run.epochs for run in runs))
            for kind, runs in by_kind.items()}


def speedups(float32: dict[str, ConfigRuns], fast: dict[str, ConfigRuns]) -> dict[str, float]:
    """The fast grid's time per epoch over the float32 grid's, on each kind of machine that ran both."""
    ours, theirs = per_epoch_seconds(fast), per_epoch_seconds(float32)
    return {kind: ours[kind][1] / theirs[kind][1] for kind in ours if kind in theirs}


def benchmark_gains(fast: dict[str, ConfigRuns], benchmarks: Path | None = None) -> dict[str, tuple[float, str]]:
    """Per step, what ``--fast true`` gains over the float32 default on each kind of CPU the fast grid ran on,
    and the benchmark result that says so (:func:`src.fast.measured_speedup`: the committed benchmark of a CPU
    of that model and bf16 flags), where there is one."""
    from src.fast import BENCHMARK_DIR, measured_speedup  # here, not above: it imports torch

    gains: dict[str, tuple[float, str]] = {}
    for run in (run for group in fast.values() for run in group.finished):
        env, kind = run.environment, machine_kind(run)
        if kind in gains or env.get("device", "cpu") != "cpu" or not env.get("cpu"):
            continue
        measured = measured_speedup({"cpu": env["cpu"], "cpu_flags": env.get("cpu_flags", [])},
                                    benchmarks or BENCHMARK_DIR)
        if measured:
            gains[kind] = measured
    return gains


def markdown(float32: dict[str, ConfigRuns], fast: dict[str, ConfigRuns],
             when: tuple[Activity | None, Activity | None] = (None, None)) -> str:
    """The report's section "Against the float32 grid"; ``when`` is each grid's :class:`Activity` (float32, fast)."""
    return "\n".join([
        "## Against the float32 grid", "",
        "Each config's test accuracy in this grid (`--fast true`) and in the float32 grid it stands in for "
        "(`results/notebook`: the same data, protocol and seeds, the exact default path). The fast mean is checked "
        "against the float32 runs' 95% prediction interval (could one more float32 run have given it?), and "
        "Welch's t-test compares the two grids' runs.", "",
        *_accuracy_table(float32, fast), "",
        "The notebook's conclusions (\"What we found\" in `results/notebook/report.md`), settled on each grid by "
        "the same test:", "",
        *_claims_table(float32, fast), "",
        "What each grid cost: its runs' own wall time (resumes included) over the epochs they trained, by the kind "
        "of machine they ran on, and the hours some run of the grid was training.", "",
        *_costs_table(float32, fast), "",
        f"- float32 grid: {_hours(float32, when[0])}",
        f"- fast grid: {_hours(fast, when[1])}", "",
        conclusion(float32, fast),
    ]) + "\n"


def _accuracy_table(float32: dict[str, ConfigRuns], fast: dict[str, ConfigRuns]) -> list[str]:
    lines = ["| config | float32 (test acc. %) | fast (test acc. %) | fast mean inside the float32 interval? "
             "| Welch's p |", "| --- | ---: | ---: | --- | ---: |"]
    for config in config_agreements(float32, fast):
        p_value = "–" if config.p_value is None else f"{config.p_value:.2g}"
        float32_acc, fast_acc = (mean_std(_percent(group), count=True) for group in (config.float32, config.fast))
        lines.append(f"| `{config.name}` | {float32_acc} | {fast_acc} | {config.inside} | {p_value} |")
    return lines


def _claims_table(float32: dict[str, ConfigRuns], fast: dict[str, ConfigRuns]) -> list[str]:
    lines = ["| the conclusion | float32 grid | fast grid | same answer? |", "| --- | --- | --- | --- |"]
    for claim in claim_agreements(float32, fast):
        same = ("yes" if claim.same else "**no**") if claim.settled else "–"
        lines.append(f"| {claim.claim.text} | {claim.float32} | {claim.fast} | {same} |")
    return lines


def _costs_table(float32: dict[str, ConfigRuns], fast: dict[str, ConfigRuns]) -> list[str]:
    lines = ["| machine | float32: runs, per epoch | fast: runs, per epoch | fast / float32 |",
             "| --- | ---: | ---: | ---: |"]
    ours, theirs, ratios = per_epoch_seconds(fast), per_epoch_seconds(float32), speedups(float32, fast)
    for kind in sorted(ours.keys() | theirs.keys()):
        ratio = f"{ratios[kind]:.2f}" if kind in ratios else "–"
        lines.append(f"| {kind} | {_runs_per_epoch(theirs.get(kind))} | {_runs_per_epoch(ours.get(kind))} | {ratio} |")
    return lines


def conclusion(float32: dict[str, ConfigRuns], fast: dict[str, ConfigRuns], benchmarks: Path | None = None) -> str:
    """One sentence: what the fast grid saves, and whether its answers are the float32 grid's
    (``benchmarks``: where the benchmark results are, for :func:`benchmark_gains`)."""
    configs = [c for c in config_agreements(float32, fast) if c.comparable]
    runs = sum(len(group.finished) for group in fast.values())
    if not runs:
        return ("The fast grid (`--fast true`) is not published yet: it needs two finished runs of a config in "
                "`results/fast` beside that config's float32 runs in `results/notebook`.")
    if not configs:
        return (f"The fast grid (`--fast true`) has {runs} finished run{'s' if runs > 1 else ''} in `results/fast`; "
                "a config is compared with its float32 runs once it has two there, and none has yet.")
    ratios = speedups(float32, fast)
    if ratios:
        saving = "trained " + "; ".join(f"{1 / ratio:.1f}× faster per epoch on {kind}"
                                        for kind, ratio in ratios.items())
    else:
        per_step = "; ".join(f"{gain:.1f}× as fast as the float32 default on {kind}, in `{source}`"
                             for kind, (gain, source) in benchmark_gains(fast, benchmarks).items())
        saving = ("has no saving measured yet, as no kind of machine has run both grids ("
                  + (f"per step, the benchmark measures it {per_step})" if per_step else
                     "the benchmark's `fit fast` against `fit` gives it per step)"))
    outside = [f"`{c.name}`" for c in configs if not c.agrees]
    claims = [c for c in claim_agreements(float32, fast) if c.settled]
    changed = [c.claim.text for c in claims if not c.same]
    compared = (f"every one of the {len(configs)} configs compared has" if len(configs) > 1 else
                f"the one config compared so far, `{configs[0].name}`, has")
    accuracy = (f"{compared} its fast mean inside the float32 runs' 95% prediction interval" if not outside else
                f"{', '.join(outside)} {'has its' if len(outside) == 1 else 'have their'} fast mean outside the "
                "float32 runs' 95% prediction interval")
    if changed:
        answers = f"these of the notebook's conclusions come out differently: {'; '.join(changed)}"
    elif len(claims) == len(CLAIMS):
        answers = f"all {len(claims)} of the notebook's conclusions come out the same"
    elif claims:
        answers = (f"{len(claims)} of the notebook's {len(CLAIMS)} conclusions {'is' if len(claims) == 1 else 'are'} "
                   "settled on both grids so far, "
                   f"and {'it comes' if len(claims) == 1 else 'all come'} out the same")
    else:
        answers = "none of the notebook's conclusions is settled on both grids yet"
    return f"With `--fast true` the notebook's grid ({runs} finished runs) {saving}; {accuracy}; {answers}."


def _kind(verdict_text: str) -> str:
    return verdict_text.split(":", 1)[0]


def _percent(group: ConfigRuns) -> list[float]:
    return [100 * v for v in group.test_accuracies]


def _runs_per_epoch(cell: tuple[int, float] | None) -> str:
    return "–" if cell is None else f"{cell[0]}, {duration(cell[1])}"


def _hours(groups: dict[str, ConfigRuns], activity: Activity | None) -> str:
    runs = [run for group in groups.values() for run in group.finished]
    run_time = sum(run.wall_time_s or 0.0 for run in runs)
    trained = f"; some run was training during {duration(activity.training_s)}, by the events" if activity else ""
    return (f"{duration(run_time)} of run time over its {len(runs)} finished runs "
            f"({sum(run.epochs for run in runs):,} epochs){trained}")
