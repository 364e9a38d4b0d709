"""``python -m src.search SPACE.yaml``: an Optuna study when a grid is not enough.

The space file (:mod:`src.search_space`) names the config the trials start from, the
MedianPruner's settings and the space, keyed by command-line flag (see
``configs/search/optimizers.yaml``).

Each trial is one ``src.cli fit`` subprocess at ``STUDY_DIR/trial_<N>/seed_<S>`` (the layout
``src.report`` reads). It maximises the best ``val_acc``; the trial's own process reports
``val_acc`` after every epoch and stops when the pruner says it is hopeless. The study lives in
SQLite inside STUDY_DIR unless ``--storage`` names a database URL that workers on several
machines can share (or ``env:NAME``, an environment variable that holds it: see :mod:`src.storage`).

Ctrl-C or SIGTERM stops the study at a safe point; the next search resumes the trials it cut off.
A worker killed outright stops beating (``--heartbeat``): another worker fails its trial and
runs it again.

With ``--launcher slurm`` the trials go to a SLURM cluster as one job array, one task per trial:
each task is a one-trial search of the same study (:mod:`src.slurm_task`), which asks the study
for its trial when it starts, so the sampler sees every trial that ended before.
"""

from __future__ import annotations

import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from src.commands import command_parser, parse_passing_on
from src.compat import trial_heartbeat
from src.errors import UserInputError, exit_on_user_error
from src.packing import count_or_auto, trains_on_cpu
from src.results import RunRecord, read_record
from src.run_args import check_runs_args
from src.run_pool import LocalLauncher, RunPool, Start
from src.run_process import Progress, Run, describe, print_line
from src.search_space import SearchSpace, examples, load_space, suggest
from src.signals import StoppedBySignal, StopOnSignal
from src.slurm import POLL_S, Cancel, queue_states
from src.slurm_array import SLURM_DIR, SlurmOptions, add_arguments, options_from, submit_array
from src.storage import ENV_PREFIX, MAX_RETRY, STORAGE_VARIABLE, masked, open_storage, storage_url

RESUMES = "resumes"  # a trial's user attribute: the name of its run, which a copy of it (enqueued, retried) continues
HEARTBEAT = 60  # seconds between a running trial's signs of life (--heartbeat)
ENDED = ("finished", "diverged")  # Run.execute's statuses of a run that has its results


def open_study(
    study_name: str, storage: str, pruner: dict[str, int], sampler_seed: int | None = None,
    heartbeat: int | None = None,
) -> optuna.Study:
    """Create the study, or load it to add trials, with ``heartbeat`` as :func:`src.storage.open_storage`
    takes it; a database that cannot be reached is the user's to fix, so it is reported before any
    training starts."""
    try:
        return optuna.create_study(
            study_name=study_name, storage=open_storage(storage, heartbeat), load_if_exists=True, direction="maximize",
            pruner=optuna.pruners.MedianPruner(**pruner), sampler=optuna.samplers.TPESampler(seed=sampler_seed),
        )
    except (SQLAlchemyError, ImportError, ValueError) as err:
        reason = str(err.orig if isinstance(err, DBAPIError) else err)  # the driver's words, without SQLAlchemy's link
        reason = " ".join(reason.replace(storage, masked(storage)).split())  # one paragraph
        fix = ('Install its driver (for PostgreSQL: pip install -e ".[postgres]").' if isinstance(err, ImportError) else
               "Give a reachable database URL (sqlite:///path/study.db, postgresql://user:password@host/db, …).")
        raise UserInputError(
            f"Cannot open study {study_name!r} at {masked(storage)}: {reason.rstrip('.')}. {fix}"
        ) from None  # the chained error would show the URL, password included


