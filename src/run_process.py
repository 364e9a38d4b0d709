"""One ``src.cli fit`` run of a sweep or study in a process of its own: its directory, its command,
and how it went, which a crash or a divergence of the run cannot take from the process that started it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from src.errors import CannotWrite
from src.results import RunRecord, read_record
from src.run_dir import LOCK_FILE, lock_if_free
from src.signals import start_owned

LOG_FILE = "train.log"

Progress = Callable[[str], None]


def print_line(line: str) -> None:
    """Progress to the terminal, flushed so that it shows at once even through a pipe; the line and its
    newline in one write, so that lines two runs' threads print at once never run together."""
    print(f"{line}\n", end="", flush=True)


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

    @property
    def key(self) -> str:
        """Its name in ``sweep.json``."""
        return f"{self.name}/seed_{self.seed}"

    def holder(self) -> str | None:
        """The process that holds the run's own lock (its fit, which a sweep that died or a user started),
        or None when no process does."""
        lock = self.run_dir / LOCK_FILE
        if not lock.is_file():
            return None
        with lock_if_free(lock) as free:
            if free:
                return None
        pid = lock.read_text().strip()
        return f"process {pid}" if pid.isdigit() else "another process"

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

    def execute(
        self,
        env: dict[str, str] | None = None,
        on_epoch: Progress | None = None,
        on_start: Callable[[subprocess.Popen], None] | None = None,
        launch: Sequence[str] = (),
    ) -> dict:
        """Run it (output to ``train.log``; ``on_start`` gets the process; ``launch``: what starts the
        command, ``srun`` in a SLURM task) and say how it went:
        status ``finished``, ``diverged``, ``interrupted`` (stopped at a safe point by a signal) or
        ``failed``, with the exit code and the run's results.

        The run's process gets SIGTERM when this one dies (:func:`src.signals.start_owned`), which
        Linux sends when the thread that started it ends. So this one call, in one thread, starts the
        run and waits for it, and stops it should it be left early: the threads of a
        :class:`src.run_pool.RunPool` start runs, and none is left training after the pool has gone."""
        started = time.time()
        command = [*launch, *self.command()]
        log_path = self.run_dir / LOG_FILE
        _start_log(log_path, command)
        with open(log_path, "a") as log:
            process = start_owned(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                if on_start:
                    on_start(process)
                if on_epoch:
                    _watch_epochs(process, self.run_dir, self.label, on_epoch)
                process.wait()
            finally:
                if process.poll() is None:  # left by an error
                    process.terminate()
                    process.wait()
        record = read_record(self.run_dir)
        return self.outcome(_exit_status(record, process.returncode), record, returncode=process.returncode,
                            seconds=round(time.time() - started, 1), log=str(log_path))

    def outcome(self, status: str, record: RunRecord | None, **details: object) -> dict:
        """What ``sweep.json`` keeps of a run."""
        record = record or RunRecord()
        return {
            "config": self.name, "seed": self.seed, "run_dir": str(self.run_dir), "status": status,
            "stop_reason": record.stop_reason, "failure": record.failure, "test_acc": record.test_acc, **details,
        }


def _start_log(log_path: Path, command: Sequence[str]) -> None:
    """Make the run's folder and write the command atop its log: where a full disk or a read-only folder
    shows, before the run starts."""
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            log.write(f"\n$ {' '.join(command)}\n")
    except OSError as err:
        raise CannotWrite(err.filename or log_path, err) from err


def _watch_epochs(process: subprocess.Popen, run_dir: Path, label: str, on_epoch: Progress) -> None:
    """Report each epoch as the run's results.json gains it, polling every few seconds until ``process`` ends."""
    seen = len((read_record(run_dir) or RunRecord()).history)
    while process.poll() is None:
        time.sleep(2)
        history = (read_record(run_dir) or RunRecord()).history
        for epoch in history[seen:]:
            on_epoch(f"{label}: epoch {epoch['epoch']}, val_acc {epoch.get('val_acc', float('nan')):.4f}")
        seen = max(seen, len(history))


def _exit_status(record: RunRecord | None, returncode: int) -> str:
    """How a run that exited with ``returncode`` went: as its record says, unless it failed."""
    status = recorded_status(record) or "failed"
    return "failed" if returncode != 0 and status != "interrupted" else status


def recorded_status(record: RunRecord | None) -> str | None:
    """How a run went by its own ``results.json``: ``finished``, ``diverged`` or ``interrupted``; None
    when it cannot tell (no record, still running, or failed)."""
    if record and record.is_complete:
        return "diverged" if record.stop_reason == "diverged" else "finished"
    return "interrupted" if record and record.stop_reason == "interrupted" else None


def describe(outcome: dict) -> str:
    """One line on how a run ended (a SLURM task's outcome has no exit code of the run's own)."""
    code = outcome.get("returncode")
    if outcome["status"] == "failed":
        exit_ = "" if code is None else f"exit {code}, "
        why = f": {outcome['failure']}" if outcome.get("failure") else ""
        return f"FAILED ({exit_}stop_reason {outcome['stop_reason']}{why}); see {outcome['log']}"
    if outcome["status"] == "interrupted":
        return "interrupted at a safe point" + ("" if code is None else f" (exit {code})") + "; last.ckpt resumes it"
    test_acc = "-" if outcome["test_acc"] is None else f"{outcome['test_acc']:.4f}"
    return f"{outcome['stop_reason']}, test_acc {test_acc} ({outcome['seconds']:.0f} s)"
