"""Runs on a SLURM cluster: a sweep's grid, or a study's trials, as one job array.

Each array task is one run (or one trial's worker), started by :mod:`src.slurm_task` in the
task's batch step, which runs it under ``srun`` so that SLURM's own signals reach it. The array is
submitted with ``--requeue`` and ``--signal=TERM@<warning>``: ahead of its time limit SLURM sends
SIGTERM to the run's processes (not to the batch step), the run stops at its next safe point and
writes ``last.ckpt``, and the task requeues itself; started again, the run resumes from
``last.ckpt`` (:meth:`src.run_process.Run.command`).

The script is written here, not by a submission library: a task's work is a command line, not a
Python function to pickle, its requeue must wait for the run's own safe point, and the queue is
read with ``squeue`` (no accounting database, so no ``sacct``, is needed). See the README's
"Beyond one machine".
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from src.errors import UserInputError
from src.files import write_atomic
from src.packing import Plan, count_or_auto
from src.paths import PROJECT_ROOT
from src.results import read_record
from src.run_process import Progress, Run, recorded_status

SLURM_DIR = "slurm"  # in a sweep's or study's directory: each array's script, its tasks and their output
WARNING_S = 120  # seconds before the time limit that a run is told to stop (--signal=TERM@...)
RETRIES = 2  # a failed run is started again this many times in its task
POLL_S = 10.0  # seconds between two looks at the queue while a sweep waits
QUEUE_STATES = {"PENDING": "queued", "REQUEUED": "queued", "REQUEUE_HOLD": "queued", "REQUEUE_FED": "queued",
                "CONFIGURING": "running", "RUNNING": "running", "COMPLETING": "running", "SUSPENDED": "running",
                "STOPPED": "running", "RESIZING": "running", "SIGNALING": "running"}


@dataclass(frozen=True)
class SlurmOptions:
    """What each array task asks SLURM for, from the command's flags; None: the cluster's default."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None  # SLURM's formats: minutes, H:MM:SS, D-HH:MM:SS
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    mem: str | None = None  # per node, SLURM's format: 8G
    throttle: int | None = None  # tasks running at once (--array=0-N%throttle)
    warning: int = WARNING_S
    retries: int = RETRIES
    sbatch: tuple[str, ...] = ()  # more sbatch options, as given

    def directives(self, nodes: int = 1, tasks_per_node: int = 1) -> list[str]:
        """The ``#SBATCH`` lines of these options, for a run across ``nodes`` × ``tasks_per_node`` tasks.
        A run of several tasks asks for its GPUs per node (``--gres``), as Lightning's SLURM setup
        does: each rank then sees its node's GPUs and takes its own by its local rank, where
        ``--gpus-per-task`` would show it one GPU only, at an index Lightning does not use."""
        gpus = {"gpus-per-task": self.gpus_per_task or None} if tasks_per_node == 1 else \
            {"gres": f"gpu:{self.gpus_per_task * tasks_per_node}" if self.gpus_per_task else None}
        given = {"partition": self.partition, "account": self.account, "qos": self.qos, "time": self.time,
                 "mem": self.mem, **gpus}
        lines = [f"--nodes={nodes}", f"--ntasks-per-node={tasks_per_node}", f"--cpus-per-task={self.cpus_per_task}",
                 *[f"--{key}={value}" for key, value in given.items() if value is not None],
                 "--requeue", f"--signal=TERM@{self.warning}", "--open-mode=append"]
        return [f"#SBATCH {shlex.quote(line)}" for line in lines]


