"""Training throughput of the fixed CNN at batch 32: the project's `fit` path against a plain loop.

For each precision it trains a fixed number of steps (after warm-up steps that are not
timed) through

* ``fit``: the project's own path, ``python -m src.cli fit`` with ``configs/base.yaml``
  (its callbacks, logger and progress bar) on in-memory data,
* ``trainer``: the project's module and data under a bare ``pl.Trainer`` (no callbacks, logger
  or progress bar): the floor Lightning's own loop sets for ``fit``,
* ``plain``: a minimal PyTorch loop over the same model, optimizer, decay and data layout,
* ``fit fast`` and ``plain fast``: the same two with the fastest options that keep the training
  semantics, byte-mask dropout and the compiled optimizer update (``fit --fast true`` at the
  precision measured),
* ``keras`` (with ``--peer keras``, CPU only): the same network, optimizer, decay and data trained
  by Keras 3 on TensorFlow through ``model.fit`` (scripts/keras_peer.py, in a subprocess of its
  own so the two frameworks never share a process or thread pools; ``pip install -e ".[peer]"``),

and measures the machine's matrix-multiply rate, from which the arithmetic floor follows:
the model's FLOPs per image (forward + backward) divided by that rate.

Each measurement runs in a python process of its own (``--measure``), so none inherits what an
earlier one left behind: ``torch.compile``'s caches (a process that compiles the update of a new
optimizer for every measurement recompiles each time and, past dynamo's cache limit, falls back to
eager), the allocator's state, warm kernels. Rounds interleave the paths, so a drift in the
machine's speed hits every path alike, and each path's median over the rounds is reported.

Two clocks: ``--clock wall`` (the default) is what a user waits for, the right clock on an idle
machine at any thread count; ``--clock cpu`` is the measuring process's CPU time, which other
processes on the cores do not inflate, the right clock on a busy machine. CPU time adds up every
thread's time (OpenMP's spin-waits included), so it needs ``--threads 1``: the setting of a packed
grid, one thread per run.

    python scripts/benchmark.py                      # CPU; and the GPU too when there is one
    python scripts/benchmark.py --steps 300 --json benchmark.json
    python scripts/benchmark.py --clock cpu --threads 1      # a busy machine: one thread, CPU time
    python scripts/benchmark.py --peer keras --peer_python /path/to/venv-with-tensorflow/bin/python

Random images stand in for CIFAR-10: speed does not depend on pixel values.

With ``--sweep`` it times a whole ``python -m src.sweep`` instead, one run at a time against
``--parallel auto``: what packing runs onto the machine gains a user.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's src, installed or not

from keras_peer import random_arrays  # noqa: E402 - beside this script, first on sys.path when it runs
from src.allocator import keep_freed_memory  # noqa: E402
from src.cli import HparamLabCLI  # noqa: E402
from src.data.batches import to_float_nchw  # noqa: E402
from src.data.cifar10 import CIFAR10DataModule  # noqa: E402
from src.data.cache import CACHE_NAME, write_cache  # noqa: E402
from src.data.splits import Split  # noqa: E402
from src.doc_tables import PERFORMANCE_PAGE, update_page  # noqa: E402
from src.errors import UserInputError, exit_on_user_error  # noqa: E402
from src.fast import fast_gain  # noqa: E402
from src.model import ByteMaskDropout, KerasCifarCNN  # noqa: E402
from src.module import CifarClassifier  # noqa: E402
from src.optim import KerasRMSprop, keras_decay  # noqa: E402
from src.results import machine  # noqa: E402
from src.packing import usable_cores  # noqa: E402
from src.sweep_record import SWEEP_FILE  # noqa: E402

BATCH = 32
EPOCH_IMAGES = 45_000
IMAGES, SEED = 16_000, 0  # the random training images every path trains on
AUTOCAST = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
# the vector width float32 runs at, and what CPU bf16 and int8 speed hinge on
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")
BENCHMARK_TABLE = "benchmark-table"
FAST = " fast"  # with byte-mask dropout and the compiled update (--model.fast_dropout, --model.compile_update)
FAST_FLAGS = ["--fast=true"]  # the switch turns both on; the precision fit_path gives is kept
# oneDNN's and ATen's instruction-set caps: a CPU with avx512_bf16 measures as one without it
# (ONEDNN_MAX_CPU_ISA=AVX512_CORE: AVX-512 without bf16 or VNNI; add ATEN_CPU_CAPABILITY=avx2 for AVX2 only)
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
PEER_SCRIPT = Path(__file__).resolve().parent / "keras_peer.py"
ROOT = Path(__file__).resolve().parent.parent
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
PEER_ENV = {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}  # the peer is TensorFlow on the CPU


def random_split(count: int, seed: int) -> Split:
    return Split(*random_arrays(count, seed))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int = 2048, seconds: float = 2.0) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    sync(device)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
        sync(device)
    return 2 * size**3 * runs / (time.perf_counter() - start) / 1e12


def flops_per_image() -> float:
    model = KerasCifarCNN()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(torch.rand(BATCH, 3, 32, 32)), torch.zeros(BATCH, dtype=torch.long)).backward()
    return counter.get_total_flops() / BATCH


class PlainLoop:
    """The shortest honest loop: slice, scale, forward, loss, backward, step; run a chunk of steps at a time
    (scripts/step_costs.py alternates chunks of it with a Trainer's).

    ``compile_network`` and ``compile_step`` put the network, or the optimizer's update, through
    ``torch.compile`` (compiled in the first steps run).
    """

    def __init__(self, device: torch.device, precision: str, data: Split, fast_dropout: bool = False,
                 compile_network: bool = False, compile_step: bool = False) -> None:
        torch.manual_seed(0)
        model = KerasCifarCNN(dropout=ByteMaskDropout if fast_dropout else torch.nn.Dropout)
        self.model = model.to(device, memory_format=torch.channels_last)
        if compile_network:
            self.model.compile()
        # a tensor lr lets the decay change it without recompiling the update
        self.optimizer = KerasRMSprop(self.model.parameters(), lr=torch.tensor(1e-4) if compile_step else 1e-4)
        self.decay = keras_decay(self.optimizer, 1e-6)
        self.update = torch.compile(self.optimizer.step) if compile_step else self.optimizer.step  # the decay's wrap
        self.images, self.labels = torch.from_numpy(data.images).to(device), torch.from_numpy(data.labels).to(device)
        self.order = torch.randperm(len(self.labels), device=device)
        dtype = AUTOCAST[precision]
        self.autocast = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
        self.steps_done = 0

    def run(self, steps: int) -> None:
        for step in range(self.steps_done, self.steps_done + steps):
            index = self.order[(step * BATCH) % (len(self.order) - BATCH) :][:BATCH]
            batch = to_float_nchw(self.images[index])
            with self.autocast:
                loss = F.cross_entropy(self.model(batch), self.labels[index])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.update()
            self.decay.step()
        self.steps_done += steps


def plain_loop(device: torch.device, precision: str, steps: int, warmup: int, data: Split,
               fast_dropout: bool = False, compile_network: bool = False, compile_step: bool = False,
               keep_memory: bool = False, clock: Callable[[], float] = time.perf_counter) -> float:
    """Images/s of :class:`PlainLoop`; ``keep_memory`` gives it the allocator setting ``fit`` runs with
    (:mod:`src.allocator`); ``clock`` times the steps."""
    if keep_memory:
        keep_freed_memory()
    loop = PlainLoop(device, precision, data, fast_dropout, compile_network, compile_step)
    loop.run(warmup)
    sync(device)
    start = clock()
    loop.run(steps)
    sync(device)
    return steps * BATCH / (clock() - start)


def sweep_rate(parallel: str, runs: int, steps: int, data_dir: Path, sweep_dir: Path) -> dict:
    """Trained images per second of wall time of a whole ``python -m src.sweep`` of ``runs`` runs
    of ``steps`` steps: start-up, evaluation and all, which is what a user waits for."""
    command = [
        sys.executable, "-m", "src.sweep", "--configs=rmsprop_baseline", f"--seeds={runs}", f"--parallel={parallel}",
        f"--sweep_dir={sweep_dir}", f"--data.data_dir={data_dir}", "--data.val_split=1000",
        "--trainer.max_epochs=1", f"--trainer.limit_train_batches={steps}",  # an epoch ends in validation
    ]
    start = time.perf_counter()
    sweep = subprocess.run(command, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if sweep.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with status {sweep.returncode}:\n{sweep.stdout[-4000:]}")
    plan = json.loads((sweep_dir / SWEEP_FILE).read_text())["plan"]
    return dict(parallel=parallel, plan=plan["summary"], runs=runs, steps=steps, wall_s=seconds,
                images_per_s=runs * steps * BATCH / seconds)


def sweep_benchmark(steps: int, json_path: str | None) -> None:
    """The same sweep of 2 x cores runs run one at a time and packed (``--parallel auto``), on random
    images cached where the runs find CIFAR-10; prints each one's aggregate images/s and the ratio."""
    runs = 2 * usable_cores()
    with tempfile.TemporaryDirectory() as work:
        data_dir = Path(work) / "data"
        write_cache(data_dir / CACHE_NAME, {"train": random_split(16_000, 0), "test": random_split(1000, 1)},
                    "torchvision")  # the origin of a run given no --data.source
        rows = [sweep_rate(parallel, runs, steps, data_dir, Path(work) / f"sweep_{parallel}")
                for parallel in ("1", "auto")]
    report = {"machine": describe_machine(), "torch": torch.__version__, "batch": BATCH, "sweep": rows,
              "packed_over_serial": rows[1]["images_per_s"] / rows[0]["images_per_s"]}
    print(f"\n{format_sweep(report)}\n\n{json.dumps(report)}")
    if json_path:
        with open(json_path, "w") as out:
            json.dump(report, out, indent=2)


def format_sweep(report: dict[str, Any]) -> str:
    """A ``--sweep`` result as the line that says what ran, its table and the packed/serial ratio."""
    first = report["sweep"][0]
    lines = [f"a sweep of {first['runs']} runs x {first['steps']} steps at batch {report['batch']}, wall time "
             "from start to end, start-up and evaluation included", "",
             "| --parallel | plan | wall s | images/s |", "| --- | --- | ---: | ---: |"]
    lines += [f"| {row['parallel']} | {row['plan']} | {row['wall_s']:.1f} | {row['images_per_s']:.0f} |"
              for row in report["sweep"]]
    return "\n".join(lines + ["", f"packed / one at a time: {report['packed_over_serial']:.2f}"])


class StepTimer(pl.Callback):
    """Times the ``steps`` training steps after the ``warmup`` ones, by ``clock``: from the start of the
    first to the end of the last, so the end of the epoch that stopping at ``max_steps`` brings (a
    checkpoint save) is not counted against a path that the plain loop does not have."""

    def __init__(self, warmup: int, steps: int, clock: Callable[[], float] = time.perf_counter) -> None:
        self.warmup, self.steps, self.clock, self.start, self.end = warmup, steps, clock, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.warmup:
            sync(pl_module.device)
            self.start = self.clock()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.warmup + self.steps:
            sync(pl_module.device)
            self.end = self.clock()


@contextmanager
def project_fit(device: torch.device, precision: str, max_steps: int, extra: list[str]) -> Iterator[HparamLabCLI]:
    """The project's ``fit``, configured by its CLI as ``configs/rmsprop_baseline.yaml`` (callbacks, logger,
    progress bar), stopping at ``max_steps`` and logging into a temporary folder, not yet trained."""
    with tempfile.TemporaryDirectory() as runs:
        yield HparamLabCLI(
            [
                "--config=configs/rmsprop_baseline.yaml", f"--trainer.precision={precision}",
                f"--trainer.accelerator={device.type}", "--trainer.devices=1", f"--trainer.max_steps={max_steps}",
                "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0", "--trainer.enable_model_summary=false",
                "--early_stopping.strict=false",
                f"--trainer.logger.init_args.save_dir={runs}", "--test_after_fit=false", *extra,
            ],
            run=False,
        )


def fit_path(device: torch.device, precision: str, steps: int, warmup: int, data: Split, extra: list[str],
             keep_memory: bool = True, clock: Callable[[], float] = time.perf_counter) -> float:
    """Images/s through :func:`project_fit` (``keep_memory`` False: without the allocator setting ``fit``
    trains with)."""
    timer = StepTimer(warmup, steps, clock)
    with project_fit(device, precision, steps + warmup, extra) as cli:
        cli.trainer.callbacks.append(timer)
        if keep_memory:
            keep_freed_memory()  # as HparamLabCLI.fit does before it trains
        cli.trainer.fit(cli.model, datamodule=baseline_data(data))
    return steps * BATCH / (timer.end - timer.start)


def bare_trainer(device: torch.device, precision: str, max_steps: int, callbacks: list[pl.Callback]) -> pl.Trainer:
    """A Trainer with nothing of its own (no logger, progress bar, checkpoints or summary) but ``callbacks``."""
    return pl.Trainer(accelerator=device.type, devices=1, precision=precision, max_steps=max_steps,
                      limit_val_batches=0, num_sanity_val_steps=0, logger=False, callbacks=callbacks,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


def baseline_module() -> CifarClassifier:
    """The project's module with the plain loop's optimizer and decay (the notebook's baseline)."""
    torch.manual_seed(0)
    return CifarClassifier(optimizer=partial(KerasRMSprop, lr=1e-4), decay=1e-6)


def baseline_data(data: Split) -> CIFAR10DataModule:
    return CIFAR10DataModule.from_arrays(data, random_split(1000, 1), val_split=1000)


def trainer_floor(device: torch.device, precision: str, steps: int, warmup: int, data: Split,
                  clock: Callable[[], float] = time.perf_counter) -> float:
    """Images/s of the project's module and data under a :func:`bare_trainer` and the allocator setting
    ``fit`` runs with: what Lightning's own loop costs, apart from the project's."""
    keep_freed_memory()
    timer = StepTimer(warmup, steps, clock)
    bare_trainer(device, precision, steps + warmup, [timer]).fit(baseline_module(), datamodule=baseline_data(data))
    return steps * BATCH / (timer.end - timer.start)


# Each path by its label, called as (device, precision, steps, warmup, data, clock=...) -> images/s.
# The first five make the benchmark's table; the compiled ones are scripts/step_costs.py's.
PATHS: dict[str, Callable[..., float]] = {
    "fit": partial(fit_path, extra=[]),
    f"fit{FAST}": partial(fit_path, extra=FAST_FLAGS),
    "trainer": trainer_floor,
    "plain": plain_loop,
    f"plain{FAST}": partial(plain_loop, fast_dropout=True, compile_step=True),
    "plain, compiled update": partial(plain_loop, compile_step=True),
    "plain, compiled network": partial(plain_loop, compile_network=True),
    "plain, freed memory kept": partial(plain_loop, keep_memory=True),
    "fit, default allocator": partial(fit_path, extra=[], keep_memory=False),
}
TABLE_PATHS = ("fit", f"fit{FAST}", "trainer", "plain", f"plain{FAST}")


def measure(path: str, device: str, precision: str, steps: int, warmup: int, clock: str = "wall",
            threads: int | None = None, count_calls: bool = False) -> dict[str, Any]:
    """``path``'s images/s and page faults per step, measured in a fresh python process (this script's
    ``--measure``); with ``count_calls``, also the Python calls per step (:class:`CallCounter`), which
    slow the steps they count: time those in another measurement."""
    command = [sys.executable, str(Path(__file__).resolve()), f"--measure={path}", f"--devices={device}",
               f"--precision={precision}", f"--steps={steps}", f"--warmup={warmup}", f"--clock={clock}",
               *([f"--threads={threads}"] if threads else []), *(["--count_calls"] if count_calls else [])]
    return measured_apart(command)


def measured_apart(command: list[str]) -> dict[str, Any]:
    """What a measuring process of its own (``command``) prints as its last line, a JSON object."""
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with status {run.returncode}:\n{run.stderr[-4000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


class CallCounter:
    """The function calls Python makes while it is on, its own and the C functions it calls (torch's ops
    among them): how much interpreted work a loop does per step, in a count that a busy machine does not
    change, where a few percent of time cannot be told from the machine's drift."""

    def __init__(self) -> None:
        self.calls = 0

    def _count(self, frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            self.calls += 1

    def toggle(self) -> None:
        """On if off, off if on; this thread only (the training loop's)."""
        sys.setprofile(self._count if sys.getprofile() is None else None)


def measure_here(path: str, device: str, precision: str, steps: int, warmup: int, clock: str,
                 count_calls: bool = False) -> None:
    """``--measure``: one measurement of ``path`` in this process, printed as a JSON line: images/s, the
    minor page faults per timed step (fresh pages the OS hands the allocator, a cost of their own) and,
    with ``count_calls``, the Python calls per step."""
    faults, counter = [], CallCounter()

    def read_clock() -> float:  # read when the timed steps start and when they end
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
        if count_calls:
            counter.toggle()
        return CLOCKS[clock]()

    rate = PATHS[path](torch.device(device), precision, steps, warmup, random_split(IMAGES, SEED), clock=read_clock)
    measured = {"path": path, "device": device, "precision": precision, "images_per_s": rate,
                "page_faults_per_step": (faults[-1] - faults[0]) / steps}
    if count_calls:
        measured["python_calls_per_step"] = counter.calls / steps
    print(json.dumps(measured))


def run_peer(python: str, *args: str) -> dict[str, Any]:
    """The Keras peer's JSON line, run by ``python`` in a process of its own; a failure to start it
    or a missing TensorFlow is a :class:`UserInputError` (the peer's own ``error:`` line)."""
    try:
        run = subprocess.run([python, str(PEER_SCRIPT), *args, "--json=-"], capture_output=True, text=True,
                             env={**os.environ, **PEER_ENV})
    except OSError as err:
        raise UserInputError(f"--peer_python {python} cannot run: {err}") from None
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    if run.returncode == 2 and errors:
        raise UserInputError(errors[-1].removeprefix("error: "))
    if run.returncode != 0:
        raise RuntimeError(f"the Keras peer ({python} {PEER_SCRIPT.name} {' '.join(args)}) failed with status "
                           f"{run.returncode}:\n{run.stderr[-4000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def describe_machine(peer: dict[str, Any] | None = None, cpuinfo: str | None = None) -> dict[str, Any]:
    """Where the numbers came from: CPU, cores, the flags that decide bf16 speed (and any cap on the
    instruction sets the libraries use), and each framework's version and threads (torch's defaults;
    TensorFlow's 0 means its default, one per core)."""
    described = {**machine(CPU_FLAGS, cpuinfo), "torch": torch.__version__,
                 "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
                 "isa_caps": {name: os.environ[name] for name in ISA_CAPS if name in os.environ}}
    if peer:
        described.update({key: peer[key] for key in ("tensorflow", "keras", "tf_intra_op_threads", "tf_inter_op_threads")})
    return described


def machine_line(described: dict[str, Any]) -> str:
    """``describe_machine``'s dictionary as the one line printed above the table."""
    flags = ", ".join(described["cpu_flags"]) or "none of " + ", ".join(CPU_FLAGS)
    line = f"{described['cpu']}, {described['cpu_count']} cores, flags: {flags}"
    if described.get("isa_caps"):
        caps = ", ".join(f"{name}={value}" for name, value in described["isa_caps"].items())
        line += f", measured with the instruction sets capped: {caps}"
    line += (f"; torch {described['torch']} ({described['torch_threads']} threads, "
             f"{described['torch_interop_threads']} inter-op)")
    if "tensorflow" in described:
        threads = [described["tf_intra_op_threads"], described["tf_inter_op_threads"]]
        line += (f"; TensorFlow {described['tensorflow']} + Keras {described['keras']} (intra-op/inter-op threads: "
                 + "/".join(str(t or "default") for t in threads) + ")")
    return line


def fit_over_keras(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per device and precision, the project's ``fit`` images/s over the Keras peer's: above 1, ``fit`` is faster."""
    rate = {(r["device"], r["precision"], r["path"]): r["images_per_s"] for r in rows}
    return {f"{device} {precision}{fit.removeprefix('fit')}": rate[device, precision, fit] / keras
            for (device, precision, path), keras in rate.items() if path == "keras"
            for fit in ("fit", f"fit{FAST}") if (device, precision, fit) in rate}


def format_table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of ``rows``, each against the plain loop at its device and precision,
    then a line per precision with ``fit`` / ``keras`` when the peer ran."""
    lines = ["| device | precision | path | images/s | vs plain | epoch (45k) s | matmul TFLOP/s | floor images/s |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        same_loop = "plain" + (FAST if row["path"].endswith(FAST) else "")
        plain = next(r for r in rows if (r["device"], r["precision"], r["path"]) == (row["device"], row["precision"], same_loop))
        lines.append(f"| {row['device']} | {row['precision']} | {row['path']} | {row['images_per_s']:.0f} | "
                     f"{row['images_per_s'] / plain['images_per_s']:.2f} | {row['epoch_s']:.1f} | "
                     f"{row['matmul_tflops']:.2f} | {row['floor_images_per_s']:.0f} |")
    ratios = fit_over_keras(rows)
    if ratios:
        lines.append("")
        lines += [f"fit / keras, {where}: {ratio:.2f}" for where, ratio in ratios.items()]
    return "\n".join(lines)


def _step_costs_table(costs: dict[tuple[str, str], float], faults: dict[tuple[str, str], float],
                      calls: dict[tuple[str, str], float]) -> str:
    """Markdown: a row per path, columns per precision: ms per step, against ``plain``, and page faults
    and Python calls per step where the result has them."""
    precisions = list(dict.fromkeys(precision for precision, _ in costs))
    names = list(dict.fromkeys(name for _, name in costs))
    per_precision = ["ms/step", "vs plain", *(["faults/step"] if faults else []), *(["calls/step"] if calls else [])]
    lines = ["| path | " + " | ".join(f"{p} {column}" if column == "ms/step" else column
                                     for p in precisions for column in per_precision) + " |",
             "| --- |" + " ---: |" * len(per_precision) * len(precisions)]
    for name in names:
        cells = []
        for precision in precisions:
            cost, plain = costs.get((precision, name)), costs.get((precision, "plain"))
            cells += [f"{cost:.2f}", f"{cost - plain:+.2f}"] if cost is not None and plain else ["", ""]
            for counts in (faults, calls):
                if counts:
                    cells.append(f"{counts[precision, name]:.0f}" if (precision, name) in counts else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_step_costs(report: dict[str, Any]) -> str:
    """A scripts/step_costs.py result: what ran, a row per path with columns per precision (each
    also against ``plain``, and the page faults and Python calls per step where recorded), and the optimizer's
    update alone."""
    costs = {(row["precision"], row["path"]): row["ms_per_step"] for row in report["rows"]}
    faults, calls = ({(row["precision"], row["path"]): row[key] for row in report["rows"] if key in row}
                     for key in ("page_faults_per_step", "python_calls_per_step"))
    update = report["update_ms"]
    statistic = report.get("statistic", "least")  # the first results kept the least of the rounds
    return (f"one thread, CPU time per step, {statistic} of {report['repeats']} x {report['steps']} steps at batch "
            f"{report['batch']}\n\n{_step_costs_table(costs, faults, calls)}\n\nRMSprop's update alone, float32: "
            f"{update['eager']:.2f} ms eager, {update['compiled']:.2f} ms compiled" + _paired_line(report))


def _paired_line(report: dict[str, Any]) -> str:
    """Each path's speed against the plain loop's where the two took turns in one process."""
    rows = report.get("paired")
    if not rows:
        return ""
    each = "; ".join(f"`{row['path']}` {row['precision']} {row['speed_over_plain']:.2f} ({row['path_ms']:.2f} against "
                     f"{row['plain_ms']:.2f} ms per step)" for row in rows)
    return (f"\n\nTaking turns with the plain loop, {rows[0]['turn_steps']} steps each, in one process "
            f"({rows[0]['turns']} turns each), the speed over the plain loop's, median turn by turn: {each}")


def fast_line(report: dict[str, Any]) -> str:
    """The line on what ``--fast true`` gains over the default on the measured CPU (the factor a
    float32 run's hint quotes), with a blank line before it; empty where the result cannot say."""
    gain = fast_gain(report)
    return f"\n--fast true over the default (fit, 32-true): {gain[0]:.2f}x, in {gain[1]}\n" if gain else ""


def measured_how(report: dict[str, Any]) -> str:
    """``batch 32, median of 3 x 200 timed steps, CPU time``: what a saved result's images/s are
    (results saved before the median and the clock were recorded took the best, by wall clock)."""
    clock = {"wall": "wall-clock time", "cpu": "CPU time"}[report.get("clock", "wall")]
    return (f"batch {report['batch']}, {report.get('statistic', 'best')} of {report['repeats']} x {report['steps']} "
            f"timed steps, {clock}")


def performance_tables(saved: list[Path]) -> str:
    """The performance page's tables: for each saved ``--json`` result (of a benchmark, of a
    ``--sweep`` or of scripts/step_costs.py), its machine line and table."""
    parts = []
    for path in saved:
        report = json.loads(path.read_text())
        if report.get("kind") == "step_costs":
            parts.append(f"`{path.name}`: {machine_line(report['machine'])}; {format_step_costs(report)}\n")
        elif "sweep" in report:
            parts.append(f"`{path.name}`: {machine_line(report['machine'])}; {format_sweep(report)}\n")
        else:
            parts.append(f"`{path.name}`: {machine_line(report['machine'])}; {measured_how(report)}\n\n"
                         f"{format_table(report['rows'])}\n{fast_line(report)}")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per measurement")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved rounds, each path measured once per round; the median is reported")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall: elapsed time, for an idle machine; cpu: the measuring process's CPU time, for a "
                        "busy one (needs --threads 1)")
    parser.add_argument("--threads", type=int, help="torch's threads in every measurement (default: torch's own)")
    parser.add_argument("--peer", choices=["keras"], help="also train the same network with this framework (CPU only)")
    parser.add_argument("--peer_python", default=sys.executable,
                        help="a python that has TensorFlow and Keras 3, for --peer keras (default: this one)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--tables", metavar="JSON", nargs="+",
                        help="measure nothing: put these saved results' tables into docs/performance.md (between "
                        f"its {BENCHMARK_TABLE} markers) and stop")
    parser.add_argument("--sweep", action="store_true",
                        help="instead: a sweep of 2 x cores runs of --steps steps, --parallel 1 against auto")
    parser.add_argument("--measure", choices=list(PATHS), metavar="PATH",
                        help="measure PATH once, in this process, at --precision on the first of --devices, and "
                        "print its images/s as a JSON line (what each of the benchmark's processes runs)")
    parser.add_argument("--precision", choices=list(AUTOCAST), default="32-true", help="with --measure")
    parser.add_argument("--count_calls", action="store_true",
                        help="with --measure: also count the Python calls per step (which slows the steps it counts)")
    args = parser.parse_args()
    if args.tables:
        with exit_on_user_error():
            update_page(PERFORMANCE_PAGE, performance_tables([Path(p) for p in args.tables]), BENCHMARK_TABLE)
        return
    if args.sweep:
        sweep_benchmark(args.steps, args.json)
        return
    if args.clock == "cpu":
        if args.threads not in (None, 1):
            parser.error("--clock cpu adds up the CPU time of every thread: give --threads 1 (or --clock wall)")
        if args.peer or any(torch.device(d).type != "cpu" for d in args.devices):
            parser.error("--clock cpu times the CPU alone: measure GPUs and the Keras peer with --clock wall")
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure:
        measure_here(args.measure, args.devices[0], args.precision, args.steps, args.warmup, args.clock,
                     args.count_calls)
        return
    if args.peer and "cpu" not in args.devices:
        parser.error("--peer keras runs on the CPU; add cpu to --devices")

    with exit_on_user_error():  # before any timing: a missing TensorFlow is one error paragraph, exit 2
        peer = run_peer(args.peer_python, "--check") if args.peer else None
    described = describe_machine(peer)
    per_image = flops_per_image()
    rows, peer_runs = [], {}
    for name in args.devices:
        device = torch.device(name)
        precisions = ["32-true", "bf16-mixed"] + (["16-mixed"] if device.type == "cuda" else [])
        tflops = {precision: matmul_tflops(device, AUTOCAST[precision] or torch.float32) for precision in precisions}
        paths = [*TABLE_PATHS, *(["keras"] if args.peer == "keras" and device.type == "cpu" else [])]

        def rate(path: str, precision: str) -> float:
            if path != "keras":
                return measure(path, name, precision, args.steps, args.warmup, args.clock, args.threads)["images_per_s"]
            peer_runs[precision] = run_peer(args.peer_python, f"--precision={precision}", f"--steps={args.steps}",
                                            f"--warmup={args.warmup}", f"--images={IMAGES}", f"--seed={SEED}")
            return peer_runs[precision]["images_per_s"]

        rates: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):  # interleaved, so drifts in the machine's speed hit every path alike
            for precision in precisions:
                for path in paths:
                    rates.setdefault((precision, path), []).append(rate(path, precision))
        for (precision, path), values in rates.items():
            median = statistics.median(values)
            row = dict(device=name, precision=precision, path=path, images_per_s=median,
                       all_images_per_s=[round(v, 1) for v in values], matmul_tflops=tflops[precision],
                       floor_images_per_s=tflops[precision] * 1e12 / per_image, epoch_s=EPOCH_IMAGES / median)
            if path == "keras":  # how the last peer run at this precision ran: policy, jit_compile, params
                row["peer"] = {k: v for k, v in peer_runs[precision].items() if k not in ("images_per_s", "precision")}
            rows.append(row)

    report = {"machine": described, "torch": torch.__version__, "batch": BATCH, "steps": args.steps,
              "warmup": args.warmup, "repeats": args.repeats, "statistic": "median", "clock": args.clock,
              "flops_per_image": per_image, "rows": rows, "fit_over_keras": fit_over_keras(rows)}
    print(f"\n{machine_line(described)}\n{measured_how(report)} after {args.warmup} untimed, "
          f"{per_image / 1e6:.1f} MFLOP per image (forward + backward)\n")
    print(format_table(rows) + fast_line(report))
    print("\n" + json.dumps(report))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
