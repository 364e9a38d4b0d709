"""``python -m src.publish SWEEP_DIR --to results/notebook``: a sweep's finished runs, into the
repository and into the README's experiments table.

Copies each complete run's small files (results.json, config.yaml, hparams.yaml, TensorBoard
events; never checkpoints) to ``--to``, writes the report there, and regenerates the README's
table between its ``experiments-table`` markers, so that every number the README shows comes
from committed files and this one command. Runs still going are left out; publish again as more
finish.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import yaml

from src.commands import command_parser
from src.errors import UserInputError
from src.report import ConfigRuns, collect, write_report
from src.results import RESULTS_FILE, read_record
from src.sweep import CONFIG_DIR, NOTEBOOK

PUBLISHED_FILES = (RESULTS_FILE, "config.yaml", "hparams.yaml", "events.out.tfevents.*")
TABLE_START, TABLE_END = "<!-- experiments-table:start -->", "<!-- experiments-table:end -->"
CONFIDENCE = 0.95


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


def within_seed_noise(values: list[float], claimed: float) -> str:
    """Whether one more run of ours could plausibly have given ``claimed``: inside the 95% prediction
    interval ``mean ± t·s·√(1 + 1/n)`` of our runs (the notebook's figure is itself one run)."""
    from scipy import stats

    if len(values) < 2:
        return "– (needs 2 seeds)"
    n = len(values)
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    half_width = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std * math.sqrt(1 + 1 / n)
    if abs(claimed - mean) <= half_width:
        return "yes"
    return f"no, {'above' if claimed > mean else 'below'} ours"


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
    for name, (claimed, claimed_text) in NOTEBOOK.items():
        group = groups.get(name)
        values = [100 * v for v in group.test_accuracies] if group else []
        epochs = group.values(lambda r: r.epochs) if group else []
        here = "not run yet"
        if values:
            std = f" ± {np.std(values, ddof=1):.1f}" if len(values) > 1 else ""
            here = f"{np.mean(values):.1f}{std} (n={len(values)})"
        cells = (
            f"`{name}`", *describe_config(name), claimed_text, here,
            f"{min(epochs):.0f}–{max(epochs):.0f}" if len(epochs) > 1 else (f"{epochs[0]:.0f}" if epochs else "–"),
            within_seed_noise(values, 100 * claimed) if values and claimed is not None else "–",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, table: str) -> None:
    """Replace the table between the README's markers."""
    text = readme.read_text()
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise UserInputError(f"{readme} has no {TABLE_START} … {TABLE_END} markers to put the table between.")
    readme.write_text(text[: start + len(TABLE_START)] + "\n" + table + text[end:])


def readme_table(readme: Path) -> str:
    """The table the README shows now, between its markers."""
    text = readme.read_text()
    return text[text.index(TABLE_START) + len(TABLE_START) : text.index(TABLE_END)].lstrip("\n")


def _short(value: float) -> str:
    """0.01, 1e-3, 1e-6: as the notebook wrote them."""
    if value >= 0.01:
        return f"{value:g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("publish", __doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, nargs="?", help="a sweep's directory; omit to only regenerate")
    parser.add_argument("--to", type=Path, default=Path("results/notebook"), help="default: results/notebook")
    parser.add_argument("--readme", type=Path, default=Path("README.md"), help="default: README.md")
    args = parser.parse_args(argv)
    try:
        if args.sweep_dir is not None:
            if not args.sweep_dir.is_dir():
                raise UserInputError(f"{args.sweep_dir} is not a directory; give the --sweep_dir of a sweep.")
            print(f"published {len(publish_runs(args.sweep_dir, args.to))} complete runs to {args.to}")
        if any(args.to.glob(f"*/*/{RESULTS_FILE}")):
            write_report(args.to)
        update_readme(args.readme, notebook_table(args.to))
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"updated the experiments table in {args.readme}")


if __name__ == "__main__":
    main()
