"""Ctrl-C and SIGTERM: a run stops at its safe point, and the commands that run others (sweep,
search) stop their runs so, and with them when they die, ``kill -9`` included."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class StoppedBySignal(BaseException):
    """Work stopped at its safe point because it was asked to (Ctrl-C, a scheduler's SIGTERM): a
    sweep or study, whose every run stopped so too, or one run (:class:`RunInterrupted`).

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` swallows it.
    """

    def __init__(self, signum: int, where: str = "") -> None:
        super().__init__(f"{signal.Signals(signum).name} {where}".rstrip())
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


class RunInterrupted(StoppedBySignal):
    """One run stopped at a safe point; ``where`` says when (``at once (Ctrl-C twice)``, ``while starting``)."""


class StopOnSignal:
    """Ctrl-C or SIGTERM to a sweep or study: no run starts any more, and each running one gets one
    SIGTERM and stops at its next safe point, so that a sweep signalled alone (``kill <pid>``)
    leaves no run training unwatched. A run that heard the signal already (a terminal's Ctrl-C
    and a scheduler's SIGTERM reach every process) takes the copy as the same request. Python
    runs handlers in the main thread, so they are installed only from there."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._running: list[subprocess.Popen] = []
        self._lock = threading.Lock()  # the main thread takes it only in the handler: never waits on itself
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._stop) for signum in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def adopt(self, process: subprocess.Popen) -> None:
        """A run's process, just started; one started as the signal came is stopped at once."""
        with self._lock:
            self._running.append(process)
            late = self.signum is not None
        if late:
            process.send_signal(signal.SIGTERM)

    def _stop(self, signum: int, frame: object) -> None:
        with self._lock:
            if self.signum is not None:
                return  # the runs have their SIGTERM already
            self.signum = signum
            running = list(self._running)
        for process in running:
            process.send_signal(signal.SIGTERM)  # a no-op for a process that has ended


def start_owned(command: Sequence[str], **popen_args: Any) -> subprocess.Popen:
    """Start ``command`` so that it gets SIGTERM (on which a run stops at its next safe point) when this
    process dies, even by ``kill -9``: Linux's parent-death signal; elsewhere it is started as it is.

    The signal comes when the *thread* that started the child ends, not the whole process, so the
    caller must start it from a thread that outlives it: one that waits for it, as
    :meth:`src.run_process.Run.execute` does. The signal is set by a small wrapper that then becomes the
    command (``exec``; the setting survives it, and the process keeps its id), not by Popen's
    ``preexec_fn``, which the docs call unsafe in a process with threads such as a sweep's.
    """
    if sys.platform != "linux":
        return subprocess.Popen(command, **popen_args)
    return subprocess.Popen([sys.executable, "-m", __name__, str(os.getpid()), *command], **popen_args)


def _become_owned(parent: int, command: list[str]) -> NoReturn:
    """``start_owned``'s wrapper: SIGTERM when ``parent`` dies, then ``exec`` the command."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the signal was set: nothing would stop this run any more
        raise SystemExit(128 + signal.SIGTERM)
    os.execvp(command[0], command)


if __name__ == "__main__":
    _become_owned(int(sys.argv[1]), sys.argv[2:])
