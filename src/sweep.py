"""``python -m src.sweep``: experiment configs × seeds, every run in its own subprocess.

A sweep is a directory, ``SWEEP_DIR/<config>/seed_<S>/``, one ``python -m src.cli fit`` run
each, so a crash or a divergence ends that run only. Starting the same sweep again skips the
runs that finished, resumes those that were cut off (from ``checkpoints/last.ckpt``) and
retries those that failed; ``sweep.json`` keeps how every run went, brought in line with the
runs' own ``results.json`` on every start. The same sweep started again while it runs (on
another machine that shares the directory, say) takes the runs that no sweep has taken yet, so
the two split the work; a run whose fit another process still runs is left to it. Ctrl-C or
SIGTERM stops the running runs at their next safe point and starts no more, so the same command
goes on from there; the runs stop so as well when the sweep dies outright (``kill -9``). Any
argument this command does not know (``--trainer.max_epochs 5``, ``--data.…``) goes to every
run, and a sweep directory holds runs made alike: a start with arguments that would make its
runs differ from those already there is refused.

By default the runs share out the machine (:func:`src.packing.plan_packing`): on CPUs one run
per core with one thread each, on GPUs several runs per GPU, as cores and memory allow. With
``--launcher slurm`` they go to a SLURM cluster instead, as one job array (:mod:`src.slurm`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path

from src.commands import command_parser, parse_passing_on
from src.errors import CannotWrite, UserInputError, exit_on_user_error
from src.keras_notebook import NOTEBOOK
from src.packing import GPU_GIB_PER_RUN, count_or_auto, trains_on_cpu, whole_number
from src.results import read_record
from src.run_args import check_runs_args, check_same_run_args, resolve_config, run_arguments
from src.run_dir import LOCK_FILE, lock_if_free
from src.run_pool import Launcher, LocalLauncher, RunPool, Start
from src.run_process import Progress, Run, describe, print_line
from src.signals import StoppedBySignal
from src.slurm import SlurmLauncher, queue_states
from src.slurm_array import SLURM_DIR, SlurmOptions, add_arguments, options_from, run_layout
from src.sweep_record import SweepRecord, read_sweep_record

TAKEN_FILE = ".taken"  # in a run's directory: locked by the sweep that runs it, while it does


def config_names(configs: str | Path | Iterable[str | Path] | None) -> list[str | Path]:
    """The configs a sweep is given: one name or path on its own is that config (not its letters);
    None is every notebook experiment; an empty list is refused rather than taken for all of them."""
    if configs is None:
        return list(NOTEBOOK)
    names = [configs] if isinstance(configs, (str, Path)) else list(configs)
    if not names:
        raise UserInputError("No configs given (an empty list): name one or more, e.g. ['sgd', 'adam'], or give "
                             "None for every notebook experiment.")
    return names


def sweep(
    configs: str | Path | Iterable[str | Path] | None = None,
    seeds: int = 3,
    first_seed: int = 42,
    sweep_dir: str | Path = "runs/sweep",
    overrides: str | Sequence[str] = (),
    parallel: int | str = "auto",
    progress: Progress = print_line,
    epoch_progress: bool = False,
    runs_per_device: int | str = "auto",
    slurm: SlurmOptions | None = None,
    wait: bool = True,
) -> list[dict]:
    """Run ``configs`` (default: every notebook experiment) × ``seeds`` seeds under ``sweep_dir``,
    ``parallel`` at once (``auto``: as :func:`src.packing.plan_packing` shares out the machine),
    each with ``overrides`` (:func:`src.run_args.run_arguments`). Runs that ``sweep_dir`` keeps must have
    been made with the same arguments (:func:`src.run_args.check_same_run_args`).

    With ``slurm``, the runs to do are submitted as one job array with those options instead, all
    but those whose task (``sweep.json``) is still in the queue (status ``queued``); ``sweep.json``
    keeps each one's job and array task id. ``wait``: follow the tasks until each has left the
    queue, one line per run as it ends; else return once submitted (status ``submitted``).

    Returns one outcome per run (``status``: ``complete`` for runs skipped as already done,
    ``finished``, ``diverged`` or ``failed``; ``elsewhere`` for a run that another sweep was
    running, which that sweep reports; ``held`` for one whose fit another process runs, a sweep
    killed outright, say). ``progress`` gets one line per run start and
    end (and per epoch with ``epoch_progress``); the runs' own output goes to their ``train.log``.
    Ctrl-C or SIGTERM raises :class:`StoppedBySignal` once the runs it had started have stopped
    (status ``interrupted``; those it did not start: ``not started``).
    """
    seeds, first_seed = whole_number(seeds, "--seeds", minimum=1), whole_number(first_seed, "--first_seed")
    parallel = count_or_auto(parallel, "--parallel")
    runs_per_device = count_or_auto(runs_per_device, "--runs_per_device")
    if parallel != "auto" and runs_per_device != "auto":
        raise UserInputError(
            f"--runs_per_device {runs_per_device} packs runs onto GPUs for --parallel auto, but --parallel is "
            f"{parallel}: give one of them (--parallel K runs K at once, shared round robin over the GPUs)."
        )
    paths = [resolve_config(name) for name in config_names(configs)]
    overrides = run_arguments(overrides)
    resolved = check_runs_args((path, overrides) for path in paths)
    root = Path(sweep_dir).resolve()
    check_same_run_args(root, paths, resolved)
    seed_list = range(first_seed, first_seed + seeds)
    # seed by seed: a sweep cut short has every config at least once before any has three
    runs = [Run(path, seed, root, path.stem, overrides) for seed in seed_list for path in paths]

    outcomes = {}
    for run in runs:
        done = read_record(run.run_dir)
        if done and done.is_complete:
            outcomes[run.label] = run.outcome("complete", done)
    todo = [run for run in runs if run.label not in outcomes]
    launcher: Launcher = LocalLauncher(parallel, runs_per_device)
    if slurm:
        if runs_per_device != "auto":
            raise UserInputError("--runs_per_device packs runs onto this machine's GPUs; with --launcher slurm each "
                                 "run is a task of its own: give its GPUs with --gpus_per_task.")
        nodes, tasks_per_node = run_layout(resolved)
        launcher = SlurmLauncher(slurm, root / SLURM_DIR, f"sweep:{root.name}", nodes, tasks_per_node)
        queued = _in_queue(root, todo)
        for run in todo:
            if run.key in queued:
                progress(f"skip  {run.label}: SLURM task {queued[run.key]['job_id']} has it "
                         f"({queued[run.key]['queue_state']})")
                outcomes[run.label] = queued[run.key]
        todo = [run for run in todo if run.label not in outcomes]
    pool = RunPool(launcher, len(todo), trains_on_cpu(resolved), on_epoch=progress if epoch_progress else None)
    from src.fast import choose_for  # here, not above: torch takes seconds to import (check_run_args loaded it)

    fast = "; ".join(dict.fromkeys(choice.describe() for config in resolved if (choice := choose_for(config))))
    complete = [o for o in outcomes.values() if o["status"] == "complete"]
    progress(f"sweep {root}: {len(runs)} run{'' if len(runs) == 1 else 's'}, {len(complete)} already complete, "
             f"{len(todo)} to run, {pool.plan.describe()}" + (f"; every run --fast: {fast}" if fast else ""))
    record = SweepRecord(root, {"configs": [str(p) for p in paths], "seeds": list(seed_list), "overrides": overrides,
                                "plan": {**asdict(pool.plan), "summary": pool.plan.describe()}}, runs)
    submitted = pool.submit(todo)
    for run in todo:
        if run.key in submitted:
            record.update(run, run.outcome("submitted", read_record(run.run_dir), **submitted[run.key]))
    if submitted:
        job = next(iter(submitted.values()))["array_job_id"]
        progress(f"submitted SLURM job array {job} ({len(todo)} task{'' if len(todo) == 1 else 's'}, script in "
                 f"{root / SLURM_DIR}); watch it with: squeue -j {job}; python -m src.report {root}")
    if submitted and not wait:
        for run in todo:
            outcomes[run.label] = run.outcome("submitted", None, **submitted[run.key])
        return [outcomes[run.label] for run in runs]
    follow = _follow_submitted if submitted else _run_unless_taken
    try:
        ran = pool.map(enumerate(todo, 1), partial(follow, record, progress, len(todo)))
    except CannotWrite as err:
        raise CannotWrite(err.path, err.error, "then start the same sweep again: it skips the finished runs "
                          "and resumes the others") from err
    for run, outcome in zip(todo, ran):
        outcomes[run.label] = outcome
    for run in todo[len(ran):]:
        outcomes[run.label] = run.outcome("not started", read_record(run.run_dir))
    statuses = [o["status"] for o in outcomes.values()]
    stopped = statuses.count("interrupted")
    pool.raise_if_stopped(progress, "sweep", f"{stopped} run{'' if stopped == 1 else 's'} stopped at a safe point, "
                          f"{statuses.count('not started')} not started; the same command goes on from there")
    progress(_done(statuses))
    return [outcomes[run.label] for run in runs]


def _done(statuses: list[str]) -> str:
    """The sweep's last line, from the status of each of its runs."""
    failed, elsewhere, held = statuses.count("failed"), statuses.count("elsewhere"), statuses.count("held")
    queued, stopped = statuses.count("queued"), statuses.count("interrupted")
    return (f"sweep done: {len(statuses) - failed - elsewhere - held - queued - stopped} of {len(statuses)} runs "
            "complete"
            + (f", {failed} failed" if failed else "")
            + (f", {stopped} stopped at a safe point (the same command resumes them)" if stopped else "")
            + (f", {elsewhere} left to another sweep" if elsewhere else "")
            + (f", {held} held by another process" if held else "")
            + (f", {queued} left to the SLURM tasks that have them" if queued else ""))


