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

Last, ``paired``: the bare Trainer, then ``fit``, and the plain loop in one process, taking turns every 50
steps, each turn timed. A shared machine's speed drifts by several percent within minutes, more than the
gap between the two; turns seconds apart see the same machine, so their ratio, turn by turn, measures the
gap itself.

    python scripts/step_costs.py --steps 200 --repeats 3 --json results/benchmark/step-costs-<cpu>.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmark.py, beside this script
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's src

import benchmark  # noqa: E402
from src.allocator import keep_freed_memory  # noqa: E402
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


TURN = 50  # steps each way before the other takes its turn


class TakeTurns(pl.Callback):
    """Every ``turn`` steps of a Trainer (after ``warmup``), as many steps of ``plain``: each turn's CPU time,
    both ways."""

    def __init__(self, plain: benchmark.PlainLoop, turn: int, warmup: int) -> None:
        self.plain, self.turn, self.warmup = plain, turn, warmup
        self.trainer_s: list[float] = []
        self.plain_s: list[float] = []
        self.started = 0.0

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        done = trainer.global_step - self.warmup
        if done < 0 or done % self.turn:
            return
        if done:
            self.trainer_s.append(time.process_time() - self.started)
            start = time.process_time()
            self.plain.run(self.turn)
            self.plain_s.append(time.process_time() - start)
        self.started = time.process_time()


PAIRED = ("trainer", "fit")  # what takes turns with the plain loop


def paired_apart(path: str, precision: str, turns: int) -> dict[str, float]:
    """:func:`paired` in a python process of its own (this script's ``--paired``)."""
    return benchmark.measured_apart([sys.executable, str(Path(__file__).resolve()), f"--paired={path}",
                                     f"--precision={precision}", f"--turns={turns}"])


def paired(path: str, precision: str, turns: int, turn: int = TURN, warmup: int = 30) -> dict[str, float]:
    """``path`` (the bare Trainer or the project's ``fit``) against the plain loop, taking turns in this
    process: the median of their milliseconds per step, and of the plain loop's time over ``path``'s, turn
    by turn."""
    keep_freed_memory()
    device, data = torch.device("cpu"), benchmark.random_split(benchmark.IMAGES, benchmark.SEED)
    plain = benchmark.PlainLoop(device, precision, data)
    plain.run(warmup)
    taking_turns = TakeTurns(plain, turn, warmup)
    max_steps = warmup + turn * turns
    if path == "fit":
        with benchmark.project_fit(device, precision, max_steps, extra=[]) as cli:
            cli.trainer.callbacks.append(taking_turns)
            cli.trainer.fit(cli.model, datamodule=benchmark.baseline_data(data))
    else:
        trainer = benchmark.bare_trainer(device, precision, max_steps, [taking_turns])
        trainer.fit(benchmark.baseline_module(), datamodule=benchmark.baseline_data(data))
    pairs = list(zip(taking_turns.trainer_s, taking_turns.plain_s))
    return {"path": path, "precision": precision, "turns": len(pairs), "turn_steps": turn,
            "path_ms": statistics.median(t for t, _ in pairs) / turn * 1000,
            "plain_ms": statistics.median(p for _, p in pairs) / turn * 1000,
            "speed_over_plain": statistics.median(p / t for t, p in pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per measurement")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first (compilation happens there)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements of each path; the median is reported")
    parser.add_argument("--json", help="also write the results to this file (scripts/benchmark.py --tables shows it)")
    parser.add_argument("--paired", choices=PAIRED,
                        help="measure only this path and the plain loop taking turns, at --precision, and print the "
                        "result as a JSON line (what the main run starts a process for)")
    parser.add_argument("--precision", choices=["32-true", "bf16-mixed"], default="bf16-mixed", help="with --paired")
    parser.add_argument("--turns", type=int, default=12, help="with --paired: turns each way")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.paired:
        print(json.dumps(paired(args.paired, args.precision, args.turns)))
        return
    costs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    updates: dict[bool, list[float]] = {}
    for _ in range(args.repeats):  # interleaved, so a drift in clock speed hits every path alike
        for precision in ("32-true", "bf16-mixed"):
            for name in PATHS:
                costs.setdefault((precision, name), []).append(step_cost(name, precision, args.steps, args.warmup))
        for compiled in (False, True):
            updates.setdefault(compiled, []).append(update_alone(compiled, args.steps, args.warmup))
    calls = {(precision, name): python_calls(name, precision, args.steps, args.warmup) for precision, name in costs}
    turns = [paired_apart(path, precision, max(args.steps * args.repeats // TURN, 4))
             for path in PAIRED for precision in ("32-true", "bf16-mixed")]
    report = {
        "kind": "step_costs", "machine": benchmark.describe_machine(), "batch": benchmark.BATCH,
        "steps": args.steps, "repeats": args.repeats, "statistic": "median",
        "rows": [dict(precision=precision, path=name, ms_per_step=statistics.median(ms for ms, _ in values),
                      all_ms=[round(ms, 3) for ms, _ in values],
                      page_faults_per_step=statistics.median(faults for _, faults in values),
                      python_calls_per_step=calls[precision, name])
                 for (precision, name), values in costs.items()],
        "update_ms": {"eager": statistics.median(updates[False]), "compiled": statistics.median(updates[True])},
        "paired": turns,
    }
    print(f"\n{benchmark.machine_line(report['machine'])}\n{benchmark.format_step_costs(report)}\n")
    print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
