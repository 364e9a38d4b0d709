"""``--fast true``: everything that makes training faster without changing what it trains, chosen
for the machine it runs on.

* The precision: bf16 autocast (``bf16-mixed``) where the hardware computes bfloat16 natively (a
  CPU with ``avx512_bf16`` or ``amx_bf16``, a CUDA GPU that supports bf16; ``16-mixed`` on a GPU
  that does not), float32 elsewhere: a CPU without those instructions emulates bf16 many times
  slower than it trains in float32. A precision given in a config file or on the command line is
  kept; ``--fast`` picks one only where none was given (``trainer.precision`` is still null).
* ``model.fast_dropout`` (dropout masks from random bytes) and ``model.compile_update`` (the
  optimizer's update fused by ``torch.compile``).
* Packing belongs to ``python -m src.sweep``, which runs one single-thread run per core unless
  told otherwise (``--parallel auto``) and passes ``--fast true`` on to every run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from src.paths import PROJECT_ROOT
from src.results import machine

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
BENCHMARK_DIR = PROJECT_ROOT / "results" / "benchmark"  # scripts/benchmark.py's committed results
FLOAT32 = ("32-true", "32")


@dataclass(frozen=True)
class FastChoice:
    """What ``--fast true`` turned on for a run, and why it chose that precision."""

    precision: str
    why: str
    fast_dropout: bool = True
    compile_update: bool = True

    def record(self) -> dict[str, Any]:
        """For ``results.json``: the settings, without the reason."""
        return {key: value for key, value in asdict(self).items() if key != "why"}

    def describe(self) -> str:
        return f"precision {self.precision} ({self.why}), fast dropout masks, compiled optimizer update"


def native_bf16(cpu_flags: Iterable[str]) -> list[str]:
    """Which of the CPU flags that mean native bfloat16 arithmetic ``cpu_flags`` has."""
    flags = set(cpu_flags)
    return [flag for flag in NATIVE_BF16_FLAGS if flag in flags]


def fast_precision(on_gpu: bool, cpu_flags: Iterable[str], gpu_bf16: Callable[[], bool]) -> tuple[str, str]:
    """The fastest precision that runs natively, and why: on a GPU, ``bf16-mixed`` where ``gpu_bf16()``
    says it supports bf16, else ``16-mixed``; on a CPU, ``bf16-mixed`` with native bf16, else float32."""
    if on_gpu:
        return ("bf16-mixed", "the GPU supports bf16") if gpu_bf16() else ("16-mixed", "the GPU lacks bf16")
    native = native_bf16(cpu_flags)
    if native:
        return "bf16-mixed", f"the CPU has {' and '.join(native)}"
    return "32-true", f"the CPU has neither {' nor '.join(NATIVE_BF16_FLAGS)}: bf16 would be emulated, slower"


def trains_on_gpu(accelerator: Any) -> bool:
    """Whether a run given ``trainer.accelerator`` trains on a CUDA GPU (``auto``: when one is visible)."""
    return str(accelerator) in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def choose(fast: bool, precision: str | None, accelerator: Any) -> FastChoice | None:
    """What ``--fast`` turns on, for this machine (None when it is off). A ``precision`` that is not None
    was given by a config file or the command line (the parser's default is null) and is kept."""
    if not fast:
        return None
    if precision is not None:
        return FastChoice(str(precision), "given explicitly")
    return FastChoice(*fast_precision(trains_on_gpu(accelerator), machine(NATIVE_BF16_FLAGS)["cpu_flags"],
                                      lambda: torch.cuda.is_bf16_supported(including_emulation=False)))


def choose_for(config: Any) -> FastChoice | None:
    """:func:`choose` for a run's parsed config, a namespace or the dictionary ``--print_config`` prints."""
    trainer = config.get("trainer") or {}
    return choose(bool(config.get("fast")), trainer.get("precision"), trainer.get("accelerator"))


def left_to_fast(config: dict[str, Any]) -> tuple[str, ...]:
    """The settings (dotted keys) that ``--fast`` will set for a run, given its resolved config, on the
    machine that trains it: none when it is off, the precision only where none was given."""
    if not config.get("fast"):
        return ()
    precision = (config.get("trainer") or {}).get("precision")
    return ("model.fast_dropout", "model.compile_update", *(() if precision is not None else ("trainer.precision",)))


def apply_fast(config: Any) -> FastChoice | None:
    """Set ``config`` (a subcommand's parsed namespace) to what ``--fast`` chose; returns the choice."""
    choice = choose_for(config)
    if choice:
        config.trainer.precision = choice.precision
        config.model.fast_dropout = choice.fast_dropout
        config.model.compile_update = choice.compile_update
    return choice


def speedup_hint(precision: str, device_type: str, described: dict[str, Any] | None = None,
                 results: Path = BENCHMARK_DIR) -> str | None:
    """For a float32 run on a CPU with native bf16, one line on what ``--fast true`` would gain: the
    measured factor from the committed benchmark of a machine of this kind, where there is one.
    None for any other run. ``described`` is :func:`src.results.machine`'s answer, read when not given."""
    if device_type != "cpu" or str(precision) not in FLOAT32:
        return None
    described = described or machine()
    native = native_bf16(described["cpu_flags"])
    if not native:
        return None
    measured = measured_speedup(described, results)
    gain = (f"about {measured[0]:.1f}x as fast on this kind of CPU (fit fast bf16-mixed over fit 32-true in "
            f"{measured[1]})" if measured else "faster; measure how much here with python scripts/benchmark.py")
    return f"this CPU computes bf16 natively ({', '.join(native)}): --fast true trains {gain}"


def measured_speedup(described: dict[str, Any], results: Path = BENCHMARK_DIR) -> tuple[float, str] | None:
    """What ``--fast true`` gains (:func:`fast_gain`) by the first benchmark result in ``results``
    measured on the same CPU model with the same native bf16 flags, and that result's file; None
    when none was."""
    for path in sorted(results.glob("*.json")) if results.is_dir() else []:
        try:
            report = json.loads(path.read_text())
            measured = report["machine"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if measured.get("cpu") != described["cpu"] or native_bf16(measured.get("cpu_flags", [])) != native_bf16(
                described["cpu_flags"]):
            continue
        gain = fast_gain(report)
        if gain:
            shown = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
            return gain[0], str(shown)
    return None


def fast_gain(report: dict[str, Any]) -> tuple[float, str] | None:
    """In a scripts/benchmark.py result: ``fit fast`` at the precision ``--fast`` picks on its CPU
    over ``fit`` in float32, and that precision; None without those rows, or for a CPU measured with
    its instruction sets capped (the switch reads the flags, which a cap leaves as they are)."""
    if report["machine"].get("isa_caps"):
        return None
    precision = fast_precision(False, report["machine"]["cpu_flags"], lambda: False)[0]
    rates = {(row["precision"], row["path"]): row["images_per_s"] for row in report.get("rows", [])
             if row.get("device") == "cpu"}
    if (precision, "fit fast") not in rates or ("32-true", "fit") not in rates:
        return None
    return rates[precision, "fit fast"] / rates["32-true", "fit"], precision
