"""How the runs of a sweep or study share out the machine: how many at once, each one's threads and GPU.

At batch 32 this small CNN is bound by per-op overhead, not arithmetic, so several small runs at
once train more images per second in all than one large one; :func:`plan_packing` decides how
many, from the cores, the memory and the GPUs this process can see.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from src.errors import UserInputError
from src.paths import PROJECT_ROOT

Count = int | Literal["auto"]
log = logging.getLogger(__name__)

# What one run takes, estimated high so that packing never runs a machine out of memory:
HOST_GIB_PER_RUN = 1.5  # Python, torch, Lightning and CIFAR-10 as uint8, in the host's memory
GPU_GIB_PER_RUN = 2.0  # the CUDA context, the data on the GPU, weights, activations, 1,000-image eval batches

def _whole(value: object) -> int | None:
    """An int, or a string of digits (a flag's, a notebook's ``"42"``) as one; None for anything else."""
    number = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def whole_number(value: int | str, flag: str, minimum: int = 0) -> int:
    """A whole number of at least ``minimum`` (``--seeds``, ``--first_seed``)."""
    number = _whole(value)
    if number is None:
        raise UserInputError(f"{flag} takes a whole number, got {value!r}.")
    if number < minimum:
        raise UserInputError(f"{flag} must be at least {minimum}, got {number}.")
    return number


def count_or_auto(value: int | str, flag: str) -> Count:
    """``auto`` or a whole number of at least 1 (``--parallel``, ``--runs_per_device``)."""
    if value == "auto":
        return "auto"
    count = _whole(value)
    if count is None or count < 1:
        raise UserInputError(f"{flag} takes auto or a whole number of runs of at least 1, got {value!r}.")
    return count


@dataclass(frozen=True)
class Plan:
    """How a sweep shares out the machine; ``sweep.json`` records it."""

    runs: int  # at once
    threads: int | None  # each run's OMP_NUM_THREADS, which torch follows; None: torch's own default
    devices: tuple[str | None, ...]  # each slot's CUDA_VISIBLE_DEVICES; None: the sweep's own
    basis: str  # what set ``runs``: --parallel K, or the limit that bound auto

    def describe(self) -> str:
        """``4 at a time, 1 thread each (auto: 4 cores)``: the sweep's first line shows what was chosen."""
        threads = "torch's default threads" if self.threads is None else (
            f"{self.threads} thread{'s' if self.threads > 1 else ''} each")
        gpus = list(dict.fromkeys(d for d in self.devices if d is not None))
        where = f" on GPU{'s' if len(gpus) > 1 else ''} {','.join(gpus)}" if gpus else ""
        return f"{self.runs} at a time{where}, {threads} ({self.basis})"


