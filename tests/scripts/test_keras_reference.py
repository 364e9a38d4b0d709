"""The Keras reference trains what the project trains: the same configs' numbers, the same images, and
(where TensorFlow is installed) Keras 2.0.8's updates as the project's optimizers compute them."""

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.optim import KerasAdam, KerasRMSprop, KerasSGD, keras_decay
from src.results import RESULTS_FILE, read_record
from tests.scripts.conftest import SCRIPTS

# a python with TensorFlow (the [peer] extra), apart from this one, which imports torch: the two crash in one process
PEER_PYTHON = os.environ.get("HPARAM_LAB_PEER_PYTHON")
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def test_each_cell_takes_its_numbers_from_the_projects_config(scripts):
    read_config = scripts("keras_reference").read_config
    sgd, baseline, adam = map(read_config, ("sgd", "rmsprop_baseline", "adam_auto_staged"))
    assert (sgd["optimizer"], sgd["optimizer_args"]["lr"], sgd["decay"]) == ("KerasSGD", 0.01, 0.0)
    assert (baseline["optimizer"], baseline["optimizer_args"]["lr"], baseline["decay"]) == ("KerasRMSprop", 1e-4, 1e-6)
    assert (adam["lr_stages"], adam["lr_factor"], adam["epochs_per_fit"]) == (3, 0.1, 100)  # 300 epochs, 100 a fit
    assert baseline["patience"] == 5 and baseline["epochs_per_fit"] == 100 and baseline["lr_stages"] == 1


def archive(path, per_class=2):
    """A tiny image-folder archive as the shared one is laid out: cifar10-jpg/<split>/<class>/N.png."""
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "test"):
            for label, name in enumerate(CLASS_NAMES):
                for index in range(per_class):
                    buffer = io.BytesIO()
                    Image.fromarray(np.full((32, 32, 3), 10 * label + index, np.uint8)).save(buffer, "PNG")
                    info = tarfile.TarInfo(f"cifar10-jpg/{split}/{name}/{index}.png")
                    info.size = len(buffer.getvalue())
                    tar.addfile(info, io.BytesIO(buffer.getvalue()))


