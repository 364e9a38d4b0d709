"""A SLURM job array as it is submitted: the flags of ``--launcher slurm``, each task's options, the
nodes and tasks one run spans, and the array's script, written and handed to ``sbatch``.

The script is written here, not by a submission library: a task's work is a command line, not a
Python function to pickle, and its requeue must wait for the run's own safe point
(:mod:`src.slurm_task`). :mod:`src.slurm` follows the array once it is submitted. See
docs/beyond-one-machine.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from src.errors import UserInputError
from src.files import write_atomic
from src.packing import count_or_auto
from src.paths import PROJECT_ROOT

SLURM_DIR = "slurm"  # in a sweep's or study's directory: each array's script, its tasks and their output
WARNING_S = 120  # seconds before the time limit that a run is told to stop (--signal=TERM@...)
RETRIES = 2  # a failed run is started again this many times in its task


@dataclass(frozen=True)
class SlurmOptions:
    """What each array task asks SLURM for, from the command's flags; None: the cluster's default."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None  # SLURM's formats: minutes, H:MM:SS, D-HH:MM:SS
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    mem: str | None = None  # per node, SLURM's format: 8G
    throttle: int | None = None  # tasks running at once (--array=0-N%throttle)
    warning: int = WARNING_S
    retries: int = RETRIES
    sbatch: tuple[str, ...] = ()  # more sbatch options, as given

    def directives(self, nodes: int = 1, tasks_per_node: int = 1) -> list[str]:
        """The ``#SBATCH`` lines of these options, for a run across ``nodes`` × ``tasks_per_node`` tasks.
        A run of several tasks asks for its GPUs per node (``--gres``), as Lightning's SLURM setup
        does: each rank then sees its node's GPUs and takes its own by its local rank, where
        ``--gpus-per-task`` would show it one GPU only, at an index Lightning does not use."""
        gpus = {"gpus-per-task": self.gpus_per_task or None} if tasks_per_node == 1 else \
            {"gres": f"gpu:{self.gpus_per_task * tasks_per_node}" if self.gpus_per_task else None}
        given = {"partition": self.partition, "account": self.account, "qos": self.qos, "time": self.time,
                 "mem": self.mem, **gpus}
        lines = [f"--nodes={nodes}", f"--ntasks-per-node={tasks_per_node}", f"--cpus-per-task={self.cpus_per_task}",
                 *[f"--{key}={value}" for key, value in given.items() if value is not None],
                 "--requeue", f"--signal=TERM@{self.warning}", "--open-mode=append"]
        return [f"#SBATCH {shlex.quote(line)}" for line in lines]


def add_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """The flags of ``--launcher slurm``, shared by the sweep and the search; ``what``: each task's work."""
    group = parser.add_argument_group("SLURM (with --launcher slurm: one job array, one task per " + what + ")")
    group.add_argument("--launcher", choices=("local", "slurm"), default="local",
                       help="local: this machine's processes (default); slurm: a SLURM job array")
    group.add_argument("--wait", type=_yes_no, default=True, metavar="true|false",
                       help="with slurm: wait for the tasks and report each as it ends (default true), or return "
                       "once the array is submitted")
    group.add_argument("--partition", help="the partition (default: the cluster's default)")
    group.add_argument("--account", help="the account to charge (default: yours)")
    group.add_argument("--qos", help="the quality of service (default: the cluster's)")
    group.add_argument("--time", help="each task's time limit, e.g. 4:00:00; a run that reaches it stops at a safe "
                       "point and is requeued to resume (default: the partition's limit)")
    group.add_argument("--cpus_per_task", type=int, default=1, help="CPUs of each task, its runs' threads (default 1)")
    group.add_argument("--gpus_per_task", type=int, default=0, help="GPUs of each task (default 0)")
    group.add_argument("--mem", help="memory of each task's node, e.g. 8G (default: the cluster's)")
    group.add_argument("--signal_warning", type=int, default=WARNING_S, metavar="SECONDS",
                       help=f"how long before the time limit a run is told to stop (default {WARNING_S})")
    group.add_argument("--retries", type=int, default=RETRIES,
                       help=f"times a failed run is started again in its task (default {RETRIES}); a diverged or "
                       "stopped run is not")
    group.add_argument("--sbatch", default="", metavar="'OPTIONS'",
                       help="more sbatch options, quoted as one, e.g. '--constraint=a100 --exclusive'")


def _yes_no(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"takes true or false, got {value!r}")
    return value.lower() == "true"


