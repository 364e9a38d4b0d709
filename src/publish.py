"""``python -m src.publish SWEEP_DIR --to results/notebook``: a sweep's finished runs, into the
repository and into the README's experiments table.

Copies each complete run's small files (results.json, config.yaml, hparams.yaml, TensorBoard
events; never checkpoints) to ``--to``, beside the runs there, writes the report there, and
regenerates the README's table between its ``experiments-table`` markers, so that every number
the README shows comes from committed files and this one command. Runs still going are left out;
publish again as more finish.

Nothing published is lost or mixed: a directory holds runs of one protocol (data, epoch limit and
precision; per config, its hyperparameters), and a run that differs is refused before anything is
written; a published run is replaced only with ``--replace``, and one published before, file for
file the same, is left as it is.
"""

from __future__ import annotations

import filecmp
import os
import secrets
import shutil
from collections.abc import Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import yaml

from src import findings, gap
from src.commands import command_parser
from src.comparison import ConfigRuns, collect, compare, notebook_within_seed_noise, summarize
from src.errors import UserInputError, exit_on_user_error
from src.figures import write_figures
from src.keras_notebook import NOTEBOOK
from src.paths import CONFIG_DIR, PROJECT_ROOT
from src.report import write_report
from src.results import MACHINE_HPARAMS, RESULTS_FILE, RunRecord, read_record
from src.run_settings import CONFIG_FILE

PUBLISHED_FILES = (RESULTS_FILE, CONFIG_FILE, "hparams.yaml", "events.out.tfevents.*")
# Trainer settings that cut epochs, steps or batches short: the same in every run of a published directory.
EPOCH_LIMITS = ("trainer.max_steps", "trainer.max_time", "trainer.limit_train_batches", "trainer.limit_val_batches",
                "trainer.limit_test_batches")
# Beside results.json's hparams, the config.yaml settings that decide how a config's runs train, when
# they stop and which epoch they test: the same in every run of that config.
TRAINING = (
    "trainer.accumulate_grad_batches", "trainer.gradient_clip_val", "trainer.gradient_clip_algorithm",
    "early_stopping.monitor", "early_stopping.mode", "early_stopping.patience", "early_stopping.keras_patience",
    "early_stopping.min_delta", "early_stopping.lr_stages", "early_stopping.lr_factor",
    "checkpoint.monitor", "checkpoint.mode",
)
NOT_EXPERIMENT = MACHINE_HPARAMS | {"seed", "precision"}  # precision is the directory's, seeds differ by design
# The README's generated parts sit between <!-- NAME:start/end --> markers; each comes from a folder of results/.
EXPERIMENTS_TABLE, PRECISION_TABLE, GAP_CONCLUSION = "experiments-table", "precision-table", "gap-conclusion"
RESULTS_ROOT = PROJECT_ROOT / "results"


@dataclass(frozen=True)
class Protocol:
    """What a run's test accuracy depends on besides its seed, by setting: ``shared`` by every run
    in a published directory (the data, the epoch limit, the precision), ``experiment`` by the runs
    of one config (the hyperparameters, and how its runs stop and which epoch they test)."""

    shared: dict[str, Any]
    experiment: dict[str, Any]


def protocol(run_dir: Path, record: RunRecord) -> Protocol:
    """The run's :class:`Protocol`, from its ``results.json`` and ``config.yaml``; a setting neither
    records (an older run's) is left out, so it is never compared."""
    config = _read_config(run_dir)
    shared: dict[str, Any] = {}
    if record.data:
        shared["data source"] = Path(str(record.data.get("source"))).name  # the same file, wherever it sat
        shared |= {f"{split} images": record.data.get(f"{split}_images") for split in ("train", "val", "test")}
        shared["validates on the test set"] = record.data.get("validates_on_test")
    precision = record.environment.get("precision") or record.hparams.get("precision")
    if precision:
        shared["precision"] = precision
    settings = _present(config, ("trainer.max_epochs", *EPOCH_LIMITS, *TRAINING))
    if "trainer.max_epochs" in settings:
        max_epochs, stages = settings["trainer.max_epochs"], settings.get("early_stopping.lr_stages", 1)
        if isinstance(max_epochs, int) and max_epochs > 0 and isinstance(stages, int) and stages > 0:
            max_epochs /= stages  # a staged config gives each of its stages what another config gets
        shared["trainer.max_epochs per lr stage"] = max_epochs
    shared |= {key: settings[key] for key in EPOCH_LIMITS if key in settings}
    hparams = {key: value for key, value in record.hparams.items() if key != "optimizer_args"}
    hparams |= {f"optimizer_args.{key}": value for key, value in record.optimizer_args.items()}
    experiment = {f"hparams.{key}": value for key, value in hparams.items()
                  if key.rpartition(".")[2] not in NOT_EXPERIMENT}
    experiment |= {key: settings[key] for key in TRAINING if key in settings}
    return Protocol(shared, experiment)


