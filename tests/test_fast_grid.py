"""The fast grid against the float32 grid: each config's accuracy, each of the notebook's conclusions, and what
the switch saves on a kind of machine that ran both, said from the runs and never typed in."""

import json

from src.comparison import ConfigRuns
from src.fast_grid import conclusion, markdown, speedups
from src.report_markdown import Activity
from src.results import RunRecord

AMX = {"device": "cpu", "cpu": "Intel Xeon", "cpu_count": 2, "cpu_flags": ["avx512_bf16", "amx_bf16"]}
EPYC = {"device": "cpu", "cpu": "AMD EPYC", "cpu_count": 2, "cpu_flags": ["avx2", "fma"]}


def runs(name, accuracies, seconds_per_epoch=60.0, machine=AMX, epochs=30):
    return ConfigRuns(name, [
        RunRecord(config=name, stop_reason="early_stopping", epochs=epochs, test_acc=acc,
                  wall_time_s=seconds_per_epoch * epochs, environment=machine)
        for acc in accuracies])


def grid(accuracies, seconds_per_epoch=60.0, machine=AMX):
    return {name: runs(name, values, seconds_per_epoch, machine) for name, values in accuracies.items()}


SGD_BEATS_RMSPROP = {"sgd": [0.775, 0.772, 0.777], "rmsprop_baseline": [0.745, 0.735, 0.755]}


def test_the_same_accuracies_three_times_faster_read_as_the_same_answers_and_the_saving():
    float32 = grid(SGD_BEATS_RMSPROP, seconds_per_epoch=90.0)
    fast = grid({"sgd": [0.776, 0.771, 0.776], "rmsprop_baseline": [0.744, 0.738, 0.750]}, seconds_per_epoch=30.0)
    assert speedups(float32, fast) == {"Intel Xeon, 2 cores (avx512_bf16, amx_bf16)": 30.0 / 90.0}
    sentence = conclusion(float32, fast)
    assert sentence.startswith("With `--fast true` the notebook's grid (6 finished runs) trained 3.0× faster per "
                               "epoch on Intel Xeon, 2 cores (avx512_bf16, amx_bf16)")
    assert ("every one of the 2 configs compared has its fast mean inside the float32 runs' 95% prediction interval; "
            "1 of the notebook's") in sentence
    assert sentence.endswith("1 of the notebook's 10 conclusions is settled on both grids so far, and it comes out the same.")
    float32["sgd_momentum"] = runs("sgd_momentum", [0.770, 0.768, 0.772])
    fast["sgd_momentum"] = runs("sgd_momentum", [0.771, 0.769, 0.768])
    assert "2 of the notebook's 10 conclusions are settled on both grids so far, and all come out the same" in conclusion(float32, fast)


def test_the_first_config_compared_is_named_in_the_sentence():
    fast = grid({"sgd": [0.776, 0.771], "rmsprop_baseline": [0.744]})
    assert ("the one config compared so far, `sgd`, has its fast mean inside the float32 runs' 95% prediction "
            "interval") in conclusion(grid(SGD_BEATS_RMSPROP), fast)


def test_a_fast_mean_outside_the_float32_interval_and_a_changed_conclusion_are_named():
    float32 = grid(SGD_BEATS_RMSPROP)
    fast = grid({"sgd": [0.700, 0.702, 0.701], "rmsprop_baseline": [0.744, 0.738, 0.750]})
    sentence = conclusion(float32, fast)
    assert "`sgd` has its fast mean outside the float32 runs' 95% prediction interval" in sentence
    assert "these of the notebook's conclusions come out differently: SGD beats RMSprop" in sentence
    text = markdown(float32, fast)
    assert "| SGD beats RMSprop | holds: better by 3.0 points" in text and "| **no** |" in text
    assert "| `sgd` | 77.5 ± 0.3 (n=3) | 70.1 ± 0.1 (n=3) | no, below" in text


def test_grids_on_different_machines_give_no_ratio_rather_than_one_across_machines(tmp_path):
    float32 = grid(SGD_BEATS_RMSPROP, seconds_per_epoch=200.0, machine=EPYC)
    fast = grid(SGD_BEATS_RMSPROP, seconds_per_epoch=30.0)
    assert speedups(float32, fast) == {}
    sentence = conclusion(float32, fast, benchmarks=tmp_path)
    assert "(6 finished runs) has no saving measured yet, as no kind of machine has run both grids (the " \
           "benchmark's `fit fast` against `fit` gives it per step)" in sentence
    # a benchmark of the fast grid's kind of CPU gives the saving per step instead
    rows = [{"device": "cpu", "precision": "32-true", "path": "fit", "images_per_s": 500.0},
            {"device": "cpu", "precision": "bf16-mixed", "path": "fit fast", "images_per_s": 1250.0}]
    (tmp_path / "xeon.json").write_text(json.dumps({"machine": {k: AMX[k] for k in ("cpu", "cpu_flags")}, "rows": rows}))
    assert ("as no kind of machine has run both grids (per step, the benchmark measures it 2.5× as fast as the float32 "
            f"default on Intel Xeon, 2 cores (avx512_bf16, amx_bf16), in `{tmp_path / 'xeon.json'}`)") \
        in conclusion(float32, fast, benchmarks=tmp_path)
    text = markdown(float32, fast)
    assert "| AMD EPYC, 2 cores (avx2, fma) | 6, 3.3 min | – | – |" in text
    assert "| Intel Xeon, 2 cores (avx512_bf16, amx_bf16) | – | 6, 30 s | – |" in text


def test_the_costs_count_run_time_epochs_and_the_hours_some_run_was_training():
    float32, fast = grid(SGD_BEATS_RMSPROP, seconds_per_epoch=90.0), grid(SGD_BEATS_RMSPROP, seconds_per_epoch=30.0)
    text = markdown(float32, fast, (Activity(0.0, 36_000.0, 30_000.0), None))
    assert "- float32 grid: 4.5 h of run time over its 6 finished runs (180 epochs); some run was training during 8.3 h" in text
    assert "- fast grid: 90.0 min of run time over its 6 finished runs (180 epochs)\n" in text


def test_a_config_short_of_two_runs_on_either_side_is_shown_but_not_judged():
    float32 = grid(SGD_BEATS_RMSPROP)
    fast = grid({"sgd": [0.776], "rmsprop_baseline": [0.741]})
    assert conclusion(float32, fast) == (
        "The fast grid (`--fast true`) has 2 finished runs in `results/fast`; a config is compared with its float32 "
        "runs once it has two there, and none has yet.")
    assert "not published yet" in conclusion(float32, {})
    assert "| `sgd` | 77.5 ± 0.3 (n=3) | 77.6 (n=1) | – | – |" in markdown(float32, fast)
