"""A SLURM job array as it is submitted: its script asks for each option and requeues ahead of the
time limit, one run's nodes and tasks are those Lightning is given, and SLURM's flags are refused
without ``--launcher slurm``. Submitting to a real cluster is tested in tests/test_slurm.py."""

import pytest

from src.errors import UserInputError
from src.slurm_array import SlurmOptions, job_script, run_layout
from src.sweep import main


def test_the_array_script_asks_for_each_option_and_requeues_ahead_of_the_time_limit(tmp_path):
    options = SlurmOptions(partition="gpu", account="lab", qos="high", time="4:00:00", cpus_per_task=4,
                           gpus_per_task=1, mem="16G", throttle=3, warning=300)
    script = job_script("sweep:grid", 6, tmp_path / "array.json", options, nodes=2, tasks_per_node=4)
    for line in ("--array=0-5%3", "--partition=gpu", "--account=lab", "--qos=high", "--time=4:00:00",
                 "--cpus-per-task=4", "--gres=gpu:4", "--mem=16G", "--nodes=2", "--ntasks-per-node=4",
                 "--requeue", "--signal=TERM@300", f"--output={tmp_path}/%A_%a.out"):
        assert f"#SBATCH {line}\n" in script
    assert "--gpus-per-task" not in script  # each rank sees its node's 4 GPUs, as Lightning expects
    assert "#SBATCH --gpus-per-task=1\n" in job_script("sweep:grid", 6, tmp_path / "array.json", options)
    assert script.rstrip().endswith(f"-m src.slurm_task {tmp_path / 'array.json'}")
    defaults = job_script("sweep:grid", 2, tmp_path / "array.json", SlurmOptions())
    assert "--array=0-1\n" in defaults and "--partition" not in defaults and "--gpus-per-task" not in defaults


def test_one_run_spans_the_nodes_and_devices_lightning_is_given():
    assert run_layout([{"trainer": {"devices": "auto"}}]) == (1, 1)
    assert run_layout([{"trainer": {"devices": 2, "num_nodes": 2}}] * 3) == (2, 2)
    assert run_layout([{"trainer": {"devices": "2"}}]) == (1, 2)  # --trainer.devices=2, as the CLI resolves it
    for devices in ("0,1,2", [0, 1, 2]):  # a list of devices
        assert run_layout([{"trainer": {"devices": devices}}]) == (1, 3)
    with pytest.raises(UserInputError, match="same nodes and tasks"):
        run_layout([{"trainer": {"devices": 2}}, {"trainer": {"devices": 1}}])


def test_slurm_flags_without_the_slurm_launcher_are_refused(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["--configs", "adam", "--sweep_dir", str(tmp_path), "--partition", "gpu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1
    assert "--partition is for --launcher slurm" in err and not any(tmp_path.iterdir())
