"""``python -m src.slurm_task TASKS.json``: one task of a job array that :mod:`src.slurm_array` submitted.

The task's batch step runs this; it starts the task's work (a sweep's run, or a study's one-trial
worker) under ``srun``, one process per task of the allocation (a run across several tasks is one
Lightning run, ranked by its ``SLURMEnvironment``), and decides what comes next from how it ended:

- stopped at a safe point while this task was not told to stop: SLURM's time-limit warning
  (``--signal=TERM@N`` reaches the run's processes, not the batch step), so the task requeues
  itself (``scontrol requeue``) and, started again, the run resumes from ``last.ckpt``; but only
  when it trained in this allocation (saved a newer ``last.ckpt``): a warning that comes before
  any training (a time limit too short for the run's start-up) would requeue it forever;
- stopped while this task was told as well (``scancel``, a preemption, a requeue by hand): SLURM
  signals every process of the job, so nothing is passed on, and nothing is requeued by the task
  (a preemption that requeues does so itself);
- failed: started again, up to the array's ``retries`` times (resuming where it has a
  ``last.ckpt``); a diverged run has ended, and is not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from src.paths import PROJECT_ROOT
from src.results import read_record
from src.run_process import LOG_FILE, Run, describe, print_line, recorded_status
from src.signals import start_owned


class Told:
    """SIGTERM or SIGINT to the task itself, noted and nothing more: SLURM sends it to the run's
    processes too, and they stop at their next safe point on their own."""

    def __init__(self) -> None:
        self.signum: int | None = None
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            print_line(f"told to stop ({signal.Signals(signum).name}): the run stops at its next safe point, "
                       "and this task does not requeue it")


@dataclass
class Command:
    """A task's command other than a run (a study's one-trial worker), its output appended to ``log``."""

    argv: list[str]
    log: Path

    @property
    def label(self) -> str:
        return " ".join(self.argv[1:4])

    def execute(self, env: dict[str, str], launch: list[str]) -> dict:
        with open(self.log, "a") as out:
            out.write(f"\n$ {' '.join([*launch, *self.argv])}\n")
            out.flush()
            returncode = start_owned([*launch, *self.argv], stdout=out, stderr=subprocess.STDOUT, env=env).wait()
        status = "finished" if returncode == 0 else "interrupted" if signal_name(returncode) else "failed"
        return {"status": status, "returncode": returncode, "log": str(self.log)}


def task_of(spec: dict) -> Run | Command:
    """The run or command of one entry of a tasks file."""
    if "run" in spec:
        run = spec["run"]
        return Run(Path(run["config"]), run["seed"], Path(run["root"]), run["name"], run["overrides"])
    return Command(spec["command"], Path(spec["log"]))


def launch_command() -> list[str]:
    """``srun`` for every task of this allocation, each with the task's CPUs (srun does not take them
    from sbatch since SLURM 22.05); one rank failing stops the others instead of leaving them waiting."""
    return ["srun", "--kill-on-bad-exit=1", f"--cpus-per-task={os.environ.get('SLURM_CPUS_PER_TASK', '1')}"]


def environment() -> dict[str, str]:
    """This task's environment for its work: its CPUs as torch's threads, and this checkout's ``src``."""
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": python_path, "OMP_NUM_THREADS": os.environ.get("SLURM_CPUS_PER_TASK", "1")}


def run_task(task: Run | Command, retries: int, told: Told, launch: list[str], env: dict[str, str]) -> int:
    """Run ``task`` as the module's docstring says; returns the task's exit status."""
    if isinstance(task, Run):
        (task.run_dir).mkdir(parents=True, exist_ok=True)
        done = read_record(task.run_dir)
        if done and done.is_complete:
            print_line(f"{task.label}: complete already, nothing to run")
            return 0
    before = _saved(task)
    for attempt in range(retries + 1):
        if attempt:
            print_line(f"{task.label}: retry {attempt} of {retries}")
        outcome = task.execute(env, launch=launch)
        ended = isinstance(task, Run) and recorded_status(read_record(task.run_dir)) in ("finished", "diverged")
        if ended:  # a signal that came as it was ending (its exit status says so) took nothing from it
            outcome = {**outcome, "status": recorded_status(read_record(task.run_dir))}
        stopped = not ended and (outcome["status"] == "interrupted" or signal_name(outcome["returncode"]) is not None)
        if stopped or outcome["status"] != "failed" or told.signum is not None:
            break
        print_line(f"{task.label}: failed (exit {outcome['returncode']}); see {outcome['log']}")
    print_line(f"{task.label}: " + (describe(outcome) if isinstance(task, Run) else
                                    f"{outcome['status']} (exit {outcome['returncode']})"))
    if stopped and told.signum is None and isinstance(task, Run) and _saved(task) == before:
        print_line(f"{task.label}: not requeued, as it trained nothing in this allocation: the time limit leaves "
                   "too little after the run's start-up (raise --time, or lower --signal_warning)")
    elif stopped and told.signum is None:
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        requeued = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
        print_line(f"{task.label}: requeued ({job}) to resume from its last.ckpt" if requeued.returncode == 0 else
                   f"{task.label}: could not requeue {job}: {requeued.stderr.strip()}")
    if outcome["status"] in ("finished", "diverged"):
        return 0
    return outcome["returncode"] if 0 < outcome["returncode"] < 256 else 1


def _saved(task: Run | Command) -> int | None:
    """When the run last saved ``last.ckpt`` (None: never, or not a run): what tells that it trained."""
    last = task.resume_from() if isinstance(task, Run) else None
    return last.stat().st_mtime_ns if last else None


def signal_name(returncode: int) -> str | None:
    """The signal a run's exit status says stopped it at a safe point (130, 143), if any."""
    if returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        return signal.Signals(returncode - 128).name
    return None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    told = Told()
    tasks = json.loads(Path(argv[0]).read_text())
    task = task_of(tasks["tasks"][int(os.environ["SLURM_ARRAY_TASK_ID"])])
    print_line(f"task {os.environ.get('SLURM_ARRAY_JOB_ID')}_{os.environ.get('SLURM_ARRAY_TASK_ID')} on "
               f"{os.environ.get('SLURMD_NODENAME', '?')}, start {int(os.environ.get('SLURM_RESTART_COUNT', 0)) + 1}: "
               f"{task.label}" + (f" in {task.run_dir} (output: {task.run_dir / LOG_FILE})" if isinstance(task, Run)
                                  else f" (output: {task.log})"))
    raise SystemExit(run_task(task, tasks["retries"], told, launch_command(), environment()))


if __name__ == "__main__":
    main()
