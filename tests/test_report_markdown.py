"""report.md's text: where the runs ran, in words that fit how many runs there were."""

from src.comparison import collect
from src.report_markdown import where_they_ran
from tests.synthetic import write_run_results


def test_a_report_of_one_run_speaks_of_that_run(tmp_path):
    write_run_results(tmp_path, "sgd", 42, 0.8, environment={"device": "cpu", "git_commit": "310af67af8df"})
    text = "\n".join(where_they_ran(collect(tmp_path)))
    assert "Run time is the run's own wall time, its resumes included. Per epoch" in text
    assert "over all" not in text and "overlap" not in text
    assert "Code: commit 310af67." in text
