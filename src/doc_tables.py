"""The generated parts of the README and the docs pages, each made from a folder of results/ and put
between its ``<!-- NAME:start/end -->`` markers in the page that shows it, so that every number they
show comes from committed files: the experiments table, the sentence on the notebook's lead and the one
on the fast grid (in README.md), the float32-against-bf16 table (in docs/performance.md).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from src import fast_grid, gap
from src.comparison import ConfigRuns, compare, mean_std, notebook_within_seed_noise
from src.errors import UserInputError
from src.keras_notebook import NOTEBOOK
from src.paths import CONFIG_DIR, PROJECT_ROOT
from src.published import RESULTS_ROOT, by_name, folder_groups, precision_groups

EXPERIMENTS_TABLE, PRECISION_TABLE, GAP_CONCLUSION = "experiments-table", "precision-table", "gap-conclusion"
FAST_CONCLUSION = "fast-grid-conclusion"
README, PERFORMANCE_PAGE = PROJECT_ROOT / "README.md", PROJECT_ROOT / "docs" / "performance.md"


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
    groups = by_name(folder_groups(results_dir))
    header = ("config", "optimizer", "lr", "other", "notebook (test acc.)", "here: test acc. (mean ± std, n)",
              "epochs", "notebook within seed noise?")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, figure in NOTEBOOK.items():
        group = groups.get(name)
        values = [100 * v for v in group.test_accuracies] if group else []
        epochs = group.values(lambda r: r.epochs) if group else []
        here = "not run yet"
        if values:
            here = mean_std(values, count=True)
        cells = (
            f"`{name}`", *describe_config(name), figure.text, here,
            _epoch_range(epochs),
            notebook_within_seed_noise(values, figure) if values else "–",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def gap_conclusion(protocol: Path, keras: Path) -> str:
    """The README's one sentence on the notebook's lead: the port's or the data's, from the Keras reference."""
    return gap.keras_conclusion(by_name(folder_groups(keras)), by_name(folder_groups(protocol))) + "\n"


def fast_grid_conclusion(fast: Path, float32: Path) -> str:
    """The README's one sentence on the fast grid: what ``--fast true`` saves and whether its answers changed."""
    return fast_grid.conclusion(by_name(folder_groups(float32)), by_name(folder_groups(fast))) + "\n"


def precision_table(results_dir: Path, float32_runs: Path = RESULTS_ROOT / "notebook") -> str:
    """The performance page's float32-against-bf16 table: :func:`src.published.precision_groups`, and
    whether their test accuracies differ by more than seed noise (Welch's t-test, as the report's)."""
    groups = precision_groups(results_dir, float32_runs)
    if not groups:
        return "No runs published yet.\n"
    lines = ["| config, precision | runs | test acc. % (mean ± std) | best val acc. % | epochs |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, group in groups.items():
        test = [100 * v for v in group.test_accuracies]
        val = [100 * v for v in group.values(lambda r: r.best_val_acc)]
        epochs = group.values(lambda r: r.epochs)
        lines.append(f"| {name} | {len(group.finished)} | {mean_std(test)} | {mean_std(val)} | "
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


def _short(value: float) -> str:
    """0.01, 1e-3, 1e-6: as the notebook wrote them."""
    if value >= 0.01:
        return f"{value:g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def update_page(page: Path, table: str, name: str = EXPERIMENTS_TABLE) -> None:
    """Replace what sits between the page's ``name`` markers with ``table``."""
    text, start, end = _table_span(page, name)
    page.write_text(text[:start] + "\n" + table + text[end:])


def page_table(page: Path, name: str = EXPERIMENTS_TABLE) -> str:
    """What the page shows now between its ``name`` markers."""
    text, start, end = _table_span(page, name)
    return text[start:end].lstrip("\n")


def check_markers(page: Path, names: tuple[str, ...]) -> None:
    """Refuse a page that :func:`update_page` could not update for each of ``names``."""
    for name in names:
        _table_span(page, name)


def _table_span(page: Path, name: str) -> tuple[str, int, int]:
    """The page's text, and where its table ``name`` begins and ends between the markers."""
    if not page.is_file():
        raise UserInputError(f"{page} is not a file; give the page that shows the {name}, a checkout's "
                             f"README.md or docs/performance.md.")
    text = page.read_text()
    start_marker, end_marker = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise UserInputError(f"{page} has no {start_marker} … {end_marker} markers to put the table between.")
    return text, start + len(start_marker), end
