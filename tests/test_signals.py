"""Ctrl-C or SIGTERM to a sweep or study: each run it started gets one SIGTERM, one started as the
signal came is stopped at once, and the handlers that were there before come back; a sweep killed
outright leaves no run behind."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.signals import StoppedBySignal, StopOnSignal

ROOT = Path(__file__).resolve().parent.parent

COUNTS_SIGTERMS = """
import signal, sys, time
heard = []
signal.signal(signal.SIGTERM, lambda signum, frame: heard.append(signum))
print("ready", flush=True)
time.sleep(2)
print(len(heard), flush=True)
"""


def start(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_each_running_run_gets_one_sigterm_however_often_the_signal_comes():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopOnSignal() as stop:
        run = start(COUNTS_SIGTERMS)
        stop.adopt(run)
        assert run.stdout.readline() == "ready\n"
        os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's SIGTERM, then a Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)
        assert run.communicate(timeout=30)[0].strip() == "1"
    assert stop.signum == signal.SIGTERM  # the first signal is the one the sweep reports
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_run_started_as_the_signal_came_is_stopped_at_once():
    with StopOnSignal() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signum == signal.SIGINT  # heard before the run starts: the late path, not the handler's
        late = start("import time; time.sleep(30)")
        stop.adopt(late)
        assert late.wait(timeout=10) == -signal.SIGTERM
    assert StoppedBySignal(stop.signum).exit_code == 130  # the shell's code for Ctrl-C


SAYS_HOW_IT_ENDED = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda signum, frame: (open(sys.argv[1], "w").write("SIGTERM"), sys.exit(0)))
print("ready", flush=True)
time.sleep(60)
"""
# a sweep as far as its children see it: a worker thread starts one and waits for it
STARTS_FROM_A_THREAD = """
import sys, threading
from src.signals import start_owned
threading.Thread(target=lambda: start_owned([sys.executable, "-c", sys.argv[1], sys.argv[2]]).wait()).start()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_child_started_from_a_thread_gets_sigterm_when_its_parent_is_killed_outright(tmp_path):
    heard = tmp_path / "heard"
    parent = subprocess.Popen([sys.executable, "-c", STARTS_FROM_A_THREAD, SAYS_HOW_IT_ENDED, str(heard)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert parent.stdout.readline() == "ready\n"  # the child's, through the stdout it inherited
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 60
        while not (heard.is_file() and heard.read_text()):  # created first, written a moment later
            assert time.monotonic() < deadline, "the child lives on without its parent"
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
    assert heard.read_text() == "SIGTERM"  # what stops a run at its next safe point
