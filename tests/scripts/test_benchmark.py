"""scripts/benchmark.py's parts that need no timing: the machine it describes, its table, and
how it refuses a Keras peer it cannot run, before any timing starts."""

import json
import mmap
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.demos.boring_classes import BoringModel

from src.errors import UserInputError
from src.doc_tables import page_table
from tests.test_results import FAKE_CPUINFO

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"
PEER = {"tensorflow": "9.1", "keras": "9.2", "tf_intra_op_threads": 0, "tf_inter_op_threads": 3}


def row(path, images_per_s, precision="32-true"):
    return dict(device="cpu", precision=precision, path=path, images_per_s=images_per_s, epoch_s=45_000 / images_per_s,
                matmul_tflops=0.5, floor_images_per_s=4000.0)


def test_the_machine_line_names_cpu_flags_and_each_frameworks_version_and_threads(scripts):
    benchmark = scripts("benchmark")
    described = benchmark.describe_machine(PEER, cpuinfo=FAKE_CPUINFO)
    assert described["cpu"] == "Example CPU 9000" and described["cpu_flags"] == ["avx2", "avx512f", "amx_tile", "avx512_vnni"]
    line = benchmark.machine_line(described)
    assert line.startswith("Example CPU 9000, ") and "flags: avx2, avx512f, amx_tile, avx512_vnni" in line
    assert f"torch {described['torch']} ({described['torch_threads']} threads" in line
    assert "TensorFlow 9.1 + Keras 9.2 (intra-op/inter-op threads: default/3)" in line
    assert "TensorFlow" not in benchmark.machine_line(benchmark.describe_machine(None, cpuinfo=""))


def test_a_capped_instruction_set_is_named_beside_the_flags_it_hides(scripts, monkeypatch):
    benchmark = scripts("benchmark")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    line = benchmark.machine_line(benchmark.describe_machine(None, cpuinfo=FAKE_CPUINFO))
    assert "flags: avx2, avx512f, amx_tile, avx512_vnni, measured with the instruction sets capped: ONEDNN_MAX_CPU_ISA=AVX512_CORE;" in line
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert "capped" not in benchmark.machine_line(benchmark.describe_machine(None, cpuinfo=FAKE_CPUINFO))


def test_the_table_compares_each_path_with_plain_and_fit_with_keras_per_precision(scripts):
    rates = {("32-true", "fit"): 300.0, ("32-true", "plain"): 400.0, ("32-true", "keras"): 200.0,
             ("bf16-mixed", "fit"): 150.0, ("bf16-mixed", "plain"): 160.0}
    rows = [row(path, rate, precision) for (precision, path), rate in rates.items()]
    lines = scripts("benchmark").format_table(rows).splitlines()
    keras = next(line for line in lines if "| keras |" in line).split("|")
    assert keras[5].strip() == f"{200 / 400:.2f}"
    assert lines[-1] == f"fit / keras, cpu 32-true: {300 / 200:.2f}"  # bf16 had no peer: no line of its own
    assert not any("fit / keras" in line for line in scripts("benchmark").format_table(rows[3:]).splitlines())


def test_a_peer_python_without_tensorflow_is_refused_before_any_timing(scripts, without_tensorflow, monkeypatch, capsys):
    benchmark = scripts("benchmark")
    timed = []
    monkeypatch.setattr(benchmark, "matmul_tflops", lambda *args: timed.append(args))
    monkeypatch.setattr(sys, "argv", ["benchmark.py", "--peer", "keras", "--peer_python", sys.executable])
    with pytest.raises(SystemExit) as exited:
        benchmark.main()
    assert exited.value.code == 2 and not timed
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert line.startswith("error: ") and 'pip install -e ".[peer]"' in line and "| device |" not in out


def test_a_peer_python_that_cannot_run_is_a_user_error(scripts, tmp_path):
    with pytest.raises(UserInputError, match="--peer_python .* cannot run"):
        scripts("benchmark").run_peer(str(tmp_path / "no-python"), "--check")


def test_the_performance_page_tables_are_what_the_saved_results_say(scripts):
    # regenerate with: python scripts/benchmark.py --tables results/benchmark/*.json
    benchmark = scripts("benchmark")
    root = Path(__file__).resolve().parents[2]
    saved = sorted((root / "results" / "benchmark").glob("*.json"))
    assert saved
    expected = benchmark.performance_tables(saved)
    assert page_table(root / "docs" / "performance.md", benchmark.BENCHMARK_TABLE) == expected


