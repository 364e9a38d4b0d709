"""Training keeps the memory it frees: after :func:`keep_freed_memory`, a step's worth of large
tensors allocated and freed again costs no fresh pages from the OS."""

import os
import platform
import subprocess
import sys

import pytest

from src.paths import PROJECT_ROOT

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# A CNN step's large tensors (a 4.7 MB weight-sized temporary, a 0.3 MB batch), allocated and freed
# 50 times after one untimed round; prints the minor page faults of the timed rounds.
STEPS = """
import resource, sys, torch
from src.allocator import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
weight = torch.randn(512, 2304)
def steps():
    for _ in range(50):
        batch = torch.randn(32, 2304)
        temporaries = [(batch @ weight.T).relu(), weight.sqrt(), weight * 0.5]
        del batch, temporaries
steps()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
steps()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


# glibc's starting mmap threshold (128 KiB), held there: left alone, glibc raises it as blocks are freed,
# and whether the default case faults would hang on the order of those frees
GLIBC_START = {"MALLOC_MMAP_THRESHOLD_": str(128 << 10)}


def page_faults(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True,
                         cwd=PROJECT_ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", **GLIBC_START})
    return int(run.stdout.split()[-1])


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    default, kept = page_faults("default"), page_faults("kept")
    assert default > 500, f"glibc's defaults were expected to fault pages in every step, got {default}"
    assert kept < default / 20