def _read_config(run_dir: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def _present(config: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Those of the dotted ``keys`` that ``config`` sets, with their values."""
    found = {}
    for dotted in keys:
        value: Any = config
        for key in dotted.split("."):
            if not isinstance(value, dict) or key not in value:
                break
            value = value[key]
        else:
            found[dotted] = value
    return found


@dataclass
class Publication:
    """What publishing a sweep did with each of its runs, named ``config/run`` as in the sweep."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # published before, file for file the same
    unfinished: dict[str, str] = field(default_factory=dict)  # run: why it is not published (yet)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced)

    def lines(self, dest: Path) -> list[str]:
        """One line for each thing done or skipped, and why."""
        lines = []
        if self.added:
            lines.append(f"published {_count(self.added, 'new run')} to {dest}: {_names(self.added)}")
        if self.replaced:
            lines.append(f"replaced {_count(self.replaced, 'run')} in {dest}: {_names(self.replaced)}")
        if self.unchanged:
            lines.append(f"skipped {_count(self.unchanged, 'run')} published there already, identical: "
                         f"{_names(self.unchanged)}")
        if self.unfinished:
            reasons = ", ".join(f"{run} ({why})" for run, why in self.unfinished.items())
            lines.append(f"skipped {_count(self.unfinished, 'run')} not finished: {reasons}; "
                         "publish again once they have")
        return lines


def publish_runs(sweep_dir: Path, dest: Path, replace: bool = False) -> Publication:
    """Copy each complete run's small files from ``sweep_dir`` to ``dest``, beside the runs there.

    Refused with a :class:`UserInputError`, before anything is written, when a run's
    :class:`Protocol` differs from the directory's or its config's published runs', or when it
    would replace a published run that differs from it and ``replace`` is not given. A run
    published before, file for file the same, is left as it is."""
    publication, candidates = Publication(), []
    run_dirs = sorted(path for path in sweep_dir.glob("*/*") if path.is_dir())
    if not run_dirs:
        raise UserInputError(f"{sweep_dir} holds no runs (<config>/<run>/{RESULTS_FILE}); give the --sweep_dir "
                             "of a sweep.")
    for run_dir in run_dirs:
        name = run_dir.relative_to(sweep_dir).as_posix()
        record = read_record(run_dir)
        if record is None or not record.is_complete:
            publication.unfinished[name] = _why_unfinished(run_dir, record)
        elif _same_files(run_dir, dest / name):
            publication.unchanged.append(name)
        else:
            candidates.append((name, run_dir, record))
    _check_protocols(candidates, dest)
    replacing = [(name, record) for name, _, record in candidates if (dest / name).exists()]
    if replacing and not replace:
        changes = "\n".join(f"  {name}: {_change(read_record(dest / name), record)}" for name, record in replacing)
        raise UserInputError(
            f"{_count(replacing, 'run')} in {dest} would be replaced by different ones:\n{changes}\n"
            "Nothing was written. Add --replace to replace exactly these (the other published runs stay as they "
            "are), or publish this sweep elsewhere with --to.")
    for name, _, _ in candidates:
        (publication.replaced if (dest / name).exists() else publication.added).append(name)
    _copy_runs([(run_dir, dest / name) for name, run_dir, _ in candidates], dest)
    return publication


def _why_unfinished(run_dir: Path, record: RunRecord | None) -> str:
    if record is not None:
        return record.stop_reason or "no stop_reason"
    return f"unreadable {RESULTS_FILE}" if (run_dir / RESULTS_FILE).exists() else f"no {RESULTS_FILE} yet"


def _published_files(run_dir: Path) -> dict[str, Path]:
    return {file.name: file for pattern in PUBLISHED_FILES for file in run_dir.glob(pattern)}


def _same_files(source: Path, target: Path) -> bool:
    """Whether ``target`` holds the files publishing ``source`` would put there, byte for byte."""
    new, old = _published_files(source), _published_files(target)
    return new.keys() == old.keys() and all(filecmp.cmp(new[name], old[name], shallow=False) for name in new)


class _Published(NamedTuple):
    run_dir: Path
    config: str
    protocol: Protocol


def _check_protocols(candidates: list[tuple[str, Path, RunRecord]], dest: Path) -> None:
    """Refuse the runs whose :class:`Protocol` differs from the directory's or their config's: from
    the first run of their config, else the first run, among the runs published there that stay
    and those before them in the sweep."""
    staying = {target.parent.relative_to(dest).as_posix() for target in dest.glob(f"*/*/{RESULTS_FILE}")}
    staying -= {name for name, _, _ in candidates}
    accepted = [_Published(dest / name, _config(name, record), protocol(dest / name, record))
                for name in sorted(staying) if (record := read_record(dest / name)) is not None]
    refused: list[tuple[Path, Path, list[tuple[str, Any, Any]]]] = []
    for name, run_dir, record in candidates:
        run = _Published(run_dir, _config(name, record), protocol(run_dir, record))
        peer = next((other for other in accepted if other.config == run.config), None)
        reference = peer or (accepted[0] if accepted else None)
        differences = []
        if reference is not None:
            differences = _differences(run.protocol.shared, reference.protocol.shared)
        if peer is not None:
            differences += _differences(run.protocol.experiment, peer.protocol.experiment)
        if differences:
            refused.append((run_dir, reference.run_dir, differences))
        else:
            accepted.append(run)
    if refused:
        run_dir, reference, differences = refused[0]
        named = "; ".join(f"{setting} {_shown(new)} here, {_shown(old)} {f'in {reference}' if i == 0 else 'there'}"
                          for i, (setting, new, old) in enumerate(differences))
        others = f" (and {_count(refused[1:], 'more run')} like it)" if len(refused) > 1 else ""
        raise UserInputError(
            f"{run_dir}{others} cannot join the runs published in {dest}: {named}. A published directory holds "
            "runs of one protocol, so that its means and comparisons are of like with like: publish these runs "
            "to a directory of their own with --to results/<name>, or rerun them with the published settings. "
            "Nothing was written.")


def _config(name: str, record: RunRecord) -> str:
    """The config a run belongs to, as the report groups it."""
    return record.config or name.split("/")[0]


def _differences(new: dict[str, Any], published: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Each setting both record with different values: its name, the new value and the published one."""
    return [(key, new[key], published[key]) for key in new if key in published and new[key] != published[key]]


def _shown(value: Any) -> str:
    if value is None:
        return "not set"
    if isinstance(value, float):
        return f"{value:g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _change(old: RunRecord | None, new: RunRecord) -> str:
    """``test_acc 77.25% → 10.00%, epochs 49 → 1, stop_reason early_stopping → max_epochs``."""
    old = old or RunRecord()

    def accuracy(record: RunRecord) -> str:
        return "–" if record.test_acc is None else f"{100 * record.test_acc:.2f}%"

    return (f"test_acc {accuracy(old)} → {accuracy(new)}, epochs {old.epochs} → {new.epochs}, "
            f"stop_reason {old.stop_reason} → {new.stop_reason}")


def _copy_runs(runs: list[tuple[Path, Path]], dest: Path) -> None:
    """Put each source run's published files in its target folder under ``dest`` (and nothing else
    there), each run whole or not at all: copied beside ``dest``'s runs first, in a hidden folder too
    deep to be taken for one, then renamed into place."""
    work = dest / f".publishing-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        for source, target in runs:
            name = target.relative_to(dest)
            staged, old = work / "new" / name, work / "old" / name
            staged.mkdir(parents=True)
            for file in _published_files(source).values():
                shutil.copy2(file, staged / file.name)
            if target.exists():
                old.parent.mkdir(parents=True, exist_ok=True)
                target.rename(old)
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _count(items: Sized, noun: str) -> str:
    n = len(items)
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _names(runs: list[str]) -> str:
    """``sgd seed_42, seed_43; adam seed_42``: runs by config, on one line."""
    by_config: dict[str, list[str]] = {}
    for run in runs:
        config, _, seed = run.partition("/")
        by_config.setdefault(config, []).append(seed)
    return "; ".join(f"{config} {', '.join(seeds)}" for config, seeds in by_config.items())


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


def _groups(folder: Path) -> list[ConfigRuns]:
    return collect(folder) if any(folder.glob(f"*/*/{RESULTS_FILE}")) else []


SHARED_QUALITY, LADDER_CONFIG = 75, "sgd"  # the shared copy's JPEG quality; the config the ladder trains


def ladder(results: Path) -> dict[int, ConfigRuns]:
    """The JPEG ladder's runs by quality: ``results/jpeg_ladder/q<Q>``, and the shared copy's own in ``results/notebook``."""
    rungs = {int(folder.name[1:]): folder for folder in results.glob("jpeg_ladder/q*") if folder.name[1:].isdigit()}
    rungs[SHARED_QUALITY] = results / "notebook"
    found = {quality: [g for g in _groups(folder) if g.name == LADDER_CONFIG] for quality, folder in rungs.items()}
    return {quality: groups[0] for quality, groups in found.items() if groups}


def add_findings(report: Path, results: Path) -> None:
    """Append "What we found" (:mod:`src.findings`) to the notebook's ``report``, from the runs under
    ``results``: ``notebook``, the notebook-protocol runs, the Keras reference runs and the JPEG ladder."""
    findings_text = findings.markdown(collect(results / "notebook"), _groups(results / "notebook_protocol"),
                                      _groups(results / "keras_reference"), ladder(results))
    report.write_text(report.read_text() + "\n" + findings_text)


def gap_conclusion(protocol: Path, keras: Path) -> str:
    """The README's one sentence on the notebook's lead: the port's or the data's, from the Keras reference."""
    return gap.keras_conclusion({g.name: g for g in _groups(keras)}, {g.name: g for g in _groups(protocol)}) + "\n"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


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


def precision_table(results_dir: Path, float32_runs: Path = RESULTS_ROOT / "notebook") -> str:
    """The README's float32-against-bf16 table: :func:`precision_groups`, and whether their test
    accuracies differ by more than seed noise (Welch's t-test, as the report's)."""
    groups = precision_groups(results_dir, float32_runs)
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


def write_precision_figures(results_dir: Path, float32_runs: Path = RESULTS_ROOT / "notebook") -> dict[str, Path]:
    """``curves.png`` and ``test_acc.png`` in ``results_dir``: every precision of :func:`precision_groups`
    drawn, side by side on one scale, and titled with the precisions they compare."""
    groups = [ConfigRuns(name, group.runs) for name, group in precision_groups(results_dir, float32_runs).items()]
    if not groups:
        return {}
    precisions = dict.fromkeys(name.rsplit(", ", 1)[1] for name in (g.name for g in groups))
    return write_figures(summarize(groups), groups, results_dir, subject=" vs ".join(precisions))


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
    text, start, end = _table_span(readme, name)
    readme.write_text(text[:start] + "\n" + table + text[end:])


def readme_table(readme: Path, name: str = EXPERIMENTS_TABLE) -> str:
    """What the README shows now between its ``name`` markers."""
    text, start, end = _table_span(readme, name)
    return text[start:end].lstrip("\n")


def _table_span(readme: Path, name: str) -> tuple[str, int, int]:
    """The README's text, and where its table ``name`` begins and ends between the markers."""
    if not readme.is_file():
        raise UserInputError(f"{readme} is not a file; give the README to update with --readme.")
    text = readme.read_text()
    start_marker, end_marker = _markers(name)
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise UserInputError(f"{readme} has no {start_marker} … {end_marker} markers to put the table between.")
    return text, start + len(start_marker), end


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
    parser.add_argument("--replace", action="store_true",
                        help="replace published runs that the sweep ran again (without it, publish shows what "
                        "would change and writes nothing)")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        for name in (EXPERIMENTS_TABLE, PRECISION_TABLE, GAP_CONCLUSION):  # a README it cannot update is refused before any copy
            _table_span(args.readme, name)
        if args.sweep_dir is not None:
            if not args.sweep_dir.is_dir():
                raise UserInputError(f"{args.sweep_dir} is not a directory; give the --sweep_dir of a sweep.")
            publication = publish_runs(args.sweep_dir, args.to, replace=args.replace)
            print("\n".join(publication.lines(args.to)))
            if not publication.changed:
                print(f"nothing new to publish: {args.to}, its report and {args.readme} are as they were")
                return
        notebook = RESULTS_ROOT / "notebook"
        for folder in {args.to, notebook}:
            if any(folder.glob(f"*/*/{RESULTS_FILE}")):
                write_report(folder)
        if any(notebook.glob(f"*/*/{RESULTS_FILE}")):
            add_findings(notebook / "report.md", RESULTS_ROOT)
        update_readme(args.readme, notebook_table(notebook))
        update_readme(args.readme, gap_conclusion(RESULTS_ROOT / "notebook_protocol", RESULTS_ROOT / "keras_reference"),
                      GAP_CONCLUSION)
        update_readme(args.readme, precision_table(RESULTS_ROOT / "precision"), PRECISION_TABLE)
        write_precision_figures(RESULTS_ROOT / "precision")
    print(f"updated the reports and the experiments and precision tables in {args.readme}")


if __name__ == "__main__":
    main()