def search(
    space_file: str | Path,
    n_trials: int = 20,
    study_dir: str | Path | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int = 42,
    parallel: int | str = 1,
    overrides: Sequence[str] = (),
    sampler_seed: int | None = None,
    progress: Progress = print_line,
    heartbeat: int = HEARTBEAT,
    slurm: SlurmOptions | None = None,
    wait: bool = True,
) -> tuple[optuna.Study, Path]:
    """Run ``n_trials`` more trials of the study declared in ``space_file``; return the study
    and its directory. ``progress`` gets one line per trial start and end.

    With ``slurm``, the trials are submitted as a job array instead (:func:`_submit_trials`); with
    ``wait``, the search follows the array until it has left the queue, one line per trial that ends.

    Each running trial beats every ``heartbeat`` seconds (0: never); before asking for a trial, the
    search fails those that have not for twice as long (their worker died) and the storage's
    callback enqueues each again, resuming its run (see :func:`src.storage.open_storage`).

    The search drives Optuna's ask-and-tell interface itself, so that Ctrl-C or SIGTERM can stop
    it between trials: the running trials stop at a safe point and are failed in the study, each
    with a copy enqueued that resumes its run first thing next time; then :class:`StoppedBySignal`.
    """
    if n_trials < 0:  # 0 adds none: the study as it stands
        raise UserInputError(f"--n_trials must be at least 0, got {n_trials}.")
    if heartbeat < 0:
        raise UserInputError(f"--heartbeat takes the seconds between a trial's signs of life, or 0 for none; "
                             f"got {heartbeat}.")
    parallel = count_or_auto(parallel, "--parallel")
    declared = load_space(space_file)
    study_name = study_name or Path(space_file).stem
    study_dir = Path(study_dir or Path("runs") / "search" / study_name).resolve()
    overrides = list(overrides)
    storage = storage_url(storage) if storage is not None else None
    resolved = check_runs_args((declared.config, [*overrides, *flags]) for flags in examples(declared.space))
    if storage is None:
        study_dir.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{study_dir / 'study.db'}"
    if slurm and storage.startswith("sqlite") and slurm.throttle != 1:
        raise UserInputError(
            f"--launcher slurm with --parallel {parallel} runs trials at once on several nodes, which SQLite on a "
            "shared file system cannot serve. Give a database server they all reach (--storage env:NAME, the URL "
            "postgresql://user:password@host/db in NAME), or --parallel 1."
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our one line per trial replaces Optuna's
    study = open_study(study_name, storage, declared.pruner, sampler_seed, heartbeat)
    if slurm:
        worker = [sys.executable, "-m", "src.search", str(Path(space_file).resolve()), "--n_trials=1",
                  f"--study_name={study_name}", f"--study_dir={study_dir}", f"--storage={ENV_PREFIX}{STORAGE_VARIABLE}",
                  f"--seed={seed}", "--parallel=1", f"--heartbeat={heartbeat}", *overrides]
        _submit_trials(study, worker, n_trials, study_dir, storage, slurm, sampler_seed, progress, wait)
        progress(_study_line(study))
        return study, study_dir
    trials = _Trials(study, declared, study_dir, seed, overrides, progress)
    pool = RunPool(LocalLauncher(parallel), n_trials, trains_on_cpu(resolved), env={STORAGE_VARIABLE: storage})
    pool.map(_asked(study, n_trials), trials.run)
    pool.raise_if_stopped(progress, "search", f"{len(trials.interrupted)} trials stopped at a safe point; the next "
                          "search of this study resumes them before it starts new ones")
    progress(_study_line(study))
    return study, study_dir


def _study_line(study: optuna.Study) -> str:
    """The search's last line: the study's trials by state, and its best."""
    states = [t.state.name.lower() for t in study.trials]
    summary = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
    best = study.best_trial if any(s == "complete" for s in states) else None
    return (f"study {study.study_name}: {len(states)} trials ({summary})" +
            (f"; best: trial {best.number}, val_acc {best.value:.4f}, {best.params}" if best else ""))


def _submit_trials(study: optuna.Study, worker: list[str], count: int, study_dir: Path, storage: str,
                   options: SlurmOptions, sampler_seed: int | None, progress: Progress, wait: bool) -> None:
    """``count`` trials as one job array of one-trial workers (``worker``), each reaching the study's
    database through the environment, so that its password is written nowhere. Each task's own
    sampler seed is ``sampler_seed`` plus its index: the same seed would sample the same first trial
    in every task. With ``wait``, one line per trial that ends, until no task is left in the queue;
    Ctrl-C or SIGTERM then cancels the array, as a stop of a sweep's array does: the running trials
    stop at a safe point (their workers fail and enqueue them, to resume), the others never start."""
    if count == 0:
        return
    out = study_dir / SLURM_DIR
    tasks = [{"command": [*worker, *([f"--sampler_seed={sampler_seed + index}"] if sampler_seed is not None else [])],
              "log": str(out / f"trial-task-{index}.log")} for index in range(count)]
    job = submit_array(out, f"search:{study.study_name}", tasks, options, {STORAGE_VARIABLE: storage})
    progress(f"submitted SLURM job array {job} ({count} one-trial task{'' if count == 1 else 's'}, script in {out}); "
             f"watch it with: squeue -j {job}; python -m src.report {study_dir}")
    seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    tasks_ids = [f"{job}_{index}" for index in range(count)]
    stop = StopOnSignal()
    with stop:
        stop.adopt(Cancel(job))
        while wait:
            queue = queue_states(tasks_ids)
            for trial in study.get_trials(deepcopy=False):
                if trial.state.is_finished() and trial.number not in seen:
                    seen.add(trial.number)
                    value = "" if trial.value is None else f", val_acc {trial.value:.4f}"
                    progress(f"trial {trial.number} {trial.state.name.lower()}{value}: {trial.params}")
            if queue == {}:
                break
            time.sleep(POLL_S)
    if stop.signum is not None:
        progress(f"search stopped by {signal.Signals(stop.signum).name}: SLURM job array {job} cancelled, its running "
                 "trials stopped at a safe point; the next search of this study resumes them before it starts new ones")
        raise StoppedBySignal(stop.signum)


def _asked(study: optuna.Study, count: int) -> Iterator[optuna.Trial]:
    """``count`` trials asked one by one as slots free up (the pool takes them one at a time), so that the
    sampler sees every trial asked before; first, as Study.optimize does, the trials of dead workers are failed."""
    for _ in range(count):
        with warnings.catch_warnings():  # Optuna warns that ask() alone does not fail stale trials: this does
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
            optuna.storages.fail_stale_trials(study)
            yield study.ask()


@dataclass
class _Trials:
    """A study's trials as runs under ``study_dir``: each one's flags and run, and what its outcome
    tells the study; ``interrupted`` lists those a signal stopped, enqueued again to resume first."""

    study: optuna.Study
    declared: SearchSpace
    study_dir: Path
    seed: int
    overrides: list[str]
    progress: Progress
    interrupted: list[int] = field(default_factory=list)

    def run(self, trial: optuna.Trial, start: Start) -> None:
        """Run ``trial`` in its slot (``start``), resuming the run of the trial it repeats, if any."""
        flags = suggest(trial, self.declared.space)
        name = trial.user_attrs.get(RESUMES, f"trial_{trial.number:03d}")
        trial.set_user_attr(RESUMES, name)  # for a copy the heartbeat's callback makes should this worker die
        trial_id = _storage_id(trial)
        run = Run(self.declared.config, self.seed, self.study_dir, name,
                  [*self.overrides, *flags, *self._pruning(trial_id)])
        trial.set_user_attr("run_dir", str(run.run_dir))
        resume = run.resume_from()
        if resume:
            for epoch in (read_record(run.run_dir) or RunRecord()).history:  # what it ran before, as if this trial had
                if "val_acc" in epoch:
                    trial.report(epoch["val_acc"], step=epoch["epoch"])
        self.progress(f"trial {trial.number} start: {' '.join(flags)}"
                      + (f" (resuming from {resume})" if resume else ""))
        with trial_heartbeat(trial_id, trial.storage):
            outcome = start(run)
        self._tell(trial, run, outcome)

    def _pruning(self, trial_id: int) -> list[str]:
        return [
            # the storage's URL goes in the trial's environment, never in its config.yaml or train.log
            "--trainer.callbacks+=src.callbacks.optuna_pruning.OptunaPruning",
            f"--trainer.callbacks.storage={ENV_PREFIX}{STORAGE_VARIABLE}",
            f"--trainer.callbacks.study_name={self.study.study_name}",
            f"--trainer.callbacks.trial_id={trial_id}",
            *[f"--trainer.callbacks.{key}={value}" for key, value in self.declared.pruner.items()],
        ]

    def _tell(self, trial: optuna.Trial, run: Run, outcome: dict) -> None:
        trial.set_user_attr("returncode", outcome["returncode"])  # the run's own exit status, as sweep.json keeps it
        pruned_at = _latest(self.study, trial).user_attrs.get("pruned_at_epoch")
        # a run that failed, was interrupted or diverged before its first validation has no value
        value = (read_record(run.run_dir) or RunRecord()).best_val_acc if outcome["status"] in ENDED else None
        if pruned_at is not None:
            _mark_pruned(run.run_dir, pruned_at)
            self.study.tell(trial, state=TrialState.PRUNED)
            self.progress(f"trial {trial.number} pruned after epoch {pruned_at}")
        elif value is None:
            self.study.tell(trial, state=TrialState.FAIL)
            if outcome["status"] == "interrupted":
                self.study.enqueue_trial(trial.params, user_attrs={RESUMES: run.name})
                self.interrupted.append(trial.number)
            self.progress(f"trial {trial.number} {describe(outcome)}")
        else:
            self.study.tell(trial, value)
            self.progress(f"trial {trial.number} end: best val_acc {value:.4f}, {describe(outcome)}")


def _storage_id(trial: optuna.Trial) -> int:
    """The storage's id of ``trial``: what optuna.trial.Trial needs to reach it from another process,
    and what the storage keeps its heartbeat under."""
    storage = trial.storage
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(trial.study.study_name),
                                                           trial.number)