def test_the_images_are_labelled_by_their_class_folder_in_alphabetical_order_and_decoded_once(scripts, tmp_path):
    load_images = scripts("keras_reference").load_images
    archive(tmp_path / "c.tar.gz")
    first = load_images(tmp_path / "c.tar.gz", tmp_path / "data")
    x, y = first["train"]
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8
    assert all((x[y == label] // 10 == label).all() for label in range(10))  # pixel value 10·label + index
    (tmp_path / "c.tar.gz").unlink()  # a second load reads the decoded copy
    again = load_images(tmp_path / "c.tar.gz", tmp_path / "data")
    assert all(np.array_equal(a, b) for s in ("train", "test") for a, b in zip(first[s], again[s]))


def test_a_python_without_tensorflow_gets_one_error_line_and_status_2(without_tensorflow, tmp_path):
    archive(tmp_path / "c.tar.gz", per_class=1)
    run = subprocess.run([sys.executable, str(SCRIPTS / "keras_reference.py"), "sgd", "--source", str(tmp_path / "c.tar.gz"),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert not (tmp_path / "out").exists()


def test_a_finished_run_is_a_complete_project_record_of_its_stopped_epoch(scripts, tmp_path):
    module = scripts("keras_reference")
    config = module.read_config("adam_auto_staged")
    accuracies = [(0, 0.60), (0, 0.70), (1, 0.75), (1, 0.74), (2, 0.76), (2, 0.73)]  # (stage, val_acc) per epoch
    state = {"seconds": 30.0, "processes": 2,
             "history": [{"epoch": n, "stage": stage, "val_acc": acc, "lr": 1e-3 * 0.1 ** stage}
                         for n, (stage, acc) in enumerate(accuracies, 1)]}
    values = module.run_record(config, 43, tmp_path, state, Path("c.tar.gz"), train_images=500, test_images=100,
                               test_loss=0.9, test_acc=0.7301, framework="keras 9 on tensorflow 9", threads=2)
    module.write_json(tmp_path / RESULTS_FILE, values)  # as train() writes it
    record = read_record(tmp_path)
    assert record is not None and record.is_complete and record.config == "adam_auto_staged"
    assert (record.stop_reason, record.epochs, record.best_epoch, record.best_val_acc) == ("early_stopping", 6, 5, 0.76)
    assert record.stopped_epoch_test_acc == 0.73 and record.test_acc == 0.7301  # the epoch it stopped at
    assert record.train_images_per_s == 6 * 500 / 30.0
    assert record.environment["threads"] == 2 and record.environment["framework"] == "keras 9 on tensorflow 9"
    assert record.environment["processes"] == 2  # trained by two processes: stopped once and started again
    assert "stage" not in record.history[0] and record.hparams["seed"] == 43


def test_a_stopped_run_keeps_the_seconds_of_every_finished_epoch(scripts, tmp_path):
    module = scripts("keras_reference")
    ticks = iter([100.0, 160.0, 230.0,  # the first process: two epochs, then stopped in its third
                  500.0, 590.0, 600.0])  # started again: one epoch, then the test
    state = {"history": [], "seconds": 0.0}
    clock = module.RunClock(state, now=lambda: next(ticks))
    clock.lap()
    clock.lap()
    module.write_json(tmp_path / module.STATE_FILE, state)
    resumed = json.loads((tmp_path / module.STATE_FILE).read_text())
    clock = module.RunClock(resumed, now=lambda: next(ticks))
    clock.lap()
    clock.lap()
    assert resumed["seconds"] == 130.0 + 100.0  # the cut-off epoch is lost, not the two before it


STOPPING_RUN = """
import os, sys
from pathlib import Path
scripts, source, out, stop_after = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, scripts)
import keras_reference as reference
make_callbacks = reference.callbacks
def callbacks(keras, run_dir, state, *args):
    class Stop(keras.callbacks.Callback):  # the process killed once this epoch is recorded
        def on_epoch_end(self, epoch, logs=None):
            if len(state["history"]) == stop_after:
                os._exit(3)
    return [*make_callbacks(keras, run_dir, state, *args), Stop()]
reference.callbacks = callbacks
reference.train("adam_auto_staged", 43, source, out / "data", out, epochs_per_fit=3)
"""


@pytest.mark.skipif(not PEER_PYTHON, reason="set HPARAM_LAB_PEER_PYTHON to a python with the [peer] extra")
def test_a_run_stopped_and_started_again_trains_exactly_as_one_that_never_stopped(tmp_path):
    archive(tmp_path / "c.tar.gz", per_class=6)
    (tmp_path / "run.py").write_text(STOPPING_RUN)
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}

    def train(out, stop_after):
        return subprocess.run([PEER_PYTHON, str(tmp_path / "run.py"), str(SCRIPTS), str(tmp_path / "c.tar.gz"),
                               str(tmp_path / out), str(stop_after)], env=env, capture_output=True, text=True,
                              timeout=300).returncode

    assert train("whole", 0) == 0
    # stopped inside the first fit, one epoch into the second, and right as the second ends: 3 epochs a fit
    assert [train("stopped", after) for after in (2, 4, 6, 0)] == [3, 3, 3, 0]
    whole, stopped = (json.loads((tmp_path / out / "adam_auto_staged" / "seed_43" / RESULTS_FILE).read_text())
                      for out in ("whole", "stopped"))
    assert len(whole["history"]) == 9 and [e["lr"] for e in whole["history"]][::3] == pytest.approx([1e-3, 1e-4, 1e-5])
    assert stopped["history"] == whole["history"]  # every epoch's losses and accuracies, to the last bit
    assert (stopped["test_loss"], stopped["test_acc"]) == (whole["test_loss"], whole["test_acc"])
    assert (whole["environment"]["processes"], stopped["environment"]["processes"]) == (1, 4)


@pytest.mark.parametrize("name, ours, kwargs", [
    ("KerasRMSprop", KerasRMSprop, {}),
    ("KerasSGD", KerasSGD, {}),
    ("KerasSGD", KerasSGD, {"momentum": 0.1}),
    ("KerasSGD", KerasSGD, {"momentum": 0.5, "nesterov": True}),
    ("KerasAdam", KerasAdam, {}),
])
def test_keras_2_updates_in_keras_3_match_the_projects_optimizers(scripts, monkeypatch, name, ours, kwargs):
    # Keras on its torch backend: TensorFlow and torch in one process crash; the update code is the same either way
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")  # the [peer] extra; CI runs without it
    config = {"optimizer": name, "optimizer_args": {"lr": 0.01, **kwargs}, "decay": 0.1}
    optimizer = scripts("keras_reference").make_optimizer(keras, config, 0.01)
    start = np.linspace(-1, 1, 6, dtype=np.float32)
    variable = keras.Variable(start.copy())
    param = torch.nn.Parameter(torch.from_numpy(start.copy()))
    torch_optimizer = ours([param], lr=0.01, **kwargs)
    decay = keras_decay(torch_optimizer, 0.1)
    for step in range(4):
        gradient = np.cos(start * (step + 1)).astype(np.float32)
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), variable)])
        param.grad = torch.from_numpy(gradient.copy())
        torch_optimizer.step()
        decay.step()
    assert np.allclose(np.asarray(variable), param.detach().numpy(), rtol=1e-5, atol=1e-6)