def plan_packing(
    todo: int,
    parallel: Count,
    cpu_cores: int,
    memory_gib: float | None = None,
    gpus: Sequence[str] = (),
    gpu_memory_gib: Sequence[float] = (),
    runs_per_device: Count = "auto",
    user_threads: int | None = None,
) -> Plan:
    """Runs at once, threads per run and each slot's GPU, for ``todo`` runs on this hardware.

    At batch 32 this small CNN is bound by per-op overhead, not arithmetic: on CPUs one
    single-thread run per core trains more images per second in all than fewer runs with more
    threads each, and on a GPU one run mostly waits for the CPU that feeds it. So ``auto`` runs
    as many as the cores allow (one each, or ``user_threads`` each when OMP_NUM_THREADS is set),
    on GPUs ``runs_per_device`` per GPU (auto: the cores and ``GPU_GIB_PER_RUN`` allow), never
    more than ``todo`` or than the free host memory holds at ``HOST_GIB_PER_RUN``. An explicit
    ``parallel`` is taken as given (a single run keeps all GPUs, as before), with a warning when
    its runs want more cores than there are. ``gpu_memory_gib`` lines up with ``gpus``; the cores
    are shared out among the runs at once.
    """
    core_slots = max(1, cpu_cores // (user_threads or 1))
    if parallel != "auto":
        runs, basis = max(1, min(parallel, todo)), f"--parallel {parallel}"
        per_gpu = [-(-runs // len(gpus))] * len(gpus) if gpus and parallel > 1 else []
        if runs > core_slots:
            log.warning(
                "warning: --parallel %d runs %d at once%s on %d cores, more than they hold: the runs take turns on "
                "the cores, each the slower for it (--parallel auto fits the runs to the cores).",
                parallel, runs, f" at OMP_NUM_THREADS={user_threads}" if user_threads else "", cpu_cores,
            )
    else:
        cores = f"{cpu_cores} cores" + (f" at OMP_NUM_THREADS={user_threads}" if user_threads else "")
        on_gpus = f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''}"
        if not gpus:
            per_gpu, limits = [], [(core_slots, cores)]
        elif runs_per_device != "auto":
            per_gpu = [runs_per_device] * len(gpus)
            limits = [(sum(per_gpu), f"--runs_per_device {runs_per_device} on {on_gpus}")]
        else:
            by_cores = max(1, core_slots // len(gpus))
            per_gpu = [min(by_cores, max(1, int(memory // GPU_GIB_PER_RUN))) for memory in gpu_memory_gib]
            bound = cores if sum(per_gpu) == by_cores * len(gpus) else (
                f"{'+'.join(f'{memory:.1f}' for memory in gpu_memory_gib)} GiB of GPU memory")
            limits = [(sum(per_gpu), f"{bound} for {on_gpus}")]
        limits.append((todo, f"{todo} run{'s' if todo != 1 else ''} to do"))
        if memory_gib is not None:
            limits.append((int(memory_gib // HOST_GIB_PER_RUN), f"{memory_gib:.1f} GiB of free memory"))
        count, limit = min(limits, key=lambda pair: pair[0])
        runs, basis = max(1, count), f"auto: {limit}"
    # round robin over the GPUs, each up to its share
    devices = [gpu for level in range(max(per_gpu, default=0)) for gpu, share in zip(gpus, per_gpu) if share > level]
    threads = user_threads or (max(1, cpu_cores // runs) if runs > 1 else None)
    return Plan(runs, threads, tuple(devices[:runs]) if devices else (None,) * runs, basis)


def usable_cores() -> int:
    """The cores this process may run on (its affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def free_memory_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """The memory new processes can take without swapping (MemAvailable); None where unknown."""
    try:
        for line in meminfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "MemAvailable":
                return int(value.split()[0]) / 2**20  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def omp_threads() -> int | None:
    """OMP_NUM_THREADS as the user set it, which the sweep keeps; None when unset or not a count."""
    try:
        threads = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return threads if threads >= 1 else None


def visible_gpus() -> tuple[list[str], list[float]]:
    """The CUDA GPUs the runs can use, as CUDA_VISIBLE_DEVICES names them, and each one's memory in
    GiB: the total, since asking for the free memory would hold a CUDA context here all sweep long."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return [], []
    import torch  # check_run_args has loaded it already; --help never gets here

    count = torch.cuda.device_count()
    names = [d.strip() for d in visible.split(",")][:count] if visible is not None else [str(i) for i in range(count)]
    return names, [torch.cuda.get_device_properties(i).total_memory / 2**30 for i in range(len(names))]


def trains_on_cpu(configs: Iterable[dict[str, Any]]) -> bool:
    """Whether every run's resolved config sets ``trainer.accelerator: cpu``, so GPUs do not count."""
    return all(str((config.get("trainer") or {}).get("accelerator")) == "cpu" for config in configs)


def machine_plan(todo: int, parallel: Count, runs_per_device: Count = "auto", cpu_only: bool = False) -> Plan:
    """:func:`plan_packing` for this machine."""
    gpus, gpu_memory = ([], []) if cpu_only else visible_gpus()
    return plan_packing(todo, parallel, usable_cores(), free_memory_gib(), gpus, gpu_memory, runs_per_device,
                        omp_threads())


def run_environments(plan: Plan) -> queue.Queue[dict[str, str]]:
    """One environment per slot of ``plan``: its GPU (``CUDA_VISIBLE_DEVICES``) and the plan's
    threads per run, so that the runs at once share the cores instead of oversubscribing them."""
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    base = {**os.environ, "PYTHONPATH": python_path}  # the runs use this checkout's src, as the sweep does
    if plan.threads is not None:
        base["OMP_NUM_THREADS"] = str(plan.threads)
    slots: queue.Queue[dict[str, str]] = queue.Queue()
    for device in plan.devices:
        slots.put(base if device is None else {**base, "CUDA_VISIBLE_DEVICES": device})
    return slots
