"""Ctrl-C or SIGTERM to a sweep or study: each run it started gets one SIGTERM, one started as the
signal came is stopped at once, and the handlers that were there before come back."""

import os
import signal
import subprocess
import sys

from src.signals import StoppedBySignal, StopOnSignal

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
