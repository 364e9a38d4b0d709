"""results/ read back by what each folder holds (the notebook grid, the notebook-protocol and Keras
reference runs, the JPEG ladder, the precision runs, the fast grid), and what is drawn from them there
beside each folder's report: the notebook report's findings, the precision figures and the fast grid's
comparison with the float32 grid.

Each of these is made from the committed runs alone, so ``python -m src.publish`` remakes them.
"""

from __future__ import annotations

from pathlib import Path

from src import fast_grid, findings
from src.comparison import ConfigRuns, collect, summarize
from src.figures import write_figures
from src.paths import PROJECT_ROOT
from src.report import activity
from src.results import RESULTS_FILE

RESULTS_ROOT = PROJECT_ROOT / "results"
SHARED_QUALITY, LADDER_CONFIG = 75, "sgd"  # the shared copy's JPEG quality; the config the ladder trains


def folder_groups(folder: Path) -> list[ConfigRuns]:
    """A published folder's runs by config; none while it holds no run (or is not there)."""
    return collect(folder) if any(folder.glob(f"*/*/{RESULTS_FILE}")) else []


def ladder(results: Path) -> dict[int, ConfigRuns]:
    """The JPEG ladder's runs by quality: ``results/jpeg_ladder/q<Q>``, and the shared copy's own in ``results/notebook``."""
    rungs = {int(folder.name[1:]): folder for folder in results.glob("jpeg_ladder/q*") if folder.name[1:].isdigit()}
    rungs[SHARED_QUALITY] = results / "notebook"
    found = {quality: [g for g in folder_groups(folder) if g.name == LADDER_CONFIG] for quality, folder in rungs.items()}
    return {quality: groups[0] for quality, groups in found.items() if groups}


def add_findings(report: Path, results: Path) -> None:
    """Append "What we found" (:mod:`src.findings`) to the notebook's ``report``, from the runs under
    ``results``: ``notebook``, the notebook-protocol runs, the Keras reference runs and the JPEG ladder."""
    findings_text = findings.markdown(collect(results / "notebook"), folder_groups(results / "notebook_protocol"),
                                      folder_groups(results / "keras_reference"), ladder(results))
    report.write_text(report.read_text() + "\n" + findings_text)


def add_fast_comparison(report: Path, results: Path) -> None:
    """Append "Against the float32 grid" (:mod:`src.fast_grid`) to the fast grid's ``report``, from the runs
    under ``results``: ``fast`` and ``notebook``."""
    float32, fast = (results / "notebook", results / "fast")
    section = fast_grid.markdown(by_name(folder_groups(float32)), by_name(folder_groups(fast)),
                                 (activity(float32), activity(fast)))
    report.write_text(report.read_text() + "\n" + section)


def by_name(groups: list[ConfigRuns]) -> dict[str, ConfigRuns]:
    return {group.name: group for group in groups}


def precision_groups(results_dir: Path, float32_runs: Path = RESULTS_ROOT / "notebook") -> dict[str, ConfigRuns]:
    """One config trained in each precision (``results_dir/<precision>/<config>/seed_<S>``; the float32
    side defaults to the same config's runs in ``float32_runs``, the notebook grid, which trains in
    float32), by ``"<config>, <precision>"``."""
    groups, configs = {}, set()
    for precision_dir in sorted(p for p in results_dir.glob("*") if p.is_dir()):
        for group in collect(precision_dir):
            groups[f"{group.name}, {precision_dir.name}"] = group
            configs.add(group.name)
    if configs and any(float32_runs.glob(f"*/*/{RESULTS_FILE}")):
        for group in collect(float32_runs):
            if group.name in configs:
                groups.setdefault(f"{group.name}, float32", group)
    return groups


def write_precision_figures(results_dir: Path, float32_runs: Path = RESULTS_ROOT / "notebook") -> dict[str, Path]:
    """``curves.png`` and ``test_acc.png`` in ``results_dir``: every precision of :func:`precision_groups`
    drawn, side by side on one scale, and titled with the precisions they compare."""
    groups = [ConfigRuns(name, group.runs) for name, group in precision_groups(results_dir, float32_runs).items()]
    if not groups:
        return {}
    precisions = dict.fromkeys(name.rsplit(", ", 1)[1] for name in (g.name for g in groups))
    return write_figures(summarize(groups), groups, results_dir, subject=" vs ".join(precisions))
