"""``python -m src.sweep``: experiment configs × seeds, every run in its own subprocess.

A sweep is a directory, ``SWEEP_DIR/<config>/seed_<S>/``, one ``python -m src.cli fit`` run
each, so a crash or a divergence ends that run only. Starting the same sweep again skips the
runs that finished, resumes those that were cut off (from ``checkpoints/last.ckpt``) and
retries those that failed; ``sweep.json`` keeps how every run went. Any argument this command
does not know (``--trainer.max_epochs 5``, ``--data.…``) goes to every run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from src.errors import UserInputError
from src.paths import BASE_CONFIG, CONFIG_DIR, PROJECT_ROOT
from src.results import RunRecord, read_record, write_atomic

SWEEP_FILE = "sweep.json"
LOG_FILE = "train.log"
SET_BY_SWEEP = ("--seed_everything", "--run_name", "--trainer.logger", "--ckpt_path")

Progress = Callable[[str], None]

# The notebook's own results (test accuracy, one run each), as its prose gives them; the number
# is drawn beside ours. Adam's 81.5% is its three-stage schedule, ``adam_auto_staged`` here.
NOTEBOOK = {
    "rmsprop_baseline": (0.772, "77.2% (34 epochs)"),
    "rmsprop_lr_1e-3": (0.519, "51.9%"),
    "rmsprop_lr_1e-5": (0.732, "73.2% (~150 epochs)"),
    "rmsprop_decay_1e-7": (0.77, "~77%"),
    "rmsprop_decay_1e-5": (0.77, "~77%"),
    "rmsprop_decay_1e-2": (0.40, "~40%"),
    "sgd": (0.808, "80.8%"),
    "sgd_momentum": (0.798, "79.8%"),
    "sgd_nesterov": (0.802, "80.2%"),
    "adam_auto_staged": (0.815, "81.5% (Adam 1e-3, then 1e-4, then 1e-5)"),
}


def print_line(line: str) -> None:
    """Progress to the terminal, flushed so that it shows at once even through a pipe."""
    print(line, flush=True)


def available_configs() -> list[str]:
    """Names of the experiment configs in ``configs/``, base excluded."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p != BASE_CONFIG)


def resolve_config(name: str) -> Path:
    """A config name from ``configs/`` (``base`` included) or a path to a YAML file."""
    for candidate in (CONFIG_DIR / f"{name}.yaml", Path(name)):
        if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
            return candidate.resolve()
    raise UserInputError(
        f"Unknown config {name!r}: it is neither a file nor a name in {CONFIG_DIR}. "
        f"Available: {', '.join(available_configs())} (or give the path of a YAML file)."
    )


def check_run_args(config: Path, overrides: Sequence[str]) -> None:
    """Parse a run's arguments in-process, as ``src.cli`` will, so that a typo in an override
    stops the sweep with the parser's message before any run starts."""
    for flag in overrides:
        if flag.split("=", 1)[0].startswith(SET_BY_SWEEP):
            raise UserInputError(
                f"{flag} is set by the sweep for each run (config, seed, run directory, checkpoint); "
                "choose configs with --configs, seeds with --seeds/--first_seed and the directory with --sweep_dir."
            )
    from src.cli import main as cli_main  # here, not above: Lightning takes seconds to import

    errors = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
        warnings.simplefilter("ignore")  # Lightning's warning about args given beside sys.argv
        try:
            cli_main(["fit", f"--config={config}", *overrides, "--print_config"])
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                message = " ".join(errors.getvalue().partition("error:")[2].split()) or errors.getvalue()
                raise UserInputError(
                    f"The arguments for the {config.stem} runs are not valid: {message} "
                    "(see python -m src.cli fit --help)."
                ) from None


