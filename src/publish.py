"""``python -m src.publish SWEEP_DIR --to results/notebook``: a sweep's finished runs, into the
repository and into the README's experiments table.

Copies each complete run's small files (results.json, config.yaml, hparams.yaml, TensorBoard
events; never checkpoints) to ``--to``, writes the report there, and regenerates the README's
table between its ``experiments-table`` markers, so that every number the README shows comes
from committed files and this one command. Runs still going are left out; publish again as more
finish.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import yaml

from src import findings
from src.commands import command_parser
from src.comparison import ConfigRuns, collect, compare, notebook_within_seed_noise
from src.errors import UserInputError, exit_on_user_error
from src.keras_notebook import NOTEBOOK
from src.paths import CONFIG_DIR, PROJECT_ROOT
from src.report import write_report
from src.results import RESULTS_FILE, read_record

PUBLISHED_FILES = (RESULTS_FILE, "config.yaml", "hparams.yaml", "events.out.tfevents.*")
# The README's generated parts sit between <!-- NAME:start/end --> markers; each comes from a folder of results/.
EXPERIMENTS_TABLE, PRECISION_TABLE = "experiments-table", "precision-table"
RESULTS_ROOT = PROJECT_ROOT / "results"


def publish_runs(sweep_dir: Path, dest: Path) -> list[Path]:
    """Copy each complete run's small files from ``sweep_dir`` to ``dest``; return the copies' folders."""
    published = []
    for results in sorted(sweep_dir.glob(f"*/*/{RESULTS_FILE}")):
        record = read_record(results.parent)
        if record is None or not record.is_complete:
            continue
        target = dest / results.parent.relative_to(sweep_dir)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for pattern in PUBLISHED_FILES:
            for file in results.parent.glob(pattern):
                shutil.copy2(file, target / file.name)
        published.append(target)
    return published


def describe_config(name: str) -> tuple[str, str, str]:
    """Optimizer, lr and the other settings an experiment file sets, for the table."""
    config = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text()) or {}
    model = config.get("model", {})
    optimizer = model.get("optimizer", {"class_path": "src.optim.KerasRMSprop"})
    args = optimizer.get("init_args", {})
    lr = args.get("lr", 1e-3)
    stages = config.get("early_stopping", {}).get("lr_stages", 1)
    factor = config.get("early_stopping", {}).get("lr_factor", 0.1)
    lr_text = " → ".join(_short(lr * factor**k) for k in range(stages))
    other = []
    if model.get("decay"):
        other.append(f"decay {_short(model['decay'])}")
    if args.get("momentum"):
        other.append(("Nesterov momentum" if args.get("nesterov") else "momentum") + f" {args['momentum']:g}")
    if stages > 1:
        other.append(f"{stages} stages, each from the last one's best weights")
    short = optimizer["class_path"].rsplit(".", 1)[-1].removeprefix("Keras")
    return short, lr_text, ", ".join(other)


def notebook_table(results_dir: Path) -> str:
    """The README's experiments table: each notebook experiment, the notebook's figure and ours."""
    groups: dict[str, ConfigRuns] = {}
    if results_dir.is_dir() and any(results_dir.glob(f"*/*/{RESULTS_FILE}")):
        groups = {group.name: group for group in collect(results_dir)}
    header = ("config", "optimizer", "lr", "other", "notebook (test acc.)", "here: test acc. (mean ± std, n)",
              "epochs", "notebook within seed noise?")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, figure in NOTEBOOK.items():
        group = groups.get(name)
        values = [100 * v for v in group.test_accuracies] if group else []
        epochs = group.values(lambda r: r.epochs) if group else []
        here = "not run yet"
        if values:
            here = f"{_mean_std(values)} (n={len(values)})"
        cells = (
            f"`{name}`", *describe_config(name), figure.text, here,
            _epoch_range(epochs),
            notebook_within_seed_noise(values, figure) if values else "–",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def add_findings(report: Path, notebook: Path, protocol: Path) -> None:
    """Append "What we found" (:mod:`src.findings`) to the notebook's ``report``, from the runs
    under ``notebook`` and the notebook-protocol runs under ``protocol``."""
    protocol_groups = collect(protocol) if any(protocol.glob(f"*/*/{RESULTS_FILE}")) else []
    report.write_text(report.read_text() + "\n" + findings.markdown(collect(notebook), protocol_groups))


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def precision_table(results_dir: Path, float32_runs: Path = RESULTS_ROOT / "notebook") -> str:
    """The README's float32-against-bf16 table: one config trained in each precision
    (``results_dir/<precision>/<config>/seed_<S>``; the float32 side defaults to the same config's
    runs in ``float32_runs``, the notebook grid, which trains in float32), and whether their test
    accuracies differ by more than seed noise (Welch's t-test, as the report's)."""
    groups, configs = {}, set()
    for precision_dir in sorted(p for p in results_dir.glob("*") if p.is_dir()):
        for group in collect(precision_dir):
            groups[f"{group.name}, {precision_dir.name}"] = group
            configs.add(group.name)
    if configs and any(float32_runs.glob(f"*/*/{RESULTS_FILE}")):
        for group in collect(float32_runs):
            if group.name in configs:
                groups.setdefault(f"{group.name}, float32", group)
    if not groups:
        return "No runs published yet.\n"
    lines = ["| config, precision | runs | test acc. % (mean ± std) | best val acc. % | epochs |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, group in groups.items():
        test = [100 * v for v in group.test_accuracies]
        val = [100 * v for v in group.values(lambda r: r.best_val_acc)]
        epochs = group.values(lambda r: r.epochs)
        lines.append(f"| {name} | {len(group.finished)} | {_mean_std(test)} | {_mean_std(val)} | "
                     f"{_epoch_range(epochs)} |")
    for comparison in compare([ConfigRuns(name, group.runs) for name, group in groups.items()]):
        verdict = "differs by more than seed noise" if comparison.beyond_noise else "within seed noise"
        lines.append(f"\n{comparison.better} against {comparison.worse}: {100 * comparison.difference:+.2f} points "
                     f"of test accuracy, Welch's p = {comparison.p_value:.2f}: {verdict}.")
    return "\n".join(lines) + "\n"


def _epoch_range(epochs: list[float]) -> str:
    """``28–53`` over seeds, or one number when they all stopped at the same epoch."""
    if not epochs:
        return "–"
    low, high = min(epochs), max(epochs)
    return f"{low:.0f}" if low == high else f"{low:.0f}–{high:.0f}"


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{np.mean(values):.1f}" + (f" ± {np.std(values, ddof=1):.1f}" if len(values) > 1 else "")


def update_readme(readme: Path, table: str, name: str = EXPERIMENTS_TABLE) -> None:
    """Replace what sits between the README's ``name`` markers with ``table``."""
    if not readme.is_file():
        raise UserInputError(f"{readme} is not a file; give the README to update with --readme.")
    text = readme.read_text()
    start_marker, end_marker = _markers(name)
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise UserInputError(f"{readme} has no {start_marker} … {end_marker} markers to put the table between.")
    readme.write_text(text[: start + len(start_marker)] + "\n" + table + text[end:])


