"""Many ``src.cli fit`` runs at once, as a sweep's grid and a search's trials need them.

A :class:`RunPool` asks its launcher how many runs go at once and gives each of that many worker
threads one slot: an environment with its threads and GPU. The workers take the tasks (a sweep's
runs, a study's trials) one at a time in the order given, and a task's job starts its run through
the pool, which hands it to the launcher with the slot's environment. Ctrl-C or SIGTERM stops the
pool (:class:`src.signals.StopOnSignal`): no task is taken any more, each running run gets one SIGTERM
and stops at its next safe point, and :meth:`RunPool.raise_if_stopped` says so in one line. A file
the pool's work cannot write (:class:`src.errors.CannotWrite`: a full disk, a read-only folder)
stops the taking of tasks too; once the running runs have ended, :meth:`RunPool.map` raises it.

The launcher is the seam where runs go somewhere other than this machine's processes:
:class:`LocalLauncher`, each run a subprocess of this one on this machine as
:func:`src.packing.machine_plan` packs it, or :class:`src.slurm.SlurmLauncher`, all runs one SLURM
job array, handed over at once (:meth:`RunPool.submit`) and then each followed in its slot.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from src.errors import CannotWrite
from src.packing import Count, Plan, machine_plan, run_environments
from src.run_process import Progress, Run
from src.signals import StoppedBySignal, StopOnSignal

Task = TypeVar("Task")
Result = TypeVar("Result")
Start = Callable[[Run], dict]  # what a job calls to run its run in its slot; returns Run.execute's outcome


class Launcher(Protocol):
    """How the runs of a pool are executed: how many at once, and each one from start to outcome."""

    def plan(self, todo: int, cpu_only: bool) -> Plan:
        """How many of ``todo`` runs go at once, each slot's threads and GPU (``cpu_only``: no GPUs)."""

    def submit(self, runs: Sequence[Run], env: dict[str, str], on_start: Callable[[Any], None]) -> dict[str, dict]:
        """Every run the pool is to start, before any starts, with the pool's environment: a launcher
        whose runs go together (a job array) sends them here, gives ``on_start`` what a stop signals
        for all of them (the array: also those no worker has taken yet), and returns what to keep of
        each, by :attr:`Run.key`; one that starts each run in :meth:`execute` returns nothing."""

    def execute(self, run: Run, env: dict[str, str], on_start: Callable[[subprocess.Popen], None],
                on_epoch: Progress | None) -> dict:
        """Run ``run`` with the environment ``env`` and return how it went, as :meth:`Run.execute` does,
        once it has ended; it is called in the worker thread that waits for it. ``on_start`` gets, as
        the run starts, what a stop sends its one SIGTERM to (the run's process, or anything with
        ``send_signal``); ``on_epoch``, when given, a line per epoch."""


@dataclass(frozen=True)
class LocalLauncher:
    """Each run a subprocess of this process (:meth:`Run.execute`), ``parallel`` at once (``auto``:
    as :func:`src.packing.plan_packing` shares out this machine, ``runs_per_device`` per GPU)."""

    parallel: Count = "auto"
    runs_per_device: Count = "auto"

    def plan(self, todo: int, cpu_only: bool) -> Plan:
        return machine_plan(todo, self.parallel, self.runs_per_device, cpu_only)

    def submit(self, runs: Sequence[Run], env: dict[str, str], on_start: Callable[[Any], None]) -> dict[str, dict]:
        return {}

    def execute(self, run: Run, env: dict[str, str], on_start: Callable[[subprocess.Popen], None],
                on_epoch: Progress | None) -> dict:
        return run.execute(env, on_epoch=on_epoch, on_start=on_start)


class RunPool:
    """``todo`` runs, as many at once as ``launcher`` plans (:attr:`plan`), each started with the
    environment of its slot plus ``env`` and, when given, ``on_epoch`` for a line per epoch."""

    def __init__(self, launcher: Launcher, todo: int, cpu_only: bool, env: dict[str, str] | None = None,
                 on_epoch: Progress | None = None) -> None:
        self.launcher = launcher
        self.plan = launcher.plan(todo, cpu_only)
        self._env = env or {}
        self._on_epoch = on_epoch
        self._stop = StopOnSignal()
        self._unwritable: list[CannotWrite] = []

    def submit(self, runs: Sequence[Run]) -> dict[str, dict]:
        """Hand ``runs``, all that :meth:`map` will start, to a launcher that takes them at once
        (:meth:`Launcher.submit`), which a stop of :meth:`map` then cancels; returns what it says of each."""
        return self.launcher.submit(runs, self._env, on_start=self._stop.adopt)

    def map(self, tasks: Iterable[Task], job: Callable[[Task, Start], Result]) -> list[Result]:
        """``job(task, start)`` for each task, in worker threads that each hold one slot and take the
        next task only once their job has returned; ``start(run)`` runs the job's run in that slot.
        The tasks are taken one at a time, in order, so a task made as it is taken (a study's
        ``ask``) sees those before it; after a stop none is taken. Returns the results of the tasks
        taken, in their order: the tasks beyond them were not started. A job that raises
        :class:`CannotWrite` ends the taking; the first such error is raised once all jobs have ended."""
        slots = run_environments(self.plan)
        results: dict[int, Result] = {}
        take = self._taker(enumerate(tasks))

        def work() -> None:
            env = {**slots.get(), **self._env}
            while (taken := take()) is not None:
                index, task = taken
                try:
                    results[index] = job(task, lambda run: self._start(run, env))
                except CannotWrite as err:
                    self._unwritable.append(err)

        with self._stop, ThreadPoolExecutor(max_workers=self.plan.runs) as threads:
            for worker in [threads.submit(work) for _ in range(self.plan.runs)]:
                worker.result()
        if self._unwritable:
            raise self._unwritable[0]
        return [results[index] for index in sorted(results)]

    def raise_if_stopped(self, progress: Progress, command: str, summary: str) -> None:
        """After :meth:`map`: if a signal stopped the pool, one line (``sweep stopped by SIGINT: `` and
        ``summary``), then :class:`StoppedBySignal`, which the command turns into its exit status."""
        signum = self._stop.signum
        if signum is not None:
            progress(f"{command} stopped by {signal.Signals(signum).name}: {summary}")
            raise StoppedBySignal(signum)

    def _taker(self, tasks: Iterator[tuple[int, Task]]) -> Callable[[], tuple[int, Task] | None]:
        lock = threading.Lock()

        def take() -> tuple[int, Task] | None:
            with lock:
                return None if self._stop.signum is not None or self._unwritable else next(tasks, None)

        return take

    def _start(self, run: Run, env: dict[str, str]) -> dict:
        return self.launcher.execute(run, env, on_start=self._stop.adopt, on_epoch=self._on_epoch)
