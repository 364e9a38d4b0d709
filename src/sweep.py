"""``python -m src.sweep``: experiment configs × seeds, every run in its own subprocess.

A sweep is a directory, ``SWEEP_DIR/<config>/seed_<S>/``, one ``python -m src.cli fit`` run
each, so a crash or a divergence ends that run only. Starting the same sweep again skips the
runs that finished, resumes those that were cut off (from ``checkpoints/last.ckpt``) and
retries those that failed; ``sweep.json`` keeps how every run went. The same sweep started
again while it runs (on another machine that shares the directory, say) takes the runs that no
sweep has taken yet, so the two split the work. Ctrl-C or SIGTERM stops
the running runs at their next safe point and starts no more, so the same command goes on from
there. Any argument this command does not know (``--trainer.max_epochs 5``, ``--data.…``) goes
to every run.

By default the runs share out the machine (:func:`src.packing.plan_packing`): on CPUs one run
per core with one thread each, on GPUs several runs per GPU, as cores and memory allow.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from src.commands import command_parser, parse_passing_on
from src.errors import CannotWrite, UserInputError, exit_on_user_error
from src.keras_notebook import NOTEBOOK
from src.packing import GPU_GIB_PER_RUN, count_or_auto, machine_plan, run_environments, trains_on_cpu
from src.paths import BASE_CONFIG, CONFIG_DIR
from src.results import RunRecord, read_record, write_atomic
from src.run_dir import exclusive_lock, lock_if_free
from src.signals import StoppedBySignal, StopOnSignal

SWEEP_FILE = "sweep.json"
SWEEP_LOCK_FILE = ".sweep.lock"
TAKEN_FILE = ".taken"  # in a run's directory: locked by the sweep that runs it, while it does
LOG_FILE = "train.log"
SET_BY_SWEEP = ("--seed_everything", "--run_name", "--trainer.logger", "--ckpt_path")

Progress = Callable[[str], None]

def print_line(line: str) -> None:
    """Progress to the terminal, flushed so that it shows at once even through a pipe."""
    print(line, flush=True)


def available_configs() -> list[str]:
    """Names of the experiment configs in ``configs/``, base excluded."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p != BASE_CONFIG)


def resolve_config(name: str) -> Path:
    """A config name from ``configs/`` (``base`` included) or a path to a YAML file."""
    for candidate in (CONFIG_DIR / f"{name}.yaml", Path(name)):
        if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
            return candidate.resolve()
    raise UserInputError(
        f"Unknown config {name!r}: it is neither a file nor a name in {CONFIG_DIR}. "
        f"Available: {', '.join(available_configs())} (or give the path of a YAML file)."
    )


