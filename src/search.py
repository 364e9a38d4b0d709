"""``python -m src.search SPACE.yaml``: an Optuna study when a grid is not enough.

The space file (:mod:`src.search_space`) names the config the trials start from, the
MedianPruner's settings and the space, keyed by command-line flag (see
``configs/search/optimizers.yaml``).

Each trial is one ``src.cli fit`` subprocess at ``STUDY_DIR/trial_<N>/seed_<S>`` (the layout
``src.report`` reads; :mod:`src.search_trials`). It maximises the best ``val_acc``; the trial's
own process reports ``val_acc`` after every epoch and stops when the pruner says it is hopeless. The study lives in
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
from collections.abc import Sequence
from pathlib import Path

import optuna
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from src.commands import command_parser, parse_passing_on
from src.errors import UserInputError, exit_on_user_error
from src.packing import count_or_auto, trains_on_cpu
from src.run_args import check_runs_args
from src.run_pool import LocalLauncher, RunPool
from src.run_process import Progress, print_line
from src.search_space import examples, load_space
from src.search_trials import Trials, asked
from src.signals import StoppedBySignal, StopOnSignal
from src.slurm import POLL_S, Cancel, queue_states
from src.slurm_array import SLURM_DIR, SlurmOptions, add_arguments, options_from, submit_array
from src.storage import ENV_PREFIX, MAX_RETRY, STORAGE_VARIABLE, masked, open_storage, storage_url

HEARTBEAT = 60  # seconds between a running trial's signs of life (--heartbeat)


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
    trials = Trials(study, declared, study_dir, seed, overrides, progress)
    pool = RunPool(LocalLauncher(parallel), n_trials, trains_on_cpu(resolved), env={STORAGE_VARIABLE: storage})
    pool.map(asked(study, n_trials), trials.run)
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