def add_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """The flags of ``--launcher slurm``, shared by the sweep and the search; ``what``: each task's work."""
    group = parser.add_argument_group("SLURM (with --launcher slurm: one job array, one task per " + what + ")")
    group.add_argument("--launcher", choices=("local", "slurm"), default="local",
                       help="local: this machine's processes (default); slurm: a SLURM job array")
    group.add_argument("--wait", type=_yes_no, default=True, metavar="true|false",
                       help="with slurm: wait for the tasks and report each as it ends (default true), or return "
                       "once the array is submitted")
    group.add_argument("--partition", help="the partition (default: the cluster's default)")
    group.add_argument("--account", help="the account to charge (default: yours)")
    group.add_argument("--qos", help="the quality of service (default: the cluster's)")
    group.add_argument("--time", help="each task's time limit, e.g. 4:00:00; a run that reaches it stops at a safe "
                       "point and is requeued to resume (default: the partition's limit)")
    group.add_argument("--cpus_per_task", type=int, default=1, help="CPUs of each task, its runs' threads (default 1)")
    group.add_argument("--gpus_per_task", type=int, default=0, help="GPUs of each task (default 0)")
    group.add_argument("--mem", help="memory of each task's node, e.g. 8G (default: the cluster's)")
    group.add_argument("--signal_warning", type=int, default=WARNING_S, metavar="SECONDS",
                       help=f"how long before the time limit a run is told to stop (default {WARNING_S})")
    group.add_argument("--retries", type=int, default=RETRIES,
                       help=f"times a failed run is started again in its task (default {RETRIES}); a diverged or "
                       "stopped run is not")
    group.add_argument("--sbatch", default="", metavar="'OPTIONS'",
                       help="more sbatch options, quoted as one, e.g. '--constraint=a100 --exclusive'")


def _yes_no(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"takes true or false, got {value!r}")
    return value.lower() == "true"


def options_from(args: argparse.Namespace) -> SlurmOptions | None:
    """The :class:`SlurmOptions` of a command's flags, its ``--parallel K`` the array's throttle;
    None for ``--launcher local``, which refuses SLURM's flags rather than ignore them."""
    defaults = {"wait": True, "partition": None, "account": None, "qos": None, "time": None, "cpus_per_task": 1,
                "gpus_per_task": 0, "mem": None, "signal_warning": WARNING_S, "retries": RETRIES, "sbatch": ""}
    if args.launcher == "local":
        given = [flag for flag, default in defaults.items() if getattr(args, flag) != default]
        if given:
            raise UserInputError(f"--{given[0]} is for --launcher slurm (a SLURM job array); this runs on this "
                                 "machine (--launcher local). Add --launcher slurm, or leave it out.")
        return None
    for flag in ("cpus_per_task", "gpus_per_task", "retries", "signal_warning"):
        least = 1 if flag == "cpus_per_task" else 0
        if getattr(args, flag) < least:
            raise UserInputError(f"--{flag} must be at least {least}, got {getattr(args, flag)}.")
    try:
        extra = tuple(shlex.split(args.sbatch))
    except ValueError as err:
        raise UserInputError(f"--sbatch {args.sbatch!r} cannot be split as a shell would ({err}).") from None
    throttle = count_or_auto(args.parallel, "--parallel")
    return SlurmOptions(args.partition, args.account, args.qos, args.time, args.cpus_per_task, args.gpus_per_task,
                        args.mem, None if throttle == "auto" else throttle, args.signal_warning, args.retries, extra)


def job_script(name: str, count: int, tasks_file: Path, options: SlurmOptions, nodes: int = 1,
               tasks_per_node: int = 1) -> str:
    """The sbatch script of an array of ``count`` tasks, each the task of ``tasks_file`` at its index."""
    throttle = f"%{options.throttle}" if options.throttle else ""
    output = tasks_file.parent / "%A_%a.out"
    return "\n".join([
        "#!/bin/bash",
        f"#SBATCH --job-name={shlex.quote(name)}",
        f"#SBATCH --array=0-{count - 1}{throttle}",
        f"#SBATCH --output={shlex.quote(str(output))}",
        *options.directives(nodes, tasks_per_node),
        "# written by hparam-lab (src/slurm.py); submitted by src.sweep or src.search",
        f"export PYTHONPATH={shlex.quote(str(PROJECT_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}",
        f"exec {shlex.quote(sys.executable)} -m src.slurm_task {shlex.quote(str(tasks_file))}",
        "",
    ])