def test_a_saved_sweep_result_renders_with_its_machine_and_packed_over_serial(rendered):
    sweep = [dict(parallel="1", plan="1 run at a time", runs=4, steps=200, wall_s=40.0, images_per_s=640.0),
             dict(parallel="auto", plan="2 runs at a time, 1 thread each", runs=4, steps=200, wall_s=25.0,
                  images_per_s=1024.0)]
    lines = rendered({"batch": 32, "sweep": sweep, "packed_over_serial": 1024.0 / 640.0}, "sweep.json")
    assert lines[0].startswith("`sweep.json`: Example CPU 9000, ") and "a sweep of 4 runs x 200 steps" in lines[0]
    assert "| auto | 2 runs at a time, 1 thread each | 25.0 | 1024 |" in lines
    assert lines[-1] == "packed / one at a time: 1.60"


def test_step_costs_show_each_path_against_the_plain_loop_at_its_own_precision(rendered):
    costs = {("32-true", "plain"): 30.0, ("32-true", "fit"): 31.5, ("bf16-mixed", "plain"): 20.0,
             ("bf16-mixed", "fit"): 21.25, ("32-true", "trainer"): 31.0}
    rows = [dict(precision=precision, path=path, ms_per_step=ms) for (precision, path), ms in costs.items()]
    report = {"kind": "step_costs", "batch": 32, "steps": 200, "repeats": 2, "rows": rows,
              "update_ms": {"eager": 1.234, "compiled": 0.2}}
    lines = rendered(report, "step-costs.json")
    assert lines[0].startswith("`step-costs.json`: Example CPU 9000, ") and "least of 2 x 200 steps" in lines[0]
    assert "| path | 32-true ms/step | vs plain | bf16-mixed ms/step | vs plain |" in lines
    assert "| plain | 30.00 | +0.00 | 20.00 | +0.00 |" in lines
    assert "| fit | 31.50 | +1.50 | 21.25 | +1.25 |" in lines
    assert "| trainer | 31.00 | +1.00 |  |  |" in lines  # not measured in bf16: blank, not zero
    assert lines[-1] == "RMSprop's update alone, float32: 1.23 ms eager, 0.20 ms compiled"


def test_step_costs_with_page_faults_show_them_per_precision_and_the_statistic_used(rendered):
    rows = [dict(precision="bf16-mixed", path="plain", ms_per_step=20.0, page_faults_per_step=183.4),
            dict(precision="bf16-mixed", path="fit", ms_per_step=19.5, page_faults_per_step=16.0)]
    report = {"kind": "step_costs", "batch": 32, "steps": 200, "repeats": 3, "statistic": "median", "rows": rows,
              "update_ms": {"eager": 1.0, "compiled": 0.2}}
    lines = rendered(report, "step-costs.json")
    assert "median of 3 x 200 steps" in lines[0]
    assert "| path | bf16-mixed ms/step | vs plain | faults/step |" in lines
    assert "| plain | 20.00 | +0.00 | 183 |" in lines
    assert "| fit | 19.50 | -0.50 | 16 |" in lines


def test_step_costs_with_python_calls_show_them_beside_the_page_faults(rendered):
    rows = [dict(precision="bf16-mixed", path="plain", ms_per_step=20.0, page_faults_per_step=3.0,
                 python_calls_per_step=569.3),
            dict(precision="bf16-mixed", path="fit", ms_per_step=21.5, page_faults_per_step=4.0,
                 python_calls_per_step=3804.0)]
    report = {"kind": "step_costs", "batch": 32, "steps": 200, "repeats": 3, "statistic": "median", "rows": rows,
              "update_ms": {"eager": 1.0, "compiled": 0.2}}
    lines = rendered(report, "step-costs.json")
    assert "| path | bf16-mixed ms/step | vs plain | faults/step | calls/step |" in lines
    assert "| plain | 20.00 | +0.00 | 3 | 569 |" in lines
    assert "| fit | 21.50 | +1.50 | 4 | 3804 |" in lines


