"""Grids on SLURM: where a submitted grid stands, a stop that cancels its array, and real job arrays
on the local cluster (``scripts/local_cluster.sh``): a grid that ends as the same grid run here does,
a run stopped by the time-limit warning that is requeued and ends bit-identical, a failed run
retried a bounded number of times (a diverged one not), and one run across two tasks (gloo)."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from src.report import submitted_line
from src.results import RunRecord
from src.run_process import Run
from src.search import search
from src.signals import StoppedBySignal
from src.slurm import queue_states
from src.slurm_array import SlurmOptions
from src.slurm_task import run_task
from src.sweep import main, sweep
from src.sweep_record import SWEEP_FILE
from tests.faults import slow
from tests.synthetic import write_run_results
from tests.test_resume import assert_same_run

START = "start one with: sudo scripts/local_cluster.sh"
RUN = ["--trainer.deterministic=true"]


@pytest.fixture(scope="session")
def cluster() -> None:
    """The local cluster's SLURM, once ``sinfo`` shows its partition up; else the test is skipped."""
    if shutil.which("sinfo") is None:
        pytest.skip(f"no SLURM here (sinfo not found); {START}")
    answer = subprocess.run(["sinfo", "--noheader", "--format=%a"], capture_output=True, text=True, timeout=30)
    if answer.returncode != 0 or "up" not in answer.stdout:
        pytest.skip(f"SLURM does not answer ({' '.join(answer.stderr.split()) or 'no partition up'}); {START}")


def wait_until_gone(task: str, limit_s: float = 900) -> None:
    """Until ``task`` has left the queue, requeues included."""
    deadline = time.monotonic() + limit_s
    while queue_states([task]) != {}:
        assert time.monotonic() < deadline, f"SLURM task {task} never ended"
        time.sleep(2)


def starts(run_dir: Path) -> list[str]:
    """The commands that started the run's fit, one per start, from its train.log."""
    return [line for line in (run_dir / "train.log").read_text().splitlines() if line.startswith("$ ")]


def test_the_report_says_which_submitted_runs_are_queued_running_finished_or_failed(tmp_path, monkeypatch, capsys):
    write_run_results(tmp_path, "adam", 42, 0.8)
    runs = {f"{config}/seed_42": {"config": config, "seed": 42, "run_dir": str(tmp_path / config / "seed_42"),
                                  "status": "submitted", "job_id": f"7_{index}"}
            for index, config in enumerate(("adam", "sgd", "rmsprop", "adamw"))}
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"runs": runs}))
    monkeypatch.setattr("src.slurm.queue_states", lambda tasks: {"7_1": "RUNNING", "7_2": "PENDING"})
    assert submitted_line(tmp_path) == ("SLURM tasks: 1 finished; 1 running: sgd seed 42 (7_1); "
                                        "1 queued: rmsprop seed 42 (7_2); 1 failed: adamw seed 42 (7_3)")
    monkeypatch.setattr("src.slurm.queue_states", lambda tasks: None)  # squeue does not answer
    assert submitted_line(tmp_path).endswith("3 unknown: sgd seed 42 (7_1), rmsprop seed 42 (7_2), adamw seed 42 "
                                             "(7_3) (squeue did not answer)")


def test_a_grid_on_this_machine_has_no_slurm_line(recorded_sweep):
    assert submitted_line(recorded_sweep) is None


def test_an_option_slurm_refuses_is_one_error_and_submits_nothing(cluster, tiny_run_args, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--configs", "adam", "--seeds", "1", "--sweep_dir", str(tmp_path / "grid"), "--launcher", "slurm",
              "--partition", "no_such_partition", *tiny_run_args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1 and "Traceback" not in err
    assert "SLURM refused the job array" in err and "invalid partition" in err.lower()


@pytest.mark.parametrize("trains", [True, False])
def test_a_run_stopped_by_the_warning_is_requeued_only_when_it_trained_in_this_allocation(
    trains, tmp_path, monkeypatch, capsys
):
    run = Run(Path("adam.yaml"), 42, tmp_path, "adam")
    last = run.run_dir / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"epoch 1")  # from an earlier allocation

    def stopped_by_the_warning(env: dict, launch: list[str]) -> dict:
        if trains:  # stopped at a safe point after some steps: a newer last.ckpt
            time.sleep(0.01)
            last.write_bytes(b"epoch 1, step 3")
        return {"status": "interrupted", "returncode": 143}  # stopped before any step: last.ckpt as it was

    asked: list[list[str]] = []
    monkeypatch.setattr(run, "execute", stopped_by_the_warning)
    monkeypatch.setattr("src.slurm_task.subprocess.run",
                        lambda command, **kwargs: asked.append(command) or subprocess.CompletedProcess(command, 0))
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert run_task(run, retries=2, told=SimpleNamespace(signum=None), launch=["srun"], env={}) == 143
    out = capsys.readouterr().out
    if trains:
        assert asked == [["scontrol", "requeue", "7_1"]] and "requeued (7_1) to resume from its last.ckpt" in out
    else:  # requeued, it would stop before training again, and again: a loop
        assert asked == [] and "not requeued, as it trained nothing in this allocation" in out