@dataclass
class Run:
    """One ``src.cli fit`` run at ``root/name/seed_<seed>``."""

    config: Path
    seed: int
    root: Path
    name: str
    overrides: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.root / self.name / f"seed_{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.name} seed {self.seed}"

    def resume_from(self) -> Path | None:
        last = self.run_dir / "checkpoints" / "last.ckpt"
        return last if last.is_file() else None

    def command(self) -> list[str]:
        resume = self.resume_from()
        return [
            sys.executable, "-m", "src.cli", "fit", f"--config={self.config}",
            "--trainer.enable_progress_bar=false",  # train.log is a file: no progress bar redraws
            *self.overrides,
            f"--seed_everything={self.seed}",
            f"--run_name={self.name}",
            f"--trainer.logger.init_args.save_dir={self.root}",
            f"--trainer.logger.init_args.version=seed_{self.seed}",
            *([f"--ckpt_path={resume}"] if resume else []),
        ]

    def _watch_epochs(self, process: subprocess.Popen, on_epoch: Progress) -> None:
        """Report each epoch as results.json gains it, polling every few seconds."""
        seen = len((read_record(self.run_dir) or RunRecord()).history)
        while process.poll() is None:
            time.sleep(2)
            history = (read_record(self.run_dir) or RunRecord()).history
            for epoch in history[seen:]:
                on_epoch(f"{self.label}: epoch {epoch['epoch']}, val_acc {epoch.get('val_acc', float('nan')):.4f}")
            seen = max(seen, len(history))

    def execute(self, env: dict[str, str] | None = None, on_epoch: Progress | None = None) -> dict:
        """Run it (output to ``train.log``) and say how it went: status ``finished``,
        ``diverged`` or ``failed``, with the exit code and the run's results."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = time.time()
        command = self.command()
        with open(self.run_dir / LOG_FILE, "a") as log:
            log.write(f"\n$ {' '.join(command)}\n")
            log.flush()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            if on_epoch:
                self._watch_epochs(process, on_epoch)
            process.wait()
        record = read_record(self.run_dir)
        if process.returncode == 0 and record and record.is_complete:
            status = "diverged" if record.stop_reason == "diverged" else "finished"
        else:
            status = "failed"
        return self.outcome(status, record, returncode=process.returncode, seconds=round(time.time() - started, 1),
                            log=str(self.run_dir / LOG_FILE))

    def outcome(self, status: str, record: RunRecord | None, **details: object) -> dict:
        """What ``sweep.json`` keeps of a run."""
        record = record or RunRecord()
        return {
            "config": self.name, "seed": self.seed, "run_dir": str(self.run_dir), "status": status,
            "stop_reason": record.stop_reason, "test_acc": record.test_acc, **details,
        }


def describe(outcome: dict) -> str:
    """One line on how a run ended."""
    if outcome["status"] == "failed":
        return f"FAILED (exit {outcome['returncode']}, stop_reason {outcome['stop_reason']}); see {outcome['log']}"
    test_acc = "-" if outcome["test_acc"] is None else f"{outcome['test_acc']:.4f}"
    return f"{outcome['stop_reason']}, test_acc {test_acc} ({outcome['seconds']:.0f} s)"


def run_environments(parallel: int) -> queue.Queue[dict[str, str]]:
    """One environment per concurrent run: with several GPUs each run sees one of them
    (``CUDA_VISIBLE_DEVICES``); on CPUs the cores are shared out instead of oversubscribed."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = [d.strip() for d in visible.split(",") if d.strip()]
    else:
        import torch

        gpus = [str(i) for i in range(torch.cuda.device_count())]
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    base = {**os.environ, "PYTHONPATH": python_path}  # the runs use this checkout's src, as the sweep does
    slots: queue.Queue[dict[str, str]] = queue.Queue()
    for slot in range(parallel):
        if len(gpus) > 1 and parallel > 1:
            slots.put({**base, "CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)]})
        elif not gpus and parallel > 1 and "OMP_NUM_THREADS" not in os.environ:
            slots.put({**base, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // parallel))})
        else:
            slots.put(base)
    return slots


class SweepRecord:
    """``sweep.json``: how every run of the sweep went, kept across restarts."""

    def __init__(self, sweep_dir: Path, settings: dict) -> None:
        self.path = sweep_dir / SWEEP_FILE
        old = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.data = {**settings, "runs": old.get("runs", {})}
        self._lock = threading.Lock()
        self._save()

    def update(self, run: Run, outcome: dict) -> None:
        with self._lock:
            self.data["runs"][f"{run.name}/seed_{run.seed}"] = outcome
            self._save()

    def _save(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=2) + "\n")


def sweep(
    configs: Iterable[str] | None = None,
    seeds: int = 3,
    first_seed: int = 42,
    sweep_dir: str | Path = "runs/sweep",
    overrides: Sequence[str] = (),
    parallel: int = 1,
    progress: Progress = print_line,
    epoch_progress: bool = False,
) -> list[dict]:
    """Run ``configs`` (default: every notebook experiment) × ``seeds`` seeds under ``sweep_dir``.

    Returns one outcome per run (``status``: ``complete`` for runs skipped as already done,
    ``finished``, ``diverged`` or ``failed``). ``progress`` gets one line per run start and
    end (and per epoch with ``epoch_progress``); the runs' own output goes to their ``train.log``.
    """
    if seeds < 1 or parallel < 1:
        raise UserInputError(f"--seeds and --parallel must be at least 1, got {seeds} and {parallel}.")
    paths = [resolve_config(name) for name in (configs or NOTEBOOK)]
    overrides = list(overrides)
    for path in paths:
        check_run_args(path, overrides)
    root = Path(sweep_dir).resolve()
    seed_list = range(first_seed, first_seed + seeds)
    # seed by seed: a sweep cut short has every config at least once before any has three
    runs = [Run(path, seed, root, path.stem, overrides) for seed in seed_list for path in paths]
    record = SweepRecord(root, {"configs": [str(p) for p in paths], "seeds": list(seed_list), "overrides": overrides})

    outcomes = {}
    for run in runs:
        done = read_record(run.run_dir)
        if done and done.is_complete:
            outcomes[run.label] = run.outcome("complete", done)
    todo = [run for run in runs if run.label not in outcomes]
    progress(f"sweep {root}: {len(runs)} runs, {len(outcomes)} already complete, {len(todo)} to run, "
             f"{parallel} at a time")

    environments = run_environments(parallel)

    def start(index: int, run: Run) -> dict:
        env = environments.get()
        try:
            resume = run.resume_from()
            progress(f"[{index}/{len(todo)}] start {run.label}" + (f" (resuming from {resume})" if resume else ""))
            outcome = run.execute(env, on_epoch=progress if epoch_progress else None)
        finally:
            environments.put(env)
        record.update(run, outcome)
        progress(f"[{index}/{len(todo)}] end   {run.label}: {describe(outcome)}")
        return outcome

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for run, outcome in zip(todo, pool.map(start, range(1, len(todo) + 1), todo)):
            outcomes[run.label] = outcome
    failed = [o for o in outcomes.values() if o["status"] == "failed"]
    progress(f"sweep done: {len(runs) - len(failed)} of {len(runs)} runs complete"
             + (f", {len(failed)} failed" if failed else ""))
    return [outcomes[run.label] for run in runs]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src.sweep",
        description="Run experiment configs x seeds, one subprocess per run, under one sweep directory. "
        "Arguments it does not know (--trainer.max_epochs 5, --data.*) are passed to every run.",
        allow_abbrev=False,
    )
    parser.add_argument("--configs", nargs="+", metavar="CONFIG",
                        help=f"config names or YAML paths (default: the notebook's experiments, {', '.join(NOTEBOOK)})")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per config (default 3)")
    parser.add_argument("--first_seed", type=int, default=42,
                        help="the seeds are first_seed, first_seed+1, … (default 42, base.yaml's)")
    parser.add_argument("--sweep_dir", default="runs/sweep", help="where the runs go (default runs/sweep)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="runs at once; with several GPUs one per GPU (default 1)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args, overrides = build_parser().parse_known_args(argv)
    try:
        outcomes = sweep(args.configs, args.seeds, args.first_seed, args.sweep_dir, overrides, args.parallel)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if any(o["status"] == "failed" for o in outcomes):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
