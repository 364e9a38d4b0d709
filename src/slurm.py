"""Runs on a SLURM cluster: a sweep's grid, or a study's trials, as one job array, followed in the
queue until each task has left it.

Each array task is one run (or one trial's worker), started by :mod:`src.slurm_task` in the
task's batch step, which runs it under ``srun`` so that SLURM's own signals reach it. The array is
submitted (:mod:`src.slurm_array`) with ``--requeue`` and ``--signal=TERM@<warning>``: ahead of its
time limit SLURM sends SIGTERM to the run's processes (not to the batch step), the run stops at its
next safe point and writes ``last.ckpt``, and the task requeues itself; started again, the run
resumes from ``last.ckpt`` (:meth:`src.run_process.Run.command`).

The queue is read with ``squeue`` (no accounting database, so no ``sacct``, is needed). See the
README's "Beyond one machine".
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src.packing import Plan
from src.results import read_record
from src.run_process import Progress, Run, recorded_status
from src.slurm_array import SlurmOptions, submit_array

POLL_S = 10.0  # seconds between two looks at the queue while a sweep waits
QUEUE_STATES = {"PENDING": "queued", "REQUEUED": "queued", "REQUEUE_HOLD": "queued", "REQUEUE_FED": "queued",
                "CONFIGURING": "running", "RUNNING": "running", "COMPLETING": "running", "SUSPENDED": "running",
                "STOPPED": "running", "RESIZING": "running", "SIGNALING": "running"}


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


def submitted_states(outcomes: dict[str, dict], root: Path) -> dict[str, tuple[str, str]]:
    """For each run of ``sweep.json``'s ``outcomes`` that was submitted to SLURM (by key): its array
    task and where it stands (:func:`run_state`), with one ``squeue`` for all."""
    tasks = {key: outcome["job_id"] for key, outcome in outcomes.items() if outcome.get("job_id")}
    queue = queue_states(tasks.values())
    runs = {key: Run(Path(), outcomes[key]["seed"], root, outcomes[key]["config"]) for key in tasks}
    return {key: (task, run_state(runs[key], task, queue)) for key, task in tasks.items()}