def readme_table(readme: Path, name: str = EXPERIMENTS_TABLE) -> str:
    """What the README shows now between its ``name`` markers."""
    text = readme.read_text()
    start_marker, end_marker = _markers(name)
    return text[text.index(start_marker) + len(start_marker) : text.index(end_marker)].lstrip("\n")


def _short(value: float) -> str:
    """0.01, 1e-3, 1e-6: as the notebook wrote them."""
    if value >= 0.01:
        return f"{value:g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("publish", __doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, nargs="?", help="a sweep's directory; omit to only regenerate")
    parser.add_argument("--to", type=Path, default=RESULTS_ROOT / "notebook",
                        help="where the runs go (default results/notebook; results/notebook_protocol for the "
                        "notebook's own protocol; results/precision/<precision> for the float32-against-bf16 runs)")
    parser.add_argument("--readme", type=Path, default=PROJECT_ROOT / "README.md",
                        help="default: the checkout's README.md")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        if args.sweep_dir is not None:
            if not args.sweep_dir.is_dir():
                raise UserInputError(f"{args.sweep_dir} is not a directory; give the --sweep_dir of a sweep.")
            published = len(publish_runs(args.sweep_dir, args.to))
            print(f"published {published} complete run{'' if published == 1 else 's'} to {args.to}")
        notebook = RESULTS_ROOT / "notebook"
        for folder in {args.to, notebook}:
            if any(folder.glob(f"*/*/{RESULTS_FILE}")):
                write_report(folder)
        if any(notebook.glob(f"*/*/{RESULTS_FILE}")):
            add_findings(notebook / "report.md", notebook, RESULTS_ROOT / "notebook_protocol")
        update_readme(args.readme, notebook_table(notebook))
        update_readme(args.readme, precision_table(RESULTS_ROOT / "precision"), PRECISION_TABLE)
    print(f"updated the experiments and precision tables in {args.readme}")


if __name__ == "__main__":
    main()