def _in_queue(root: Path, todo: list[Run]) -> dict[str, dict]:
    """The runs of ``todo`` (by :attr:`Run.key`) whose SLURM task, as ``sweep.json`` recorded it, is
    still queued or running: a second submission would run them twice."""
    try:
        recorded = read_sweep_record(root)["runs"]
    except ValueError:
        return {}  # SweepRecord refuses it, with the fix, before anything is submitted
    tasks = {run.key: recorded.get(run.key, {}).get("job_id") for run in todo}
    queue = queue_states(task for task in tasks.values() if task) or {}
    return {key: {**recorded[key], "status": "queued", "queue_state": queue[task]}
            for key, task in tasks.items() if task in queue}


def _follow_submitted(record: SweepRecord, progress: Progress, count: int, numbered: tuple[int, Run],
                      start: Start) -> dict:
    """A run submitted as an array task, followed (``start``) until its task has left the queue."""
    index, run = numbered
    submitted = read_sweep_record(record.path.parent)["runs"].get(run.key, {})
    outcome = {**submitted, **start(run)}
    record.update(run, outcome)
    progress(f"[{index}/{count}] end   {run.label}: {describe(outcome)}; SLURM task {outcome['job_id']}")
    return outcome


def _run_unless_taken(record: SweepRecord, progress: Progress, count: int, numbered: tuple[int, Run],
                      start: Start) -> dict:
    """A run of the sweep, started in its slot (``start``) unless another sweep has taken it (its
    ``.taken`` lock) or finished it, or another process still runs its fit (its own lock)."""
    index, run = numbered
    with lock_if_free(run.run_dir / TAKEN_FILE) as taken:
        done = read_record(run.run_dir)
        if not taken or (done and done.is_complete):
            progress(f"[{index}/{count}] skip  {run.label}: another sweep "
                     + ("is running it" if not taken else "has finished it"))
            return run.outcome("complete" if taken else "elsewhere", done)
        holder = run.holder()
        if holder:  # not a failure: a later start takes it up once that process has ended
            progress(f"[{index}/{count}] skip  {run.label}: {holder} still runs its fit "
                     f"(it holds {run.run_dir / LOCK_FILE}); left to it")
            held = run.outcome("held", done, holder=holder)
            record.update(run, held)
            return held
        resume = run.resume_from()
        progress(f"[{index}/{count}] start {run.label}" + (f" (resuming from {resume})" if resume else ""))
        outcome = start(run)
    record.update(run, outcome)
    progress(f"[{index}/{count}] end   {run.label}: {describe(outcome)}")
    return outcome


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
    add_arguments(parser, "run; --parallel K: at most K running at once")
    return parser


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_passing_on(build_parser(), argv)
    try:
        with exit_on_user_error():
            options = options_from(args)
            outcomes = sweep(args.configs, args.seeds, args.first_seed, args.sweep_dir, overrides, args.parallel,
                             runs_per_device=args.runs_per_device, slurm=options, wait=args.wait)
    except StoppedBySignal as stopped:
        raise SystemExit(stopped.exit_code) from None
    if any(o["status"] == "failed" for o in outcomes):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