def test_ctrl_c_while_a_sweep_follows_its_array_cancels_each_task_in_one_line(tiny_run_args, tmp_path, monkeypatch):
    cancelled: list[str] = []

    def queue(tasks: list[str]) -> dict[str, str]:
        if not cancelled:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the sweep looks at its tasks
            deadline = time.monotonic() + 30
            while not cancelled and time.monotonic() < deadline:  # the main thread's handler cancels
                time.sleep(0.01)
        return {} if cancelled else {task: "RUNNING" for task in tasks}

    monkeypatch.setattr("src.slurm.submit_array", lambda *args, **kwargs: "7")
    monkeypatch.setattr("src.slurm.queue_states", queue)
    monkeypatch.setattr("src.slurm.Cancel.send_signal", lambda cancel, signum: cancelled.append(cancel.task))
    lines: list[str] = []
    with pytest.raises(StoppedBySignal):
        sweep(["adam", "sgd"], seeds=1, sweep_dir=tmp_path / "grid", overrides=tiny_run_args, slurm=SlurmOptions(),
              progress=lines.append)
    assert cancelled == ["7"]  # the array: its running runs stop at a safe point, its queued ones never start
    assert lines[-1].startswith("sweep stopped by SIGINT: ")


def test_ctrl_c_while_a_search_follows_its_array_cancels_the_array_in_one_line(tiny_run_args, tmp_path, monkeypatch):
    space = tmp_path / "adam_lr.yaml"
    space.write_text("config: adam\nspace:\n  model.optimizer.lr: {low: 1.0e-4, high: 1.0e-3}\n")
    cancelled: list[list[str]] = []

    def queue(tasks: list[str]) -> dict[str, str]:
        if not cancelled:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the search looks at its tasks
        return {} if cancelled else {"7_0": "RUNNING", "7_1": "PENDING"}

    monkeypatch.setattr("src.search.submit_array", lambda *args, **kwargs: "7")
    monkeypatch.setattr("src.search.queue_states", queue)
    monkeypatch.setattr("src.slurm.Cancel.send_signal", lambda cancel, signum: cancelled.append(cancel.task))
    lines: list[str] = []
    with pytest.raises(StoppedBySignal):
        search(space, n_trials=2, study_dir=tmp_path / "study", overrides=tiny_run_args,
               slurm=SlurmOptions(throttle=1), progress=lines.append)
    assert cancelled == ["7"]  # the whole array: the running trial stops, the queued one never starts
    assert lines[-1].startswith("search stopped by SIGINT: SLURM job array 7 cancelled")


@pytest.fixture(scope="module")
def local_grid(tiny_run_args, tmp_path_factory) -> Path:
    """adam and sgd × 2 seeds, deterministic, on this machine: what the same grid on SLURM must equal."""
    root = tmp_path_factory.mktemp("local") / "grid"
    sweep(["adam", "sgd"], seeds=2, sweep_dir=root, overrides=[*tiny_run_args, *RUN], parallel=2,
          progress=lambda line: None)
    return root


@pytest.mark.slow
def test_a_grid_through_slurm_ends_as_the_same_grid_run_here(cluster, local_grid, tiny_run_args, tmp_path):
    lines: list[str] = []
    root = tmp_path / "grid"
    outcomes = sweep(["adam", "sgd"], seeds=2, sweep_dir=root, overrides=[*tiny_run_args, *RUN],
                     slurm=SlurmOptions(), progress=lines.append)
    assert [o["status"] for o in outcomes] == ["finished"] * 4
    assert lines[1].startswith("submitted SLURM job array ") and "squeue -j" in lines[1]
    assert len([line for line in lines if "] end " in line]) == 4 and lines[-1] == "sweep done: 4 of 4 runs complete"
    recorded = json.loads((root / SWEEP_FILE).read_text())["runs"]
    job = recorded["adam/seed_42"]["array_job_id"]
    assert sorted(o["job_id"] for o in recorded.values()) == [f"{job}_{task}" for task in range(4)]
    for key in recorded:  # per epoch, every number as the grid run here has it
        here, there = RunRecord.read(local_grid / key), RunRecord.read(root / key)
        assert there.history == here.history and there.test_acc == here.test_acc
    assert submitted_line(root) == "SLURM tasks: 4 finished"