def submit_array(directory: Path, name: str, tasks: list[dict[str, Any]], options: SlurmOptions,
                 env: dict[str, str] | None = None, nodes: int = 1, tasks_per_node: int = 1) -> str:
    """Write the array's tasks and script into ``directory`` and submit it; returns its job id.
    The tasks get this process's environment plus ``env`` (sbatch's default ``--export=ALL``), so
    that nothing secret (a database's password) is written to a file."""
    stem = directory / datetime.now().strftime("array-%Y%m%d-%H%M%S-%f")
    tasks_file = stem.with_suffix(".json")
    write_atomic(tasks_file, json.dumps({"retries": options.retries, "tasks": tasks}, indent=1) + "\n")
    script = stem.with_suffix(".sbatch")
    write_atomic(script, job_script(name, len(tasks), tasks_file, options, nodes, tasks_per_node))
    command = ["sbatch", "--parsable", *options.sbatch, str(script)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UserInputError(f"Cannot submit to SLURM ({err}). --launcher slurm needs SLURM's sbatch on this "
                             "machine (a cluster's login node); without one, use --launcher local.") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).splitlines()
        reason = "; ".join(" ".join(line.replace("sbatch: error:", "").split()) for line in said if line.strip())
        raise UserInputError(f"SLURM refused the job array ({reason}); nothing was submitted. Check the SLURM flags "
                             f"(--partition, --account, --qos, --time, --mem, --sbatch); the script is {script}.")
    return done.stdout.strip().split(";")[0]


def queue_states(job_ids: Iterable[str]) -> dict[str, str] | None:
    """Each array task of ``job_ids`` that the queue holds (``12_0``), with its state as ``squeue``
    says it (``PENDING``, ``RUNNING``, …); tasks not in it have left it. None when squeue does not
    answer (no SLURM here, or its controller down)."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    try:
        done = subprocess.run(["squeue", "--noheader", "--array", "--jobs", ",".join(ids), "--format=%i %T"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:  # every job id has left the queue ("Invalid job id") or no controller answers
        return {} if "Invalid job id" in done.stderr else None
    return dict(line.split()[:2] for line in done.stdout.splitlines() if len(line.split()) >= 2)


def run_state(run: Run, task: str | None, queue: dict[str, str] | None) -> str:
    """Where a submitted run stands: ``queued`` or ``running`` while its task is in the queue,
    then its own ``results.json``'s ``finished``, ``diverged`` or ``interrupted``, else ``failed``;
    ``unknown`` while the queue cannot be read."""
    if task and queue is not None and task in queue:
        return QUEUE_STATES.get(queue[task], queue[task].lower())
    status = recorded_status(read_record(run.run_dir))
    if status or queue is not None:
        return status or "failed"
    return "unknown"


@dataclass(frozen=True)
class SlurmPlan(Plan):
    """Every run at once as far as this process is concerned: SLURM decides when each starts."""

    throttle: int | None = None

    def describe(self) -> str:
        throttle = f", at most {self.throttle} at once" if self.throttle else ""
        return f"as SLURM job array tasks{throttle}, {self.threads} CPU{'s' if self.threads != 1 else ''} each"


class Cancel:
    """What a stop of a pool or a search signals for what it submitted: the job array (or one task
    of it, ``12_0``), cancelled. SLURM sends SIGTERM to each process of its running tasks, whose runs
    stop at their next safe point and are not requeued (the tasks were told as well); the tasks
    still queued never start."""

    def __init__(self, task: str) -> None:
        self.task = task

    def send_signal(self, signum: int) -> None:
        subprocess.run(["scancel", self.task], capture_output=True, timeout=60)


@dataclass
class SlurmLauncher:
    """The runs of a pool as one SLURM job array, submitted all at once (:meth:`submit`) into
    ``directory``; :meth:`execute` then follows one run's task until it has left the queue."""

    options: SlurmOptions
    directory: Path
    name: str
    nodes: int = 1
    tasks_per_node: int = 1
    poll_s: float = POLL_S
    tasks: dict[str, str] = field(default_factory=dict)  # run key -> its array task, "12_0"
    _queue: tuple[float, dict[str, str] | None] = (0.0, None)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(self, todo: int, cpu_only: bool) -> Plan:
        return SlurmPlan(max(1, todo), self.options.cpus_per_task, (None,) * max(1, todo), "SLURM",
                         self.options.throttle)

    def submit(self, runs: Sequence[Run], env: dict[str, str],
               on_start: Callable[[Any], None]) -> dict[str, dict[str, str]]:
        """Submit ``runs`` as one array, task ``i`` the run ``runs[i]``, and give ``on_start`` what
        cancels it; returns what ``sweep.json`` keeps of each run's task: its job id and array task id."""
        if not runs:
            return {}
        tasks = [{"run": {"config": str(run.config), "seed": run.seed, "root": str(run.root), "name": run.name,
                          "overrides": run.overrides}} for run in runs]
        job = submit_array(self.directory, self.name, tasks, self.options, env, self.nodes, self.tasks_per_node)
        on_start(Cancel(job))
        submitted = {}
        for index, run in enumerate(runs):
            self.tasks[run.key] = f"{job}_{index}"
            submitted[run.key] = {"job_id": f"{job}_{index}", "array_job_id": job, "array_task_id": str(index),
                                  "slurm_output": str(self.directory / f"{job}_{index}.out")}
        return submitted

    def execute(self, run: Run, env: dict[str, str], on_start: Callable[[Any], None],
                on_epoch: Progress | None) -> dict:
        """Wait until ``run``'s task has left the queue (requeues included) and say how the run went,
        by its ``results.json``; a stop cancels the task with its array (:meth:`submit`)."""
        task = self.tasks[run.key]
        started = time.time()
        while (state := run_state(run, task, self._states())) in ("queued", "running", "unknown"):
            time.sleep(self.poll_s)
        record = read_record(run.run_dir)
        return run.outcome(state, record, job_id=task, seconds=round(time.time() - started, 1),
                           log=str(run.run_dir / "train.log"))

    def _states(self) -> dict[str, str] | None:
        """The queue as one ``squeue`` for all the array's tasks, at most once per ``poll_s``."""
        with self._lock:
            when, states = self._queue
            if time.monotonic() - when >= self.poll_s or states is None:
                states = queue_states(self.tasks.values())
                self._queue = (time.monotonic(), states)
            return states


