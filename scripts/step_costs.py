"""Where a training step's time goes: CPU milliseconds per step of each way to train the fixed CNN.

One thread and CPU time (``time.process_time``), so the figures hold on a busy machine and
compare the work each path does, not how well it spreads over cores. The paths, each at
batch 32 on random images, float32 and bf16-mixed:

* ``plain``: scripts/benchmark.py's minimal loop; ``plain, compiled update``: the same with the
  optimizer's update through ``torch.compile`` (one fused pass over the weights instead of
  five), ``plain, compiled network``: with ``model.compile()``;
* ``trainer``: the project's module under a bare Lightning Trainer, ``fit``: the project's path;
and, apart, RMSprop's ``optimizer.step()`` alone on fixed gradients, eager and compiled.

    python scripts/step_costs.py --steps 200 --repeats 3 --json results/benchmark/step-costs-<cpu>.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmark.py, beside this script
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's src

import benchmark  # noqa: E402
from src.model import KerasCifarCNN  # noqa: E402
from src.optim import KerasRMSprop  # noqa: E402

CPU = torch.device("cpu")


def update_alone(compiled: bool, steps: int, warmup: int) -> float:
    """Milliseconds of CPU per ``optimizer.step()`` of RMSprop over the network's weights."""
    torch.manual_seed(0)
    model = KerasCifarCNN()
    for param in model.parameters():
        param.grad = torch.randn_like(param)
    optimizer = KerasRMSprop(model.parameters(), lr=torch.tensor(1e-4) if compiled else 1e-4)
    update = torch.compile(optimizer.step) if compiled else optimizer.step
    for _ in range(warmup):
        update()
    start = time.process_time()
    for _ in range(steps):
        update()
    return (time.process_time() - start) / steps * 1000


def paths(precision: str, steps: int, warmup: int) -> dict[str, Callable[[], float]]:
    """Each path's measurement at ``precision``, as CPU milliseconds per training step."""
    data = benchmark.random_split(benchmark.IMAGES, benchmark.SEED)
    clock = time.process_time

    def per_step(images_per_s: float) -> float:
        return benchmark.BATCH / images_per_s * 1000

    return {
        "plain": lambda: per_step(benchmark.plain_loop(CPU, precision, steps, warmup, data, clock=clock)),
        "plain, compiled update": lambda: per_step(
            benchmark.plain_loop(CPU, precision, steps, warmup, data, compile_step=True, clock=clock)),
        "plain, compiled network": lambda: per_step(
            benchmark.plain_loop(CPU, precision, steps, warmup, data, compile_network=True, clock=clock)),
        "trainer": lambda: per_step(benchmark.trainer_floor(CPU, precision, steps, warmup, data, clock=clock)),
        "fit": lambda: per_step(benchmark.fit_path(CPU, precision, steps, warmup, data, [], clock=clock)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per measurement")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first (compilation happens there)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each path; the least is reported")
    parser.add_argument("--json", help="also write the results to this file (scripts/benchmark.py --readme shows it)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    costs: dict[tuple[str, str], list[float]] = {}
    updates: dict[bool, list[float]] = {}
    for _ in range(args.repeats):  # interleaved, so a drift in clock speed hits every path alike
        for precision in ("32-true", "bf16-mixed"):
            for name, measure in paths(precision, args.steps, args.warmup).items():
                costs.setdefault((precision, name), []).append(measure())
        for compiled in (False, True):
            updates.setdefault(compiled, []).append(update_alone(compiled, args.steps, args.warmup))
    report = {
        "kind": "step_costs", "machine": benchmark.describe_machine(), "batch": benchmark.BATCH,
        "steps": args.steps, "repeats": args.repeats,
        "rows": [dict(precision=precision, path=name, ms_per_step=min(values), all_ms=[round(v, 3) for v in values])
                 for (precision, name), values in costs.items()],
        "update_ms": {"eager": min(updates[False]), "compiled": min(updates[True])},
    }
    print(f"\n{benchmark.machine_line(report['machine'])}\n{benchmark.format_step_costs(report)}\n")
    print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
