"""``--fast true``: the precision it picks for each kind of machine, an explicit precision kept, and
the hint a float32 run on a CPU with native bf16 gets, with a factor only from a measured result."""

import json
from pathlib import Path

import pytest

from src.fast import FastChoice, choose, fast_precision, left_to_fast, measured_speedup, speedup_hint

AMX_CPU = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni"]
AVX2_CPU = ["avx2", "fma"]
XEON = {"cpu": "Example Xeon", "cpu_flags": AMX_CPU, "cpu_count": 2}


def on_a_cpu_with(monkeypatch: pytest.MonkeyPatch, flags: list[str]) -> None:
    """Make this machine's CPU read as an ``Example Xeon`` with ``flags``, for --fast and its hint."""
    monkeypatch.setattr("src.fast.machine", lambda *args, **kwargs: {**XEON, "cpu_flags": flags})


def no_gpu_query():
    raise AssertionError("a CPU's precision does not depend on a GPU")


@pytest.mark.parametrize("flags,precision", [
    (AMX_CPU, "bf16-mixed"),
    (["avx2", "avx512f", "avx512_bf16"], "bf16-mixed"),  # AVX-512 bf16 without AMX
    (["avx2", "avx512f", "avx512_vnni"], "32-true"),  # AVX-512 without bf16: emulated, slower than float32
    (AVX2_CPU, "32-true"),
    ([], "32-true"),  # flags unknown (not Linux): never the slow path
])
def test_on_a_cpu_bf16_only_where_it_computes_bf16_natively(flags, precision):
    chosen, why = fast_precision(False, flags, no_gpu_query)
    assert chosen == precision
    assert why.startswith("the CPU has neither" if precision == "32-true" else "the CPU has avx512_bf16")


@pytest.mark.parametrize("supports_bf16,precision", [(True, "bf16-mixed"), (False, "16-mixed")])
def test_on_a_gpu_its_own_best_half_precision(supports_bf16, precision):
    assert fast_precision(True, AVX2_CPU, lambda: supports_bf16)[0] == precision


def test_a_precision_given_explicitly_is_kept_and_off_means_nothing_chosen():
    assert choose(True, "32-true", "cpu") == FastChoice("32-true", "given explicitly")
    assert choose(True, "bf16-mixed", "cpu").precision == "bf16-mixed"
    assert choose(False, None, "cpu") is None


def test_what_is_left_to_the_machine_is_what_fast_sets_and_no_precision_given():
    assert left_to_fast({"fast": True, "trainer": {"precision": None}}) == (
        "model.fast_dropout", "model.compile_update", "trainer.precision")
    assert left_to_fast({"fast": True, "trainer": {"precision": "32-true"}}) == ("model.fast_dropout", "model.compile_update")
    assert left_to_fast({"fast": False, "trainer": {"precision": None}}) == ()


def test_the_record_says_which_options_were_on():
    record = FastChoice("bf16-mixed", "the CPU has amx_bf16").record()
    assert record == {"precision": "bf16-mixed", "fast_dropout": True, "compile_update": True}


def benchmark_result(folder: Path, name: str, machine: dict, fit_fp32: float, fit_fast_bf16: float) -> Path:
    rows = [dict(device="cpu", precision="32-true", path="fit", images_per_s=fit_fp32),
            dict(device="cpu", precision="bf16-mixed", path="fit fast", images_per_s=fit_fast_bf16),
            dict(device="cpu", precision="bf16-mixed", path="fit", images_per_s=1.0)]
    path = folder / name
    path.write_text(json.dumps({"machine": machine, "rows": rows}))
    return path


def test_the_hint_takes_its_factor_from_a_benchmark_of_the_same_kind_of_cpu(tmp_path):
    benchmark_result(tmp_path, "a-capped.json", {**XEON, "isa_caps": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}}, 100, 900)
    benchmark_result(tmp_path, "b-other-model.json", {**XEON, "cpu": "Other CPU"}, 100, 800)
    benchmark_result(tmp_path, "c-no-amx.json", {**XEON, "cpu_flags": ["avx512_bf16"]}, 100, 700)
    measured = benchmark_result(tmp_path, "d-same.json", {**XEON, "isa_caps": {}}, 800, 2000)
    assert measured_speedup(XEON, tmp_path) == (2.5, str(measured))
    hint = speedup_hint("32-true", "cpu", XEON, tmp_path)
    assert hint.startswith("this CPU computes bf16 natively (avx512_bf16, amx_bf16): --fast true trains about 2.5x")
    assert str(measured) in hint


def test_without_a_matching_benchmark_the_hint_names_no_number(tmp_path):
    benchmark_result(tmp_path, "other.json", {**XEON, "cpu": "Other CPU"}, 100, 800)
    hint = speedup_hint("32-true", "cpu", XEON, tmp_path)
    assert "python scripts/benchmark.py" in hint and "x as fast" not in hint
    assert "x as fast" not in speedup_hint("32-true", "cpu", XEON, tmp_path / "missing")


@pytest.mark.parametrize("precision,device,machine", [
    ("bf16-mixed", "cpu", XEON),  # already fast
    ("32-true", "cuda", XEON),  # the hint is about the CPU
    ("32-true", "cpu", {**XEON, "cpu_flags": AVX2_CPU}),  # float32 is this CPU's fastest
])
def test_no_hint_where_fast_would_not_change_the_precision(precision, device, machine, tmp_path):
    benchmark_result(tmp_path, "same.json", XEON, 800, 2000)
    assert speedup_hint(precision, device, machine, tmp_path) is None
