"""Training throughput of the fixed CNN at batch 32: the project's `fit` path against a plain loop.

For each precision it trains a fixed number of steps (after warm-up steps that are not
timed) through

* ``fit``: the project's own path, ``python -m src.cli fit`` with ``configs/base.yaml``
  (its callbacks, logger and progress bar) on in-memory data, and
* ``plain``: a minimal PyTorch loop over the same model, optimizer, decay and data layout,

and measures the machine's matrix-multiply rate, from which the arithmetic floor follows:
the model's FLOPs per image (forward + backward) divided by that rate.

    python scripts/benchmark.py                      # CPU; and the GPU too when there is one
    python scripts/benchmark.py --steps 300 --json benchmark.json

Random images stand in for CIFAR-10: speed does not depend on pixel values.

With ``--sweep`` it times a whole ``python -m src.sweep`` instead, one run at a time against
``--parallel auto``: what packing runs onto the machine gains a user.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from src.cli import HparamLabCLI
from src.data.batches import to_float_nchw
from src.data.cifar10 import CIFAR10DataModule
from src.data.sources import CACHE_NAME, Split, _write_cache
from src.model import KerasCifarCNN
from src.optim import KerasRMSprop, keras_decay
from src.sweep import SWEEP_FILE, usable_cores

BATCH = 32
EPOCH_IMAGES = 45_000
AUTOCAST = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def random_split(count: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    return Split(rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, count))


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


def plain_loop(device: torch.device, precision: str, steps: int, warmup: int, data: Split) -> float:
    """Images/s of the shortest honest loop: slice, scale, forward, loss, backward, step."""
    torch.manual_seed(0)
    model = KerasCifarCNN().to(device, memory_format=torch.channels_last)
    optimizer = KerasRMSprop(model.parameters(), lr=1e-4)
    decay = keras_decay(optimizer, 1e-6)
    images, labels = torch.from_numpy(data.images).to(device), torch.from_numpy(data.labels).to(device)
    order = torch.randperm(len(labels), device=device)
    dtype = AUTOCAST[precision]
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
    for step in range(steps + warmup):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        index = order[(step * BATCH) % (len(order) - BATCH) :][:BATCH]
        batch = to_float_nchw(images[index])
        with autocast:
            loss = F.cross_entropy(model(batch), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        decay.step()
    sync(device)
    return steps * BATCH / (time.perf_counter() - start)


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
        _write_cache(data_dir / CACHE_NAME, {"train": random_split(16_000, 0), "test": random_split(1000, 1)},
                     "torchvision")  # the origin of a run given no --data.source
        rows = [sweep_rate(parallel, runs, steps, data_dir, Path(work) / f"sweep_{parallel}")
                for parallel in ("1", "auto")]
    print(f"\ntorch {torch.__version__}, {usable_cores()} cores: a sweep of {runs} runs x {steps} steps at "
          f"batch {BATCH}, wall time from start to end\n")
    print("| --parallel | plan | wall s | images/s |")
    print("| --- | --- | ---: | ---: |")
    for row in rows:
        print(f"| {row['parallel']} | {row['plan']} | {row['wall_s']:.1f} | {row['images_per_s']:.0f} |")
    report = {"torch": torch.__version__, "batch": BATCH, "sweep": rows,
              "packed_over_serial": rows[1]["images_per_s"] / rows[0]["images_per_s"]}
    print(f"\npacked / one at a time: {report['packed_over_serial']:.2f}\n\n{json.dumps(report)}")
    if json_path:
        with open(json_path, "w") as out:
            json.dump(report, out, indent=2)


class StepTimer(pl.Callback):
    """Times training steps after the warm-up ones."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.warmup:
            sync(pl_module.device)
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        sync(pl_module.device)
        self.end = time.perf_counter()


def fit_path(device: torch.device, precision: str, steps: int, warmup: int, data: Split, extra: list[str]) -> float:
    """Images/s through the project's CLI-configured Trainer, callbacks and data module."""
    timer = StepTimer(warmup)
    with tempfile.TemporaryDirectory() as runs:
        cli = HparamLabCLI(
            [
                "--config=configs/rmsprop_baseline.yaml", f"--trainer.precision={precision}",
                f"--trainer.accelerator={device.type}", "--trainer.devices=1", f"--trainer.max_steps={steps + warmup}",
                "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0", "--trainer.enable_model_summary=false",
                "--early_stopping.strict=false",
                f"--trainer.logger.init_args.save_dir={runs}", "--test_after_fit=false", *extra,
            ],
            run=False,
        )
        cli.trainer.callbacks.append(timer)
        datamodule = CIFAR10DataModule.from_arrays(data, random_split(1000, 1), val_split=1000)
        cli.trainer.fit(cli.model, datamodule=datamodule)
    return steps * BATCH / (timer.end - timer.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per measurement")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each variant; the best is reported")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--sweep", action="store_true",
                        help="instead: a sweep of 2 x cores runs of --steps steps, --parallel 1 against auto")
    args = parser.parse_args()
    if args.sweep:
        sweep_benchmark(args.steps, args.json)
        return

    data = random_split(16_000, 0)
    per_image = flops_per_image()
    rows = []
    for name in args.devices:
        device = torch.device(name)
        precisions = ["32-true", "bf16-mixed"] + (["16-mixed"] if device.type == "cuda" else [])
        for precision in precisions:
            matmul_dtype = AUTOCAST[precision] or torch.float32
            tflops = matmul_tflops(device, matmul_dtype)
            floor = tflops * 1e12 / per_image
            variants = {
                "fit": lambda: fit_path(device, precision, args.steps, args.warmup, data, []),
                "fit compile": lambda: fit_path(device, precision, args.steps, args.warmup, data, ["--model.compile=true"]),
                "fit NCHW": lambda: fit_path(device, precision, args.steps, args.warmup, data, ["--model.channels_last=false"]),
                "plain": lambda: plain_loop(device, precision, args.steps, args.warmup, data),
            }
            rates: dict[str, list[float]] = {label: [] for label in variants}
            for _ in range(args.repeats):  # interleaved, so drifts in clock speed hit every variant alike
                for label, measure in variants.items():
                    rates[label].append(measure())
            for label, values in rates.items():
                rows.append(dict(device=name, precision=precision, path=label, images_per_s=max(values),
                                 all_images_per_s=[round(v, 1) for v in values], matmul_tflops=tflops,
                                 floor_images_per_s=floor, epoch_s=EPOCH_IMAGES / max(values)))

    print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, batch {BATCH}, "
          f"best of {args.repeats} x {args.steps} timed steps, {per_image / 1e6:.1f} MFLOP per image (forward + backward)\n")
    print("| device | precision | path | images/s | vs plain | epoch (45k) s | matmul TFLOP/s | floor images/s |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        plain = next(r for r in rows if (r["device"], r["precision"], r["path"]) == (row["device"], row["precision"], "plain"))
        print(f"| {row['device']} | {row['precision']} | {row['path']} | {row['images_per_s']:.0f} | "
              f"{row['images_per_s'] / plain['images_per_s']:.2f} | {row['epoch_s']:.1f} | {row['matmul_tflops']:.2f} | "
              f"{row['floor_images_per_s']:.0f} |")
    report = {"torch": torch.__version__, "batch": BATCH, "steps": args.steps, "flops_per_image": per_image, "rows": rows}
    print("\n" + json.dumps(report))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