def test_step_costs_with_turns_taken_in_one_process_give_each_paths_speed_against_the_plain_loop(rendered):
    rows = [dict(precision="bf16-mixed", path="plain", ms_per_step=20.0)]
    paired = [dict(path=path, precision=precision, turns=12, turn_steps=50, path_ms=ms, plain_ms=plain,
                   speed_over_plain=plain / ms)
              for path, precision, ms, plain in (("trainer", "32-true", 47.4, 46.1), ("fit", "bf16-mixed", 23.3, 21.8))]
    report = {"kind": "step_costs", "batch": 32, "steps": 200, "repeats": 3, "rows": rows,
              "update_ms": {"eager": 1.0, "compiled": 0.2}, "paired": paired}
    assert rendered(report, "step-costs.json")[-1] == (
        "Taking turns with the plain loop, 50 steps each, in one process (12 turns each), the speed over the plain "
        "loop's, median turn by turn: `trainer` 32-true 0.97 (47.40 against 46.10 ms per step); "
        "`fit` bf16-mixed 0.94 (23.30 against 21.80 ms per step)")


def test_taking_turns_times_each_side_on_its_own_turns(scripts, monkeypatch):
    step_costs = scripts("step_costs")
    ticks = iter(range(1000))
    monkeypatch.setattr(step_costs.time, "process_time", lambda: next(ticks))
    ran = []

    class Plain:
        def run(self, steps):
            ran.append(steps)

    turns = step_costs.TakeTurns(Plain(), turn=3, warmup=2)
    trainer = pl.Trainer(max_steps=2 + 3 * 2, callbacks=[turns], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(BoringModel())
    assert ran == [3, 3]  # a plain turn after each of the Trainer's, none during its warm-up
    assert len(turns.trainer_s) == len(turns.plain_s) == 2
    assert all(seconds == 1 for seconds in turns.plain_s)  # read just before and after each plain turn


def test_a_measurement_counts_the_page_faults_of_its_timed_steps_alone(scripts, capsys):
    benchmark = scripts("benchmark")
    buffers = []

    def path(device, precision, steps, warmup, data, clock):  # a step that faults in a fresh megabyte
        clock()
        for _ in range(steps):
            # mapped afresh, not malloc'd: a heap that earlier tests grew and freed would hand back pages
            # already faulted in (glibc raises its mmap threshold after freeing large blocks)
            buffers.append(mmap.mmap(-1, 1 << 20))
            for page in range(0, 1 << 20, mmap.PAGESIZE):
                buffers[-1][page] = 1
        clock()
        return 1.0

    benchmark.PATHS["faulting"] = path
    try:
        benchmark.measure_here("faulting", "cpu", "32-true", steps=20, warmup=0, clock="cpu")
    finally:
        del benchmark.PATHS["faulting"]
    faults = json.loads(capsys.readouterr().out)["page_faults_per_step"]
    assert 200 <= faults <= 300  # a megabyte is 256 pages of 4 KiB


def test_a_measurement_counts_the_python_calls_of_its_timed_steps_alone(scripts, capsys):
    benchmark = scripts("benchmark")

    def inner():
        return None

    def step():  # three calls a step: step, inner, and the builtin len
        inner()
        len(())

    def path(device, precision, steps, warmup, data, clock):
        for _ in range(warmup):
            step()
        clock()
        for _ in range(steps):
            step()
        clock()
        return 1.0

    benchmark.PATHS["calling"] = path
    try:
        for steps in (10, 30):
            benchmark.measure_here("calling", "cpu", "32-true", steps=steps, warmup=5, clock="cpu", count_calls=True)
    finally:
        del benchmark.PATHS["calling"]
    ten, thirty = (json.loads(line)["python_calls_per_step"] * steps
                   for line, steps in zip(capsys.readouterr().out.splitlines(), (10, 30)))
    assert thirty - ten == 3 * 20  # the counter's own few calls at the edges cancel out
    assert sys.getprofile() is None  # and it leaves the interpreter as it found it


def test_the_step_timer_times_the_steps_alone_not_the_epoch_end_after_them(scripts):
    benchmark = scripts("benchmark")
    events = []

    class EpochEnd(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            events.append(f"step {trainer.global_step}")

        def on_train_epoch_end(self, *args):
            events.append("epoch end")  # where Lightning saves a checkpoint

    timer = benchmark.StepTimer(warmup=2, steps=3, clock=lambda: events.append("clock") or len(events))
    trainer = pl.Trainer(max_steps=5, callbacks=[timer, EpochEnd()], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(BoringModel())
    assert events == ["step 1", "step 2", "clock", "step 3", "step 4", "clock", "step 5", "epoch end"]


def test_each_measurement_runs_in_a_process_of_its_own_interleaved_and_the_median_is_reported(
        scripts, monkeypatch, tmp_path, capsys):
    benchmark = scripts("benchmark")
    commands, rates = [], iter(range(100, 1000, 10))

    def run(command, **kwargs):  # what each measuring process would print
        commands.append(command)
        return subprocess.CompletedProcess(command, 0, json.dumps({"images_per_s": next(rates)}) + "\n", "")

    monkeypatch.setattr(benchmark.subprocess, "run", run)
    monkeypatch.setattr(benchmark, "matmul_tflops", lambda *args: 1.0)
    monkeypatch.setattr(sys, "argv", ["benchmark.py", "--devices", "cpu", "--repeats", "3", "--clock", "cpu",
                                      "--json", str(tmp_path / "result.json")])
    threads = torch.get_num_threads()
    try:
        benchmark.main()
    finally:
        torch.set_num_threads(threads)
    measured = [dict(arg.removeprefix("--").split("=", 1) for arg in command[2:]) for command in commands]
    one_round = [(precision, path) for precision in ("32-true", "bf16-mixed") for path in benchmark.TABLE_PATHS]
    assert [(m["precision"], m["measure"]) for m in measured] == one_round * 3  # rounds, one after another
    assert all(command[:2] == [sys.executable, str(SCRIPT)] for command in commands)
    assert all((m["clock"], m["threads"]) == ("cpu", "1") for m in measured)
    report = json.loads((tmp_path / "result.json").read_text())
    assert (report["statistic"], report["clock"], report["machine"]["torch_threads"]) == ("median", "cpu", 1)
    fit = next(r for r in report["rows"] if (r["precision"], r["path"]) == ("32-true", "fit"))
    assert fit["all_images_per_s"] == [100, 200, 300] and fit["images_per_s"] == 200  # the first of each round
    assert "median of 3 x 200 timed steps, CPU time" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--threads", "2"], ["--devices", "cuda"], ["--peer", "keras"]])
def test_the_cpu_clock_is_refused_where_it_would_mismeasure(scripts, monkeypatch, capsys, args):
    benchmark = scripts("benchmark")
    monkeypatch.setattr(benchmark, "matmul_tflops", lambda *a: pytest.fail("timed before refusing"))
    monkeypatch.setattr(sys, "argv", ["benchmark.py", "--clock", "cpu", *args])
    with pytest.raises(SystemExit) as exited:
        benchmark.main()
    assert exited.value.code == 2 and "error: --clock cpu " in capsys.readouterr().err


def test_a_saved_result_says_how_it_was_measured_older_ones_the_best_by_wall_clock(rendered):
    rows = [row("fit", 300.0), row("plain", 400.0)]
    new = rendered({"batch": 32, "steps": 200, "repeats": 3, "statistic": "median", "clock": "cpu", "rows": rows},
                   "new.json")
    assert new[0].endswith("; batch 32, median of 3 x 200 timed steps, CPU time")
    old = rendered({"batch": 32, "steps": 150, "repeats": 3, "rows": rows}, "old.json")
    assert old[0].endswith("; batch 32, best of 3 x 150 timed steps, wall-clock time")


def test_a_saved_result_says_what_fast_gains_at_the_precision_it_picks_on_that_cpu(rendered):
    rows = [row(path, rate, precision) for precision, rates in (("32-true", (400, 500, 450, 550)),
                                                                ("bf16-mixed", (900, 1000, 950, 1050)))
            for path, rate in zip(("fit", "fit fast", "plain", "plain fast"), rates)]
    report = {"batch": 32, "steps": 200, "repeats": 3, "rows": rows}
    # the made-up CPU has AVX-512 but no bf16 instructions: --fast keeps float32 there
    assert rendered(report, "avx512.json")[-1] == "--fast true over the default (fit, 32-true): 1.25x, in 32-true"
    bf16 = {"cpu": "Example CPU 9000", "cpu_flags": ["avx512f", "avx512_bf16"], "cpu_count": 2, "torch": "9",
            "torch_threads": 2, "torch_interop_threads": 2, "isa_caps": {}}
    native = rendered({**report, "machine": bf16}, "native.json")
    assert native[-1] == "--fast true over the default (fit, 32-true): 2.50x, in bf16-mixed"
    capped = rendered({**report, "machine": {**bf16, "isa_caps": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}}}, "capped.json")
    assert not any(line.startswith("--fast") for line in capped)  # the cap hides what the flags promise
