"""Packing: how many runs at once, each one's threads and GPU, from the cores, memory and GPUs
the sweep can see; an explicit --parallel or OMP_NUM_THREADS is taken as given."""

import os
from pathlib import Path

import pytest

from src.packing import Plan, free_memory_gib, machine_plan, plan_packing, run_environments, trains_on_cpu
from src.run_args import check_run_args, resolve_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "todo, cores, memory_gib, runs, threads, basis",
    [
        (10, 2, 20.0, 2, 1, "auto: 2 cores"),
        (3, 16, 100.0, 3, 5, "auto: 3 runs to do"),
        (30, 16, 5.0, 3, 5, "auto: 5.0 GiB of free memory"),  # 1.5 GiB a run
        (30, 16, None, 16, 1, "auto: 16 cores"),  # free memory unknown: no limit from it
        (30, 4, 1.0, 1, None, "auto: 1.0 GiB of free memory"),  # too little even for one: one, with torch's threads
    ],
    ids=["one per core", "runs to do", "memory", "memory unknown", "memory for none"],
)
def test_on_cpus_auto_runs_one_per_core_within_the_runs_to_do_and_the_memory(todo, cores, memory_gib, runs, threads,
                                                                              basis):
    plan = plan_packing(todo, "auto", cores, memory_gib)
    assert (plan.runs, plan.threads, plan.basis) == (runs, threads, basis)
    assert plan.devices == (None,) * runs


def test_an_explicit_parallel_is_taken_as_given_with_the_cores_shared_out():
    assert plan_packing(8, 4, cpu_cores=8, memory_gib=1.0) == Plan(4, 2, (None,) * 4, "--parallel 4")
    assert plan_packing(2, 4, cpu_cores=8) == Plan(2, 4, (None,) * 2, "--parallel 4")  # no idle slots
    assert plan_packing(8, 1, cpu_cores=8).threads is None  # one run: torch's own default, as before


def test_a_parallel_beyond_the_cores_is_taken_as_given_and_warned_of_once(caplog):
    assert plan_packing(4, 99, cpu_cores=2) == Plan(4, 1, (None,) * 4, "--parallel 99")
    assert caplog.text.count("warning: --parallel 99 runs 4 at once on 2 cores, more than they hold") == 1
    caplog.clear()
    plan_packing(30, 3, 16, user_threads=8)  # OMP_NUM_THREADS counts: 3 runs of 8 threads
    assert "--parallel 3 runs 3 at once at OMP_NUM_THREADS=8 on 16 cores" in caplog.text
    caplog.clear()
    plan_packing(2, 99, cpu_cores=2)  # no more runs than cores
    plan_packing(30, 2, cpu_cores=2)
    assert caplog.text == ""


def test_the_users_omp_num_threads_is_kept_and_sets_how_many_fit(monkeypatch):
    expected = Plan(4, 4, (None,) * 4, "auto: 16 cores at OMP_NUM_THREADS=4")
    assert plan_packing(30, "auto", 16, user_threads=4) == expected
    assert plan_packing(30, 2, 16, user_threads=3).threads == 3

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setattr("src.packing.usable_cores", lambda: 12)
    monkeypatch.setattr("src.packing.free_memory_gib", lambda: None)
    plan = machine_plan(10, "auto", cpu_only=True)
    assert plan.runs == 4
    slots = run_environments(plan)
    assert [slots.get()["OMP_NUM_THREADS"] for _ in range(4)] == ["3"] * 4


@pytest.mark.parametrize(
    "gpus, gpu_memory_gib, cores, runs_per_device, todo, devices, threads, basis",
    [
        (["0"], [139.0], 16, "auto", 30, ("0",) * 16, 1, "auto: 16 cores for 1 GPU"),
        (["2", "5"], [80.0, 80.0], 4, "auto", 30, ("2", "5", "2", "5"), 1, "auto: 4 cores for 2 GPUs"),
        (["0"], [7.5], 16, "auto", 30, ("0",) * 3, 5, "auto: 7.5 GiB of GPU memory for 1 GPU"),  # 2 GiB a run
        (["2", "5"], [6.0, 80.0], 16, "auto", 30, ("2", "5", "2", "5", "2", *["5"] * 6), 1,
         "auto: 6.0+80.0 GiB of GPU memory for 2 GPUs"),
        (["2", "5"], [80.0, 80.0], 16, 3, 30, ("2", "5") * 3, 2, "auto: --runs_per_device 3 on 2 GPUs"),
        (["2", "5"], [80.0, 80.0], 16, 3, 3, ("2", "5", "2"), 5, "auto: 3 runs to do"),
    ],
    ids=["cores", "cores per GPU", "GPU memory", "uneven GPU memory", "runs_per_device", "runs to do"],
)
def test_on_gpus_auto_packs_runs_onto_each_gpu_round_robin(gpus, gpu_memory_gib, cores, runs_per_device, todo,
                                                          devices, threads, basis):
    plan = plan_packing(todo, "auto", cores, 128.0, gpus, gpu_memory_gib, runs_per_device)
    assert (plan.devices, plan.threads, plan.basis) == (devices, threads, basis)
    assert plan.runs == len(devices)


def test_on_gpus_host_memory_and_an_explicit_parallel_still_apply():
    assert plan_packing(30, "auto", 16, 4.0, ["0"], [80.0]).devices == ("0", "0")
    assert plan_packing(30, 3, 16, None, ["0", "1"], [80.0, 80.0]).devices == ("0", "1", "0")
    assert plan_packing(30, 1, 16, None, ["0", "1"], [80.0, 80.0]).devices == (None,)  # one run keeps every GPU


def test_the_plan_is_one_readable_phrase():
    assert plan_packing(10, "auto", 2).describe() == "2 at a time, 1 thread each (auto: 2 cores)"
    assert (plan_packing(30, "auto", 16, None, ["2", "5"], [80.0, 80.0], 3).describe()
            == "6 at a time on GPUs 2,5, 2 threads each (auto: --runs_per_device 3 on 2 GPUs)")
    assert plan_packing(1, "auto", 2).describe() == "1 at a time, torch's default threads (auto: 1 run to do)"


def test_each_slot_gets_its_gpu_and_the_plans_threads(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    slots = run_environments(Plan(3, 5, ("2", "5", "2"), "test"))
    envs = [slots.get() for _ in range(3)]
    assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == ["2", "5", "2"]
    assert {env["OMP_NUM_THREADS"] for env in envs} == {"5"}
    assert all(env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT) for env in envs)  # this checkout's src

    (env,) = [run_environments(Plan(1, None, (None,), "test")).get()]
    assert env["CUDA_VISIBLE_DEVICES"] == "2,5" and "OMP_NUM_THREADS" not in env  # left as they were


def test_runs_forced_onto_the_cpu_need_no_gpus():
    sgd = resolve_config("sgd")
    assert trains_on_cpu([check_run_args(sgd, ["--trainer.accelerator", "cpu"])])
    assert not trains_on_cpu([check_run_args(sgd, ["--trainer.accelerator=cpu"]), check_run_args(sgd, [])])


def test_free_memory_comes_from_meminfo_or_is_unknown(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       8388608 kB\nMemFree:        1048576 kB\nMemAvailable:   3145728 kB\n")
    assert free_memory_gib(meminfo) == 3.0
    meminfo.write_text("MemTotal:       8388608 kB\n")
    assert free_memory_gib(meminfo) is None
    assert free_memory_gib(tmp_path / "missing") is None