@pytest.mark.slow
def test_a_run_stopped_by_the_time_limit_warning_is_requeued_and_ends_bit_identical(
    cluster, tiny_run_args, tmp_path, monkeypatch
):
    # SLURM's --signal=TERM@N reaches the run's processes, not the task's batch step; `scancel
    # --signal=TERM` sends the same signal the same way at a moment the test chooses (a real time
    # limit is only checked every 30 s or so, and the run must be training when it comes)
    args = [*tiny_run_args, *RUN, "--trainer.max_epochs=4", slow(0.5)]
    reference = tmp_path / "here"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as the task's one CPU: other threads sum in another order
    sweep(["adam"], seeds=1, sweep_dir=reference, overrides=args, parallel=1, progress=lambda line: None)
    root = tmp_path / "grid"
    (outcome,) = sweep(["adam"], seeds=1, sweep_dir=root, overrides=args, slurm=SlurmOptions(), wait=False,
                       progress=lambda line: None)
    run_dir, task = root / "adam" / "seed_42", outcome["job_id"]
    deadline = time.monotonic() + 600
    while not (run_dir / "results.json").is_file() or len(RunRecord.read(run_dir).history) < 1:
        assert time.monotonic() < deadline and queue_states([task]), "the run never finished its first epoch"
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=TERM", task], check=True, timeout=60)
    wait_until_gone(task)

    first, second = starts(run_dir)
    assert "--ckpt_path" not in first and f"--ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}" in second
    output = Path(outcome["slurm_output"]).read_text()
    assert f"requeued ({task}) to resume from its last.ckpt" in output and "start 2:" in output
    assert_same_run(RunRecord.read(run_dir), RunRecord.read(reference / "adam" / "seed_42"))


@pytest.mark.slow
def test_a_failed_run_is_retried_at_most_retries_times_and_a_diverged_run_is_not(cluster, tiny_run_args, tmp_path):
    crashing = tmp_path / "crashing.yaml"  # killed outright as its first epoch starts, every time
    crashing.write_text("trainer:\n  callbacks:\n    - class_path: tests.faults.SignalAt\n      init_args: "
                        "{signal_name: SIGKILL, point: epoch_start, epoch: 1}\n")
    diverging = tmp_path / "sgd_lr_1e6.yaml"
    diverging.write_text("model:\n  optimizer:\n    class_path: src.optim.KerasSGD\n    init_args:\n      lr: 1.0e6\n")
    lines: list[str] = []
    outcomes = sweep([str(crashing), str(diverging)], seeds=1, sweep_dir=tmp_path / "grid", overrides=tiny_run_args,
                     slurm=SlurmOptions(retries=1), progress=lines.append)
    assert [o["status"] for o in outcomes] == ["failed", "diverged"]
    assert len(starts(Path(outcomes[0]["run_dir"]))) == 2  # the first start and one retry
    assert len(starts(Path(outcomes[1]["run_dir"]))) == 1
    assert "crashing seed 42: retry 1 of 1" in Path(outcomes[0]["slurm_output"]).read_text()
    assert "1 of 2 runs complete, 1 failed" in lines[-1]


@pytest.mark.slow
def test_one_run_across_two_tasks_trains_as_one_lightning_run(cluster, tiny_run_args, tmp_path):
    ddp = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp", "--log_level=INFO"]
    (outcome,) = sweep(["sgd"], seeds=1, sweep_dir=tmp_path / "grid", overrides=[*tiny_run_args, *ddp],
                       slurm=SlurmOptions(), progress=lambda line: None)
    assert outcome["status"] == "finished"
    run_dir = Path(outcome["run_dir"])
    log = (run_dir / "train.log").read_text()
    # srun started both ranks; Lightning's SLURMEnvironment numbered them from SLURM's variables
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    assert RunRecord.read(run_dir).hparams["devices"] == 2
    assert [p.name for p in (tmp_path / "grid" / "sgd").iterdir() if p.is_dir()] == ["seed_42"]  # one run, not two
    (script,) = (tmp_path / "grid" / "slurm").glob("*.sbatch")
    assert "#SBATCH --ntasks-per-node=2\n" in script.read_text()


@pytest.mark.slow
def test_a_studys_trials_through_slurm_are_one_task_each_and_none_is_run_twice(cluster, tiny_run_args, tmp_path):
    space = tmp_path / "adam_lr.yaml"
    space.write_text("config: adam\nspace:\n  model.optimizer.lr: {low: 1.0e-4, high: 1.0e-3}\n")
    lines: list[str] = []
    study, study_dir = search(space, n_trials=2, study_dir=tmp_path / "study", overrides=tiny_run_args,
                              sampler_seed=0, slurm=SlurmOptions(throttle=1), progress=lines.append)
    assert lines[0].startswith("submitted SLURM job array ") and "2 one-trial tasks" in lines[0]
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert trials[0].params != trials[1].params  # each task asked the study for a trial of its own
    assert sorted(p.name for p in study_dir.glob("trial_*")) == ["trial_000", "trial_001"]
    assert lines[-1].startswith("study adam_lr: 2 trials (2 complete); best: trial ")