def check_run_args(config: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """Parse and check a run's arguments in-process, as ``src.cli`` will, so that a typo in an
    override or a setting that cannot work stops the sweep with one message before any run starts.
    Returns the run's resolved config, which says where it will train."""
    for flag in overrides:
        if flag.split("=", 1)[0].startswith(SET_BY_SWEEP):
            raise UserInputError(
                f"{flag} is set by the sweep for each run (config, seed, run directory, checkpoint); "
                "choose configs with --configs, seeds with --seeds/--first_seed and the directory with --sweep_dir."
            )
    from src.cli import main as cli_main  # here, not above: Lightning takes seconds to import
    from src.preflight import check_resolved_run

    printed, errors = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        warnings.simplefilter("ignore")  # Lightning's warning about args given beside sys.argv
        try:
            cli_main(["fit", f"--config={config}", *overrides, "--print_config"])
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                message = " ".join(errors.getvalue().partition("error:")[2].split()) or errors.getvalue()
                raise UserInputError(
                    f"The arguments for the {config.stem} runs are not valid: {message} "
                    "(see python -m src.cli fit --help)."
                ) from None
    resolved = yaml.safe_load(printed.getvalue())
    if resolved.get("test_after_fit") is False:
        raise UserInputError(
            f"The {config.stem} runs would not be tested (test_after_fit false), but a run of a sweep or a study "
            "counts as finished only once tested: its report compares test accuracies. Drop --test_after_fit "
            "false (or test_after_fit: false in the config)."
        )
    try:  # --print_config exits before the run's own checks of settings that cannot work
        check_resolved_run("fit", resolved)
    except UserInputError as err:
        raise UserInputError(f"The {config.stem} runs cannot work: {err}") from None
    return resolved


class _EachMessageOnce(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        first = message not in self.seen
        self.seen.add(message)
        return first


def check_runs_args(runs: Iterable[tuple[Path, Sequence[str]]]) -> list[dict[str, Any]]:
    """:func:`check_run_args` for each (config, overrides) of a sweep or study; a warning that holds
    for several (``--trainer.devices`` beyond the cores, say) is printed once, not once per config."""
    once = _EachMessageOnce()
    checks = logging.getLogger("src.preflight")
    checks.addFilter(once)
    try:
        return [check_run_args(config, overrides) for config, overrides in runs]
    finally:
        checks.removeFilter(once)


@dataclass
class Run:
    """One ``src.cli fit`` run at ``root/name/seed_<seed>``."""

    config: Path
    seed: int
    root: Path
    name: str
    overrides: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.root / self.name / f"seed_{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.name} seed {self.seed}"

    def resume_from(self) -> Path | None:
        last = self.run_dir / "checkpoints" / "last.ckpt"
        return last if last.is_file() else None

    def command(self) -> list[str]:
        resume = self.resume_from()
        return [
            sys.executable, "-m", "src.cli", "fit", f"--config={self.config}",
            "--trainer.enable_progress_bar=false",  # train.log is a file: no progress bar redraws
            *self.overrides,
            f"--seed_everything={self.seed}",
            f"--run_name={self.name}",
            f"--trainer.logger.init_args.save_dir={self.root}",
            f"--trainer.logger.init_args.version=seed_{self.seed}",
            *([f"--ckpt_path={resume}"] if resume else []),
        ]

    def _watch_epochs(self, process: subprocess.Popen, on_epoch: Progress) -> None:
        """Report each epoch as results.json gains it, polling every few seconds."""
        seen = len((read_record(self.run_dir) or RunRecord()).history)
        while process.poll() is None:
            time.sleep(2)
            history = (read_record(self.run_dir) or RunRecord()).history
            for epoch in history[seen:]:
                on_epoch(f"{self.label}: epoch {epoch['epoch']}, val_acc {epoch.get('val_acc', float('nan')):.4f}")
            seen = max(seen, len(history))

    def execute(
        self,
        env: dict[str, str] | None = None,
        on_epoch: Progress | None = None,
        on_start: Callable[[subprocess.Popen], None] | None = None,
    ) -> dict:
        """Run it (output to ``train.log``; ``on_start`` gets the process) and say how it went:
        status ``finished``, ``diverged``, ``interrupted`` (stopped at a safe point by a signal) or
        ``failed``, with the exit code and the run's results."""
        started = time.time()
        command = self.command()
        log_path = self.run_dir / LOG_FILE
        try:  # the folder and the first line of the run's log: where a full disk or a read-only folder shows
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a") as log:
                log.write(f"\n$ {' '.join(command)}\n")
        except OSError as err:
            raise CannotWrite(err.filename or log_path, err) from err
        with open(log_path, "a") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            if on_start:
                on_start(process)
            if on_epoch:
                self._watch_epochs(process, on_epoch)
            process.wait()
        record = read_record(self.run_dir)
        if process.returncode == 0 and record and record.is_complete:
            status = "diverged" if record.stop_reason == "diverged" else "finished"
        elif record and record.stop_reason == "interrupted":
            status = "interrupted"
        else:
            status = "failed"
        return self.outcome(status, record, returncode=process.returncode, seconds=round(time.time() - started, 1),
                            log=str(self.run_dir / LOG_FILE))

    def outcome(self, status: str, record: RunRecord | None, **details: object) -> dict:
        """What ``sweep.json`` keeps of a run."""
        record = record or RunRecord()
        return {
            "config": self.name, "seed": self.seed, "run_dir": str(self.run_dir), "status": status,
            "stop_reason": record.stop_reason, "failure": record.failure, "test_acc": record.test_acc, **details,
        }


def describe(outcome: dict) -> str:
    """One line on how a run ended."""
    if outcome["status"] == "failed":
        why = f": {outcome['failure']}" if outcome.get("failure") else ""
        return f"FAILED (exit {outcome['returncode']}, stop_reason {outcome['stop_reason']}{why}); see {outcome['log']}"
    if outcome["status"] == "interrupted":
        return f"interrupted at a safe point (exit {outcome['returncode']}); last.ckpt resumes it"
    test_acc = "-" if outcome["test_acc"] is None else f"{outcome['test_acc']:.4f}"
    return f"{outcome['stop_reason']}, test_acc {test_acc} ({outcome['seconds']:.0f} s)"


def read_sweep_record(sweep_dir: Path) -> dict[str, Any]:
    """``sweep.json`` (empty before a first sweep), its ``runs`` a mapping of run outcomes;
    ``ValueError`` says why a damaged one cannot be read."""
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        return {"runs": {}}
    try:
        record = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    runs = record.setdefault("runs", {}) if isinstance(record, dict) else None
    if not (isinstance(runs, dict) and all(isinstance(outcome, dict) for outcome in runs.values())):
        raise ValueError(f"{path} does not hold a sweep record (a JSON object whose runs map names to outcomes)")
    return record


class SweepRecord:
    """``sweep.json``: how every run of the sweep went, kept across restarts. Sweeps may share a
    directory at once (one per config, say), so each change is read, merged and written under a
    lock: none loses what another recorded. Its settings are those of the sweep started last."""

    def __init__(self, sweep_dir: Path, settings: dict) -> None:
        self.path = sweep_dir / SWEEP_FILE
        self._lock = threading.Lock()
        try:
            self._change(lambda record: record.update(settings))
        except ValueError as err:
            raise UserInputError(
                f"{err}. Move it aside or delete it, then start the sweep again: the run directories keep every "
                "result, and the sweep records their outcomes afresh."
            ) from err

    def update(self, run: Run, outcome: dict) -> None:
        self._change(lambda record: record["runs"].update({f"{run.name}/seed_{run.seed}": outcome}))

    def _change(self, change: Callable[[dict], None]) -> None:
        with self._lock, exclusive_lock(self.path.with_name(SWEEP_LOCK_FILE)):
            record = read_sweep_record(self.path.parent)
            change(record)
            write_atomic(self.path, json.dumps(record, indent=2) + "\n")


def sweep(
    configs: Iterable[str] | None = None,
    seeds: int = 3,
    first_seed: int = 42,
    sweep_dir: str | Path = "runs/sweep",
    overrides: Sequence[str] = (),
    parallel: int | str = "auto",
    progress: Progress = print_line,
    epoch_progress: bool = False,
    runs_per_device: int | str = "auto",
) -> list[dict]:
    """Run ``configs`` (default: every notebook experiment) × ``seeds`` seeds under ``sweep_dir``,
    ``parallel`` at once (``auto``: as :func:`src.packing.plan_packing` shares out the machine).

    Returns one outcome per run (``status``: ``complete`` for runs skipped as already done,
    ``finished``, ``diverged`` or ``failed``; ``elsewhere`` for a run that another sweep was
    running, which that sweep reports). ``progress`` gets one line per run start and
    end (and per epoch with ``epoch_progress``); the runs' own output goes to their ``train.log``.
    Ctrl-C or SIGTERM raises :class:`StoppedBySignal` once the runs it had started have stopped
    (status ``interrupted``; those it did not start: ``not started``).
    """
    if seeds < 1:
        raise UserInputError(f"--seeds must be at least 1, got {seeds}.")
    parallel = count_or_auto(parallel, "--parallel")
    runs_per_device = count_or_auto(runs_per_device, "--runs_per_device")
    if parallel != "auto" and runs_per_device != "auto":
        raise UserInputError(
            f"--runs_per_device {runs_per_device} packs runs onto GPUs for --parallel auto, but --parallel is "
            f"{parallel}: give one of them (--parallel K runs K at once, shared round robin over the GPUs)."
        )
    paths = [resolve_config(name) for name in (configs or NOTEBOOK)]
    overrides = list(overrides)
    resolved = check_runs_args((path, overrides) for path in paths)
    root = Path(sweep_dir).resolve()
    seed_list = range(first_seed, first_seed + seeds)
    # seed by seed: a sweep cut short has every config at least once before any has three
    runs = [Run(path, seed, root, path.stem, overrides) for seed in seed_list for path in paths]

    outcomes = {}
    for run in runs:
        done = read_record(run.run_dir)
        if done and done.is_complete:
            outcomes[run.label] = run.outcome("complete", done)
    todo = [run for run in runs if run.label not in outcomes]
    plan = machine_plan(len(todo), parallel, runs_per_device, trains_on_cpu(resolved))
    progress(f"sweep {root}: {len(runs)} run{'' if len(runs) == 1 else 's'}, {len(outcomes)} already complete, "
             f"{len(todo)} to run, {plan.describe()}")
    record = SweepRecord(root, {"configs": [str(p) for p in paths], "seeds": list(seed_list), "overrides": overrides,
                                "plan": {**asdict(plan), "summary": plan.describe()}})
    environments = run_environments(plan)
    stop = StopOnSignal()
    unwritable: list[CannotWrite] = []  # a file the sweep could not write: it starts no more runs

    def start(index: int, run: Run) -> dict:
        try:
            return start_run(index, run)
        except CannotWrite as err:
            unwritable.append(err)
            return run.outcome("not started", read_record(run.run_dir))

    def start_run(index: int, run: Run) -> dict:
        env = environments.get()
        try:
            if stop.signum is not None or unwritable:
                return run.outcome("not started", read_record(run.run_dir))
            with lock_if_free(run.run_dir / TAKEN_FILE) as taken:
                done = read_record(run.run_dir)
                if not taken or (done and done.is_complete):
                    progress(f"[{index}/{len(todo)}] skip  {run.label}: another sweep "
                             + ("is running it" if not taken else "has finished it"))
                    return run.outcome("complete" if taken else "elsewhere", done)
                resume = run.resume_from()
                progress(f"[{index}/{len(todo)}] start {run.label}" + (f" (resuming from {resume})" if resume else ""))
                outcome = run.execute(env, on_epoch=progress if epoch_progress else None, on_start=stop.adopt)
        finally:
            environments.put(env)
        record.update(run, outcome)
        progress(f"[{index}/{len(todo)}] end   {run.label}: {describe(outcome)}")
        return outcome

    with stop, ThreadPoolExecutor(max_workers=plan.runs) as pool:
        for run, outcome in zip(todo, pool.map(start, range(1, len(todo) + 1), todo)):
            outcomes[run.label] = outcome
    if stop.signum is not None:
        statuses = [o["status"] for o in outcomes.values()]
        stopped = statuses.count("interrupted")
        progress(f"sweep stopped by {signal.Signals(stop.signum).name}: {stopped} run{'' if stopped == 1 else 's'} "
                 f"stopped at a safe point, {statuses.count('not started')} not started; the same command goes on "
                 "from there")
        raise StoppedBySignal(stop.signum)
    if unwritable:
        raise CannotWrite(unwritable[0].path, unwritable[0].error, "then start the same sweep again: it skips "
                          "the finished runs and resumes the others")
    statuses = [o["status"] for o in outcomes.values()]
    failed, elsewhere = statuses.count("failed"), statuses.count("elsewhere")
    progress(f"sweep done: {len(runs) - failed - elsewhere} of {len(runs)} runs complete"
             + (f", {failed} failed" if failed else "")
             + (f", {elsewhere} left to another sweep" if elsewhere else ""))
    return [outcomes[run.label] for run in runs]


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "sweep",
        "Run experiment configs x seeds, one subprocess per run, under one sweep directory. "
        "Arguments it does not know (--trainer.max_epochs 5, --data.*) are passed to every run.",
    )
    parser.add_argument("--configs", nargs="+", metavar="CONFIG",
                        help=f"config names or YAML paths (default: the notebook's experiments, {', '.join(NOTEBOOK)})")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per config (default 3)")
    parser.add_argument("--first_seed", type=int, default=42,
                        help="the seeds are first_seed, first_seed+1, … (default 42, base.yaml's)")
    parser.add_argument("--sweep_dir", default="runs/sweep", help="where the runs go (default runs/sweep)")
    parser.add_argument("--parallel", default="auto", metavar="K|auto",
                        help="runs at once, sharing the cores (OMP_NUM_THREADS) and GPUs (round robin) out among "
                        "them (default auto: on CPUs one per core, one thread each; on GPUs see --runs_per_device)")
    parser.add_argument("--runs_per_device", default="auto", metavar="N|auto",
                        help="with --parallel auto on GPUs: runs sharing each GPU (default auto: as many as the "
                        f"CPU cores and GPU memory allow, one core and {GPU_GIB_PER_RUN:g} GiB each)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_passing_on(build_parser(), argv)
    try:
        with exit_on_user_error():
            outcomes = sweep(args.configs, args.seeds, args.first_seed, args.sweep_dir, overrides, args.parallel,
                             runs_per_device=args.runs_per_device)
    except StoppedBySignal as stopped:
        raise SystemExit(stopped.exit_code) from None
    if any(o["status"] == "failed" for o in outcomes):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
