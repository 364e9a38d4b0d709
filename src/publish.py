"""``python -m src.publish SWEEP_DIR --to results/notebook``: a sweep's finished runs, into the
repository and into the README's experiments table and the performance page's precision table.

Copies each complete run's small files (results.json, config.yaml, hparams.yaml, TensorBoard
events; never checkpoints) to ``--to``, beside the runs there, writes the report there, and
regenerates what is made from results/ (:mod:`src.published`, :mod:`src.doc_tables`), so that
every number the README and docs/ show comes from committed files and this one command. Runs still
going are left out; publish again as more finish. Publishing again also completes a publish cut off
(Ctrl-C, a closed pipe) between its copy and its pages.

Nothing published is lost or mixed: a directory holds runs of one protocol (:mod:`src.protocol`),
and a run that differs is refused before anything is written; a published run is replaced only
with ``--replace``, and one published before, file for file the same, is left as it is.
"""

from __future__ import annotations

import filecmp
import os
import secrets
import shutil
from collections.abc import Sized
from dataclasses import dataclass, field
from pathlib import Path

from src.commands import command_parser
from src.doc_tables import (
    EXPERIMENTS_TABLE, FAST_CONCLUSION, GAP_CONCLUSION, PERFORMANCE_PAGE, PRECISION_TABLE, README, check_markers,
    fast_grid_conclusion, gap_conclusion, notebook_table, precision_table, update_page,
)
from src.errors import UserInputError, exit_on_user_error
from src.protocol import check_protocols
from src.published import RESULTS_ROOT, add_fast_comparison, add_findings, write_precision_figures
from src.report import write_report
from src.results import RESULTS_FILE, RunRecord, read_record
from src.run_settings import CONFIG_FILE

PUBLISHED_FILES = (RESULTS_FILE, CONFIG_FILE, "hparams.yaml", "events.out.tfevents.*")


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
    :class:`~src.protocol.Protocol` differs from the directory's or its config's published runs', or when it
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
    check_protocols(candidates, dest)
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


def _generated_files(pages: tuple[Path, ...], folders: set[Path]) -> dict[Path, bytes]:
    """The pages, and the reports, tables and figures publishing makes in ``folders``, as bytes."""
    made = {path.resolve() for folder in folders for path in folder.rglob("*")
            if path.suffix in {".md", ".csv", ".png"}}
    return {path: path.read_bytes() for path in {*(page.resolve() for page in pages), *made} if path.is_file()}


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


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("publish", __doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, nargs="?", help="a sweep's directory; omit to only regenerate")
    parser.add_argument("--to", type=Path, default=RESULTS_ROOT / "notebook",
                        help="where the runs go (default results/notebook; results/notebook_protocol for the "
                        "notebook's own protocol; results/precision/<precision> for the float32-against-bf16 runs; "
                        "results/fast for the notebook grid with --fast true)")
    parser.add_argument("--readme", type=Path, default=README,
                        help="the page with the experiments table (default: the checkout's README.md)")
    parser.add_argument("--performance_page", type=Path, default=PERFORMANCE_PAGE,
                        help="the page with the precision table (default: the checkout's docs/performance.md)")
    parser.add_argument("--replace", action="store_true",
                        help="replace published runs that the sweep ran again (without it, publish shows what "
                        "would change and writes nothing)")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        # a page it cannot update is refused before any copy
        check_markers(args.readme, (EXPERIMENTS_TABLE, GAP_CONCLUSION, FAST_CONCLUSION))
        check_markers(args.performance_page, (PRECISION_TABLE,))
        nothing_new = False
        if args.sweep_dir is not None:
            if not args.sweep_dir.is_dir():
                raise UserInputError(f"{args.sweep_dir} is not a directory; give the --sweep_dir of a sweep.")
            publication = publish_runs(args.sweep_dir, args.to, replace=args.replace)
            print("\n".join(publication.lines(args.to)))
            nothing_new = not publication.changed
        # regenerated even with no new run: a publish cut off after its copy, or a change in the code that writes
        # them, leaves them out of date
        outputs = (args.readme, args.performance_page), {RESULTS_ROOT, args.to}
        before = _generated_files(*outputs) if nothing_new else {}
        notebook, fast = RESULTS_ROOT / "notebook", RESULTS_ROOT / "fast"
        for folder in {args.to.resolve(), notebook, fast}:  # --to results/fast is `fast`: one report each
            if any(folder.glob(f"*/*/{RESULTS_FILE}")):
                write_report(folder)
        if any(notebook.glob(f"*/*/{RESULTS_FILE}")):
            add_findings(notebook / "report.md", RESULTS_ROOT)
        if any(fast.glob(f"*/*/{RESULTS_FILE}")):
            add_fast_comparison(fast / "report.md", RESULTS_ROOT)
        update_page(args.readme, notebook_table(notebook))
        update_page(args.readme, gap_conclusion(RESULTS_ROOT / "notebook_protocol", RESULTS_ROOT / "keras_reference"),
                    GAP_CONCLUSION)
        update_page(args.readme, fast_grid_conclusion(fast, notebook), FAST_CONCLUSION)
        update_page(args.performance_page, precision_table(RESULTS_ROOT / "precision"), PRECISION_TABLE)
        write_precision_figures(RESULTS_ROOT / "precision")
    if nothing_new:
        stale = sorted(str(path) for path, data in _generated_files(*outputs).items() if before.get(path) != data)
        print(f"no new run; regenerated {_count(stale, 'file')} that no longer matched what is published (a publish "
              f"cut off before it wrote them, or a change in the code that writes them): {', '.join(stale)}" if stale else
              f"nothing new to publish: {args.to}, its report and {args.readme} are as they were")
        return
    print(f"updated the reports, the experiments table in {args.readme} and the precision table in "
          f"{args.performance_page}")


if __name__ == "__main__":
    main()