def signal_name(returncode: int) -> str | None:
    """The signal a run's exit status says stopped it at a safe point (130, 143), if any."""
    if returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        return signal.Signals(returncode - 128).name
    return None


def run_layout(configs: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Nodes and tasks per node for each run of these resolved configs: Lightning's
    ``trainer.num_nodes`` and ``trainer.devices`` (:func:`device_count`), one process per device,
    which ``srun`` starts and Lightning's ``SLURMEnvironment`` ranks. One array has one layout."""
    layouts = set()
    for config in configs:
        trainer = config.get("trainer") or {}
        layouts.add((int(trainer.get("num_nodes") or 1), device_count(trainer.get("devices"))))
    if len(layouts) > 1:
        raise UserInputError(
            "With --launcher slurm every run of one array takes the same nodes and tasks, but these runs ask for "
            f"different ones ((trainer.num_nodes, trainer.devices): {sorted(layouts)}). Give --trainer.num_nodes "
            "and --trainer.devices for all of them, or submit them as separate sweeps."
        )
    return layouts.pop() if layouts else (1, 1)


def device_count(devices: Any) -> int:
    """The processes per node of Lightning's ``trainer.devices``: a count (``2``, or ``"2"`` as the
    command line gives it) or a list of devices (``[0, 1]``, ``"0,1"``); 1 for ``auto`` and ``-1``,
    which leave the count to the machine, so SLURM cannot be asked for it."""
    if isinstance(devices, str):
        text = devices.strip()
        devices = int(text) if text.isdigit() else [d for d in text.split(",") if d.strip()] if "," in text else None
    if isinstance(devices, (list, tuple)):
        return max(1, len(devices))
    return devices if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0 else 1


def submitted_states(outcomes: dict[str, dict], root: Path) -> dict[str, tuple[str, str]]:
    """For each run of ``sweep.json``'s ``outcomes`` that was submitted to SLURM (by key): its array
    task and where it stands (:func:`run_state`), with one ``squeue`` for all."""
    tasks = {key: outcome["job_id"] for key, outcome in outcomes.items() if outcome.get("job_id")}
    queue = queue_states(tasks.values())
    runs = {key: Run(Path(), outcomes[key]["seed"], root, outcomes[key]["config"]) for key in tasks}
    return {key: (task, run_state(runs[key], task, queue)) for key, task in tasks.items()}
