"""scripts/step_costs.py's table: each path's CPU time per step, and its difference from the plain loop."""


def test_each_path_is_shown_against_the_plain_loop_at_its_own_precision(scripts):
    costs = {("32-true", "plain"): 30.0, ("32-true", "fit"): 31.5, ("bf16-mixed", "plain"): 20.0,
             ("bf16-mixed", "fit"): 21.25, ("32-true", "trainer"): 31.0}
    lines = scripts("step_costs").format_table(costs).splitlines()
    assert lines[0] == "| path | 32-true ms/step | vs plain | bf16-mixed ms/step | vs plain |"
    assert lines[2] == "| plain | 30.00 | +0.00 | 20.00 | +0.00 |"
    assert lines[3] == "| fit | 31.50 | +1.50 | 21.25 | +1.25 |"
    assert lines[4] == "| trainer | 31.00 | +1.00 |  |  |"  # not measured in bf16: blank, not zero


def test_a_saved_result_renders_in_the_readme_with_its_machine(rendered):
    report = {"kind": "step_costs", "batch": 32, "steps": 200, "repeats": 2,
              "update_ms": {"eager": 1.234, "compiled": 0.2},
              "rows": [dict(precision="32-true", path="plain", ms_per_step=30.0),
                       dict(precision="32-true", path="trainer", ms_per_step=31.0)]}
    lines = rendered(report, "step-costs.json")
    assert lines[0].startswith("`step-costs.json`: Example CPU 9000, ") and "least of 2 x 200 steps" in lines[0]
    assert "| trainer | 31.00 | +1.00 |" in lines
    assert lines[-1] == "RMSprop's update alone, float32: 1.23 ms eager, 0.20 ms compiled"