def options_from(args: argparse.Namespace) -> SlurmOptions | None:
    """The :class:`SlurmOptions` of a command's flags, its ``--parallel K`` the array's throttle;
    None for ``--launcher local``, which refuses SLURM's flags rather than ignore them."""
    defaults = {"wait": True, "partition": None, "account": None, "qos": None, "time": None, "cpus_per_task": 1,
                "gpus_per_task": 0, "mem": None, "signal_warning": WARNING_S, "retries": RETRIES, "sbatch": ""}
    if args.launcher == "local":
        given = [flag for flag, default in defaults.items() if getattr(args, flag) != default]
        if given:
            raise UserInputError(f"--{given[0]} is for --launcher slurm (a SLURM job array); this runs on this "
                                 "machine (--launcher local). Add --launcher slurm, or leave it out.")
        return None
    for flag in ("cpus_per_task", "gpus_per_task", "retries", "signal_warning"):
        least = 1 if flag == "cpus_per_task" else 0
        if getattr(args, flag) < least:
            raise UserInputError(f"--{flag} must be at least {least}, got {getattr(args, flag)}.")
    try:
        extra = tuple(shlex.split(args.sbatch))
    except ValueError as err:
        raise UserInputError(f"--sbatch {args.sbatch!r} cannot be split as a shell would ({err}).") from None
    throttle = count_or_auto(args.parallel, "--parallel")
    return SlurmOptions(args.partition, args.account, args.qos, args.time, args.cpus_per_task, args.gpus_per_task,
                        args.mem, None if throttle == "auto" else throttle, args.signal_warning, args.retries, extra)


def job_script(name: str, count: int, tasks_file: Path, options: SlurmOptions, nodes: int = 1,
               tasks_per_node: int = 1) -> str:
    """The sbatch script of an array of ``count`` tasks, each the task of ``tasks_file`` at its index."""
    throttle = f"%{options.throttle}" if options.throttle else ""
    output = tasks_file.parent / "%A_%a.out"
    return "\n".join([
        "#!/bin/bash",
        f"#SBATCH --job-name={shlex.quote(name)}",
        f"#SBATCH --array=0-{count - 1}{throttle}",
        f"#SBATCH --output={shlex.quote(str(output))}",
        *options.directives(nodes, tasks_per_node),
        "# written by hparam-lab (src/slurm.py); submitted by src.sweep or src.search",
        f"export PYTHONPATH={shlex.quote(str(PROJECT_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}",
        f"exec {shlex.quote(sys.executable)} -m src.slurm_task {shlex.quote(str(tasks_file))}",
        "",
    ])


def submit_array(directory: Path, name: str, tasks: list[dict[str, Any]], options: SlurmOptions,
                 env: dict[str, str] | None = None, nodes: int = 1, tasks_per_node: int = 1) -> str:
    """Write the array's tasks and script into ``directory`` and submit it; returns its job id.
    The tasks get this process's environment plus ``env`` (sbatch's default ``--export=ALL``), so
    that nothing secret (a database's password) is written to a file."""
    stem = directory / datetime.now().strftime("array-%Y%m%d-%H%M%S-%f")
    tasks_file = stem.with_suffix(".json")
    write_atomic(tasks_file, json.dumps({"retries": options.retries, "tasks": tasks}, indent=1) + "\n")
    script = stem.with_suffix(".sbatch")
    write_atomic(script, job_script(name, len(tasks), tasks_file, options, nodes, tasks_per_node))
    command = ["sbatch", "--parsable", *options.sbatch, str(script)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UserInputError(f"Cannot submit to SLURM ({err}). --launcher slurm needs SLURM's sbatch on this "
                             "machine (a cluster's login node); without one, use --launcher local.") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).splitlines()
        reason = "; ".join(" ".join(line.replace("sbatch: error:", "").split()) for line in said if line.strip())
        raise UserInputError(f"SLURM refused the job array ({reason}); nothing was submitted. Check the SLURM flags "
                             f"(--partition, --account, --qos, --time, --mem, --sbatch); the script is {script}.")
    return done.stdout.strip().split(";")[0]


def run_layout(configs: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Nodes and tasks per node for each run of these resolved configs: Lightning's
    ``trainer.num_nodes`` and ``trainer.devices`` (:func:`device_count`), one process per device,
    which ``srun`` starts and Lightning's ``SLURMEnvironment`` ranks. One array has one layout."""
    layouts = set()
    for config in configs:
        trainer = config.get("trainer") or {}
        layouts.add((int(trainer.get("num_nodes") or 1), device_count(trainer.get("devices"))))
    if len(layouts) > 1:
        raise UserInputError(
            "With --launcher slurm every run of one array takes the same nodes and tasks, but these runs ask for "
            f"different ones ((trainer.num_nodes, trainer.devices): {sorted(layouts)}). Give --trainer.num_nodes "
            "and --trainer.devices for all of them, or submit them as separate sweeps."
        )
    return layouts.pop() if layouts else (1, 1)


def device_count(devices: Any) -> int:
    """The processes per node of Lightning's ``trainer.devices``: a count (``2``, or ``"2"`` as the
    command line gives it) or a list of devices (``[0, 1]``, ``"0,1"``); 1 for ``auto`` and ``-1``,
    which leave the count to the machine, so SLURM cannot be asked for it."""
    if isinstance(devices, str):
        text = devices.strip()
        devices = int(text) if text.isdigit() else [d for d in text.split(",") if d.strip()] if "," in text else None
    if isinstance(devices, (list, tuple)):
        return max(1, len(devices))
    return devices if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0 else 1
