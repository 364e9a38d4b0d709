"""report.md's text: where the runs ran, in words that fit how many runs there were."""

from src.comparison import collect
from src.report_markdown import where_they_ran
from src.results import RunRecord
from tests.synthetic import write_run_results


def test_a_report_of_one_run_speaks_of_that_run(tmp_path):
    write_run_results(tmp_path, "sgd", 42, 0.8, environment={"device": "cpu", "git_commit": "310af67af8df"})
    text = "\n".join(where_they_ran(collect(tmp_path)))
    assert "Run time is the run's own wall time, its resumes included. Per epoch" in text
    assert "over all" not in text and "overlap" not in text
    assert "Code: commit 310af67." in text


def test_a_run_without_a_wall_time_is_named_and_left_out_of_run_time_and_time_per_epoch(tmp_path):
    cpu = {"device": "cpu", "cpu": "AMD EPYC", "cpu_count": 2}
    for seed in (1, 2, 3):  # wall times 101 + 102 + 103 s, 4 epochs each
        write_run_results(tmp_path, "sgd", seed, 0.8, environment=cpu)
    run_dir = tmp_path / "sgd" / "seed_3"
    untimed = RunRecord.read(run_dir)
    untimed.wall_time_s = None
    untimed.write(run_dir)
    lines = where_they_ran(collect(tmp_path))
    assert [line for line in lines if line.startswith("| cpu")] == [
        "| cpu | AMD EPYC | 2 | – | – | – | 3 | 3.4 min | 25 s |"]  # 203 s over the 8 epochs of seeds 1 and 2
    assert "3.4 min over the 2 of 3 runs whose record kept it (not sgd seed 3)" in "\n".join(lines)
