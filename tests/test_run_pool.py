"""The run pool, through a launcher that starts nothing: each run handed to the launcher once, in
order, with the environment of its slot; runs at once in slots of their own; a signal that stops
the running runs, takes no more tasks and ends in one line."""

import os
import signal
import threading
from pathlib import Path

import pytest

from src.packing import Plan
from src.run_pool import RunPool
from src.run_process import Run
from src.signals import StoppedBySignal


class FakeProcess:
    """What a launcher hands the pool to stop: records the signals it is sent."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        self.stopped = threading.Event()

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)
        self.stopped.set()


class FakeLauncher:
    """Plans ``plan`` and records each run it is handed, with the environment it is given, instead
    of starting it; ``meanwhile(process)`` stands for the run's training."""

    def __init__(self, plan: Plan, meanwhile=lambda process: None) -> None:
        self._plan, self.meanwhile = plan, meanwhile
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.processes: list[FakeProcess] = []

    def plan(self, todo: int, cpu_only: bool) -> Plan:
        return self._plan

    def execute(self, run, env, on_start, on_epoch) -> dict:
        process = FakeProcess()
        self.seen.append((run.label, env))
        self.processes.append(process)
        on_start(process)
        self.meanwhile(process)
        return {"run": run.label, "status": "interrupted" if process.signals else "finished"}


def runs(tmp_path: Path, count: int) -> list[Run]:
    return [Run(Path("adam.yaml"), seed, tmp_path, "adam") for seed in range(count)]


def start_each(run: Run, start) -> dict:
    return start(run)


def test_each_run_goes_to_the_launcher_once_in_order_with_its_slots_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("STUDY_DB", raising=False)
    launcher = FakeLauncher(Plan(1, 3, ("7",), "test"))
    outcomes = RunPool(launcher, 3, cpu_only=False, env={"STUDY_DB": "sqlite:///study.db"}).map(
        runs(tmp_path, 3), start_each)
    labels = ["adam seed 0", "adam seed 1", "adam seed 2"]
    assert [label for label, _ in launcher.seen] == labels
    assert [outcome["run"] for outcome in outcomes] == labels
    for _, env in launcher.seen:  # the slot's GPU and threads, and what the pool adds for every run
        assert (env["CUDA_VISIBLE_DEVICES"], env["OMP_NUM_THREADS"], env["STUDY_DB"]) == ("7", "3", "sqlite:///study.db")
    assert "STUDY_DB" not in os.environ  # given to the runs, not set here


def test_runs_at_once_hold_a_slot_each_and_their_outcomes_come_back_in_the_tasks_order(tmp_path):
    together = threading.Barrier(2, timeout=120)  # a bound against a hang: two runs must be under way at once
    launcher = FakeLauncher(Plan(2, 1, ("0", "1"), "test"), meanwhile=lambda process: together.wait())
    outcomes = RunPool(launcher, 4, cpu_only=False).map(runs(tmp_path, 4), start_each)
    assert [outcome["run"] for outcome in outcomes] == [f"adam seed {seed}" for seed in range(4)]
    assert sorted(label for label, _ in launcher.seen) == [f"adam seed {seed}" for seed in range(4)]  # each once
    for pair in (launcher.seen[:2], launcher.seen[2:]):  # the runs that met at the barrier
        assert {env["CUDA_VISIBLE_DEVICES"] for _, env in pair} == {"0", "1"}


def test_a_signal_stops_the_running_run_takes_no_more_and_says_so_in_one_line(tmp_path):
    missed = []  # should the pool not handle SIGTERM itself, this handler hears it instead of the test dying
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: missed.append(signum))
    try:
        def signalled_while_training(process: FakeProcess) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # `kill <pid>` to the sweep, as its first run trains
            assert process.stopped.wait(timeout=120), "the running run was never told to stop"

        launcher = FakeLauncher(Plan(1, None, (None,), "test"), meanwhile=signalled_while_training)
        pool = RunPool(launcher, 3, cpu_only=True)
        outcomes = pool.map(runs(tmp_path, 3), start_each)
        lines: list[str] = []
        with pytest.raises(StoppedBySignal) as stopped:
            pool.raise_if_stopped(lines.append, "sweep", "1 run stopped at a safe point")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert missed == []
    assert outcomes == [{"run": "adam seed 0", "status": "interrupted"}]  # the others were never taken
    assert [process.signals for process in launcher.processes] == [[signal.SIGTERM]]  # one SIGTERM, once
    assert lines == ["sweep stopped by SIGTERM: 1 run stopped at a safe point"]
    assert stopped.value.exit_code == 143


def test_a_pool_that_was_not_stopped_ends_quietly(tmp_path):
    pool = RunPool(FakeLauncher(Plan(1, None, (None,), "test")), 1, cpu_only=True)
    pool.map(runs(tmp_path, 1), start_each)
    lines: list[str] = []
    pool.raise_if_stopped(lines.append, "sweep", "never said")
    assert lines == []
