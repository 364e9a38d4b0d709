"""How a run that cannot go on ends: stopped by a signal or by a file it could not write, in one
line that says so and gives the command that resumes it, and the shell's exit status."""

from __future__ import annotations

import shlex
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytorch_lightning import Trainer
from pytorch_lightning.utilities.exceptions import SIGTERMException

from src.checkpoint_files import last_checkpoint
from src.errors import CannotWrite, write_failure
from src.signals import RunInterrupted


def resume_command(args: list[str]) -> str:
    """The command that continues this run: the same arguments, with ``--ckpt_path last``."""
    kept = [a for i, a in enumerate(args) if not a.startswith("--ckpt_path") and (i == 0 or args[i - 1] != "--ckpt_path")]
    return shlex.join(["python", "-m", "src.cli", *kept, "--ckpt_path", "last"])


@contextmanager
def exits_resumably(args: list[str]) -> Iterator[None]:
    """A run stopped by Ctrl-C or SIGTERM, at any point, as one line with the command that resumes
    it (``args`` are the run's own) and exit status 128 + the signal's number."""
    try:
        yield
    except SIGTERMException:  # SIGTERM before our handler took over (during start-up)
        raise _interrupted(RunInterrupted(signal.SIGTERM, "while starting"), args) from None
    except RunInterrupted as interrupt:
        raise _interrupted(interrupt, args) from None
    except KeyboardInterrupt:
        raise _interrupted(RunInterrupted(signal.SIGINT, "before training started"), args) from None


def _interrupted(interrupt: RunInterrupted, args: list[str]) -> SystemExit:
    print(f"Interrupted by {interrupt}. Resume with: {resume_command(args)}", file=sys.stderr, flush=True)
    return SystemExit(interrupt.exit_code)


@contextmanager
def ctrl_c_twice(trainer: Trainer) -> Iterator[None]:
    """Lightning's answer to a second Ctrl-C, ``sys.exit(1)``, as the interruption it is."""
    try:
        yield
    except SystemExit as exit_:
        if trainer.interrupted:
            raise RunInterrupted(signal.SIGINT, "at once (Ctrl-C twice); last.ckpt holds the last safe point") from exit_
        raise


@contextmanager
def failed_writes(trainer: Trainer, given_args: list[str]) -> Iterator[None]:
    """A file the run could not write, however a library wrapped the error (Lightning's logger
    raises a ValueError, TensorBoard's writer thread raises it again at the next event), as one
    :class:`CannotWrite` naming the file, or else the run directory, and the resume command."""
    try:
        yield
    except Exception as err:
        logger = trainer.logger
        failure = write_failure(err, logger.log_dir if logger and logger.log_dir else trainer.default_root_dir)
        if failure is None:
            raise
        if logger and logger.log_dir and last_checkpoint(Path(logger.log_dir)):
            failure = CannotWrite(failure.path, failure.error, f"then resume the run with: {resume_command(given_args)}")
        raise failure from err
