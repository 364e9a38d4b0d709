"""A study's trials as runs of the pool: each trial's flags and run under the study's directory,
what its outcome tells the study, and a trial cut off by a signal or a dead worker enqueued again
to resume its run. :mod:`src.search` asks for the trials and runs them with these."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from src.compat import trial_heartbeat
from src.results import RunRecord, read_record
from src.run_pool import Start
from src.run_process import Progress, Run, describe
from src.search_space import SearchSpace, suggest
from src.storage import ENV_PREFIX, STORAGE_VARIABLE

RESUMES = "resumes"  # a trial's user attribute: the name of its run, which a copy of it (enqueued, retried) continues
ENDED = ("finished", "diverged")  # Run.execute's statuses of a run that has its results


def asked(study: optuna.Study, count: int) -> Iterator[optuna.Trial]:
    """``count`` trials asked one by one as slots free up (the pool takes them one at a time), so that the
    sampler sees every trial asked before; first, as Study.optimize does, the trials of dead workers are failed."""
    for _ in range(count):
        with warnings.catch_warnings():  # Optuna warns that ask() alone does not fail stale trials: this does
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
            optuna.storages.fail_stale_trials(study)
            yield study.ask()


@dataclass
class Trials:
    """A study's trials as runs under ``study_dir``: each one's flags and run, and what its outcome
    tells the study; ``interrupted`` lists those a signal stopped, enqueued again to resume first."""

    study: optuna.Study
    declared: SearchSpace
    study_dir: Path
    seed: int
    overrides: list[str]
    progress: Progress
    interrupted: list[int] = field(default_factory=list)

    def run(self, trial: optuna.Trial, start: Start) -> None:
        """Run ``trial`` in its slot (``start``), resuming the run of the trial it repeats, if any."""
        flags = suggest(trial, self.declared.space)
        name = trial.user_attrs.get(RESUMES, f"trial_{trial.number:03d}")
        trial.set_user_attr(RESUMES, name)  # for a copy the heartbeat's callback makes should this worker die
        trial_id = _storage_id(trial)
        run = Run(self.declared.config, self.seed, self.study_dir, name,
                  [*self.overrides, *flags, *self._pruning(trial_id)])
        trial.set_user_attr("run_dir", str(run.run_dir))
        resume = run.resume_from()
        if resume:
            for epoch in (read_record(run.run_dir) or RunRecord()).history:  # what it ran before, as if this trial had
                if "val_acc" in epoch:
                    trial.report(epoch["val_acc"], step=epoch["epoch"])
        self.progress(f"trial {trial.number} start: {' '.join(flags)}"
                      + (f" (resuming from {resume})" if resume else ""))
        with trial_heartbeat(trial_id, trial.storage):
            outcome = start(run)
        self._tell(trial, run, outcome)

    def _pruning(self, trial_id: int) -> list[str]:
        return [
            # the storage's URL goes in the trial's environment, never in its config.yaml or train.log
            "--trainer.callbacks+=src.callbacks.optuna_pruning.OptunaPruning",
            f"--trainer.callbacks.storage={ENV_PREFIX}{STORAGE_VARIABLE}",
            f"--trainer.callbacks.study_name={self.study.study_name}",
            f"--trainer.callbacks.trial_id={trial_id}",
            *[f"--trainer.callbacks.{key}={value}" for key, value in self.declared.pruner.items()],
        ]

    def _tell(self, trial: optuna.Trial, run: Run, outcome: dict) -> None:
        trial.set_user_attr("returncode", outcome["returncode"])  # the run's own exit status, as sweep.json keeps it
        pruned_at = _latest(self.study, trial).user_attrs.get("pruned_at_epoch")
        # a run that failed, was interrupted or diverged before its first validation has no value
        value = (read_record(run.run_dir) or RunRecord()).best_val_acc if outcome["status"] in ENDED else None
        if pruned_at is not None:
            _mark_pruned(run.run_dir, pruned_at)
            self.study.tell(trial, state=TrialState.PRUNED)
            self.progress(f"trial {trial.number} pruned after epoch {pruned_at}")
        elif value is None:
            self.study.tell(trial, state=TrialState.FAIL)
            if outcome["status"] == "interrupted":
                self.study.enqueue_trial(trial.params, user_attrs={RESUMES: run.name})
                self.interrupted.append(trial.number)
            self.progress(f"trial {trial.number} {describe(outcome)}")
        else:
            self.study.tell(trial, value)
            self.progress(f"trial {trial.number} end: best val_acc {value:.4f}, {describe(outcome)}")


def _storage_id(trial: optuna.Trial) -> int:
    """The storage's id of ``trial``: what optuna.trial.Trial needs to reach it from another process,
    and what the storage keeps its heartbeat under."""
    storage = trial.storage
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(trial.study.study_name),
                                                           trial.number)


def _latest(study: optuna.Study, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    """The trial as the storage has it now, with what the run's own process wrote."""
    return next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)


def _mark_pruned(run_dir: Path, epoch: int) -> None:
    """Say in the run's results.json why it stopped, for the report."""
    record = read_record(run_dir)
    if record:
        record.stop_reason, record.pruned_at_epoch = "pruned", epoch
        record.write(run_dir)
