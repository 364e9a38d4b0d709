"""Where a training step's time goes: CPU milliseconds per step of each way to train the fixed CNN.

One thread and CPU time (``time.process_time``), so the figures hold on a busy machine and
compare the work each path does, not how well it spreads over cores. Each measurement runs in
a process of its own (scripts/benchmark.py's ``--measure``), so no compiled code or cache
carries over from one to the next. The paths, each at batch 32 on random images, float32 and
bf16-mixed:

* ``plain``: scripts/benchmark.py's minimal loop; ``plain, freed memory kept``: the same with the
  allocator setting ``fit`` runs with (src/allocator.py); ``plain, compiled update``: the same with the
  optimizer's update through ``torch.compile`` (one fused pass over the weights instead of
  five), ``plain, compiled network``: with ``model.compile()``;
* ``trainer``: the project's module under a bare Lightning Trainer, ``fit``: the project's path,
  ``fit, default allocator``: the same without the allocator setting it trains with (src/allocator.py);
and, apart, RMSprop's ``optimizer.step()`` alone on fixed gradients, eager and compiled. Once more per path,
not timed, the Python calls each step makes (scripts/benchmark.py's ``CallCounter``): the interpreted work
a framework adds around the same tensor work, a count a busy machine does not change.

    python scripts/step_costs.py --steps 200 --repeats 3 --json results/benchmark/step-costs-<cpu>.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmark.py, beside this script
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's src

import benchmark  # noqa: E402
from src.model import KerasCifarCNN  # noqa: E402
from src.optim import KerasRMSprop  # noqa: E402


def update_alone(compiled: bool, steps: int, warmup: int) -> float:
    """Milliseconds of CPU per ``optimizer.step()`` of RMSprop over the network's weights."""
    torch.manual_seed(0)
    model = KerasCifarCNN()
    for param in model.parameters():
        param.grad = torch.randn_like(param)
    optimizer = KerasRMSprop(model.parameters(), lr=torch.tensor(1e-4) if compiled else 1e-4)
    torch.compiler.reset()  # compiled afresh, not guarded against the optimizers compiled before it
    update = torch.compile(optimizer.step) if compiled else optimizer.step
    for _ in range(warmup):
        update()
    start = time.process_time()
    for _ in range(steps):
        update()
    return (time.process_time() - start) / steps * 1000


PATHS = ("plain", "plain, freed memory kept", "plain, compiled update", "plain, compiled network", "trainer",
         "fit, default allocator", "fit")


def step_cost(path: str, precision: str, steps: int, warmup: int) -> tuple[float, float]:
    """CPU milliseconds and minor page faults per training step of ``path`` at ``precision``, one
    thread, in a process of its own."""
    measured = benchmark.measure(path, "cpu", precision, steps, warmup, clock="cpu", threads=1)
    return benchmark.BATCH / measured["images_per_s"] * 1000, measured["page_faults_per_step"]


def python_calls(path: str, precision: str, steps: int, warmup: int) -> float:
    """Python calls per training step of ``path`` at ``precision``, in a process of its own."""
    return benchmark.measure(path, "cpu", precision, steps, warmup, clock="cpu", threads=1,
                             count_calls=True)["python_calls_per_step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per measurement")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first (compilation happens there)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements of each path; the median is reported")
    parser.add_argument("--json", help="also write the results to this file (scripts/benchmark.py --tables shows it)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    costs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    updates: dict[bool, list[float]] = {}
    for _ in range(args.repeats):  # interleaved, so a drift in clock speed hits every path alike
        for precision in ("32-true", "bf16-mixed"):
            for name in PATHS:
                costs.setdefault((precision, name), []).append(step_cost(name, precision, args.steps, args.warmup))
        for compiled in (False, True):
            updates.setdefault(compiled, []).append(update_alone(compiled, args.steps, args.warmup))
    calls = {(precision, name): python_calls(name, precision, args.steps, args.warmup) for precision, name in costs}
    report = {
        "kind": "step_costs", "machine": benchmark.describe_machine(), "batch": benchmark.BATCH,
        "steps": args.steps, "repeats": args.repeats, "statistic": "median",
        "rows": [dict(precision=precision, path=name, ms_per_step=statistics.median(ms for ms, _ in values),
                      all_ms=[round(ms, 3) for ms, _ in values],
                      page_faults_per_step=statistics.median(faults for _, faults in values),
                      python_calls_per_step=calls[precision, name])
                 for (precision, name), values in costs.items()],
        "update_ms": {"eager": statistics.median(updates[False]), "compiled": statistics.median(updates[True])},
    }
    print(f"\n{benchmark.machine_line(report['machine'])}\n{benchmark.format_step_costs(report)}\n")
    print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
