"""What a pool's runs print: whole lines, however many threads print at once."""

import sys
import threading

from src.run_process import print_line


def test_lines_printed_by_threads_at_once_never_run_together(capsys):
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can, restored below
    try:
        threads = [threading.Thread(target=lambda name=name: [print_line(f"{name} line {i}") for i in range(20000)])
                   for name in ("a", "b", "c")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(0.005)
    printed = capsys.readouterr().out.splitlines()
    assert sorted(printed) == sorted(f"{name} line {i}" for name in ("a", "b", "c") for i in range(20000))