def _latest(study: optuna.Study, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    """The trial as the storage has it now, with what the run's own process wrote."""
    return next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)


def _mark_pruned(run_dir: Path, epoch: int) -> None:
    """Say in the run's results.json why it stopped, for the report."""
    record = read_record(run_dir)
    if record:
        record.stop_reason, record.pruned_at_epoch = "pruned", epoch
        record.write(run_dir)


def main(argv: list[str] | None = None) -> None:
    parser = command_parser(
        "search",
        "Run an Optuna study over the space a YAML file declares. "
        "Arguments it does not know (--trainer.max_epochs 10, --data.*) are passed to every trial.",
    )
    parser.add_argument("space", help="the space file, e.g. configs/search/optimizers.yaml")
    parser.add_argument("--n_trials", type=int, default=20, help="trials to add to the study (default 20)")
    parser.add_argument("--study_name", help="default: the space file's name")
    parser.add_argument("--study_dir", help="where the trials' runs go (default runs/search/<study_name>)")
    parser.add_argument("--storage", metavar="URL|env:NAME",
                        help="database URL shared by workers, or env:NAME to read it from the environment variable "
                        "NAME, which keeps its password off the command line (default sqlite:///<study_dir>/study.db)")
    parser.add_argument("--seed", type=int, default=42, help="training seed of every trial (default 42)")
    parser.add_argument("--sampler_seed", type=int, help="seed of the TPE sampler, for a repeatable search")
    parser.add_argument("--parallel", default="1", metavar="K|auto",
                        help="trials at once, sharing the cores out among them as a sweep does (default 1)")
    add_arguments(parser, "trial; --parallel K: at most K running at once")
    parser.add_argument("--heartbeat", type=int, default=HEARTBEAT, metavar="SECONDS",
                        help="a running trial's signs of life; a trial without one for twice as long (its worker "
                        f"killed) is failed and run again by the next worker to ask, up to {MAX_RETRY} times "
                        f"(default {HEARTBEAT}; 0: none)")
    args, overrides = parse_passing_on(parser, argv)
    try:
        with exit_on_user_error():
            options = options_from(args)
            search(args.space, args.n_trials, args.study_dir, args.storage, args.study_name, args.seed,
                   args.parallel, overrides, args.sampler_seed, heartbeat=args.heartbeat, slurm=options, wait=args.wait)
    except StoppedBySignal as stopped:
        raise SystemExit(stopped.exit_code) from None


if __name__ == "__main__":
    main()
