"""Training keeps the memory it frees, instead of handing it back to the OS after every step.

glibc's malloc serves large blocks (the batch's activations, a layer's gradients: megabytes each)
from fresh ``mmap`` pages and gives back what it frees at the top of its heap, so every training
step faults those pages in again and the kernel zeroes each one: hundreds to thousands of page
faults a step for the fixed CNN on a CPU, as many as the order in which a loop allocates and frees
happens to cause (scripts/step_costs.py counts them). Raising the two thresholds once makes the
process reuse its freed blocks: the steps compute exactly the same, and the process holds on to
its peak memory, which a training run reaches in its first step anyway.
"""

from __future__ import annotations

import ctypes
import platform

# mallopt's parameter numbers, from glibc's <malloc.h>
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed: blocks below it come from the reusable heap
TRIM_THRESHOLD = 1 << 30  # free memory the heap keeps at its top before it gives any back


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to reuse freed blocks rather than return them to the OS; False where the C
    library is not glibc (macOS, musl), whose allocators do not need it or cannot be told."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
