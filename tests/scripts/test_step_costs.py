"""scripts/step_costs.py's table: each path's CPU time per step, and its difference from the plain loop."""


def test_each_path_is_shown_against_the_plain_loop_at_its_own_precision(scripts):
    costs = {("32-true", "plain"): 30.0, ("32-true", "fit"): 31.5, ("bf16-mixed", "plain"): 20.0,
             ("bf16-mixed", "fit"): 21.25, ("32-true", "trainer"): 31.0}
    lines = scripts("step_costs").format_table(costs).splitlines()
    assert lines[0] == "| path | 32-true ms/step | vs plain | bf16-mixed ms/step | vs plain |"
    assert lines[2] == "| plain | 30.00 | +0.00 | 20.00 | +0.00 |"
    assert lines[3] == "| fit | 31.50 | +1.50 | 21.25 | +1.25 |"
    assert lines[4] == "| trainer | 31.00 | +1.00 |  |  |"  # not measured in bf16: blank, not zero
