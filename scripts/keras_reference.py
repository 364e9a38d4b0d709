"""The notebook's cells, trained by Keras 3 on TensorFlow on the same images: the reference the port is held to.

    python scripts/keras_reference.py sgd --seed 43 --source ../shared/data/cifar10-jpg.tar.gz \\
        --out runs/keras_reference

trains one config of ``configs/`` as the 2017 notebook trained it: the network of
scripts/keras_peer.py (Keras' glorot-uniform kernels, zero biases), Keras 2.0.8's own optimizer
updates and legacy ``decay``, batch 32, all 50,000 training images, validation on the test set,
EarlyStopping on validation accuracy (Keras 2.0.8's ``patience=5`` stops where Keras 3's
``patience=6`` does), then ``evaluate`` of the weights of the epoch it stopped at. A config with
``lr_stages`` (``adam_auto_staged``) is fitted again at a tenth of the rate, the optimizer compiled
afresh and the weights kept, as the notebook's recompiles did; each fit has up to ``max_epochs /
lr_stages`` epochs. It writes ``OUT/<config>/seed_<S>/results.json`` in the project's run record
format, so ``src.publish`` and ``src.report`` read these runs as they read the project's own.

Started again after an interruption, a run goes on from its last finished epoch exactly as if it
had not stopped: the weights and the optimizer's state saved after every epoch, early stopping's
counters rebuilt from the recorded epochs, and each epoch's order of images and dropout masks drawn
from the epoch's number (a process that began again from the seed would replay the randomness of
the run's first epochs). Its wall time counts every finished epoch of every process that trained
it. It never imports torch; TensorFlow and Keras come from ``pip install -e ".[peer]"``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's src, installed or not

from keras_peer import BATCH, PARAMS, build_model, import_keras  # noqa: E402 - beside this script
from src.compat import keras_variable_index  # noqa: E402
from src.files import write_atomic  # noqa: E402
from src.paths import CONFIG_DIR  # noqa: E402
from src.results import RESULTS_FILE, SCHEMA_VERSION, environment  # noqa: E402

SPLITS, CLASSES = ("train", "test"), 10
CACHE_NAME = "keras-reference-cifar10.npz"  # apart from the project's own cache: this script never reads that format
STATE_FILE = "keras_state.json"


def fail(message: str) -> None:
    """One ``error:`` line and exit status 2, as the project's commands answer a user's mistake."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_config(name: str) -> dict[str, Any]:
    """What the notebook's cell set, from ``configs/base.yaml`` and ``configs/<name>.yaml``: the same numbers
    the project trains with."""
    base = yaml.safe_load((CONFIG_DIR / "base.yaml").read_text())
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        fail(f"no config {name!r} in {CONFIG_DIR}; give one of its experiment names (sgd, rmsprop_baseline, ...).")
    own = yaml.safe_load(path.read_text()) or {}
    optimizer = own.get("model", {}).get("optimizer", {"class_path": "src.optim.KerasRMSprop"})
    stopping = {**base["early_stopping"], **own.get("early_stopping", {})}
    stages = stopping["lr_stages"]
    return {
        "config": name,
        "optimizer": optimizer["class_path"].rsplit(".", 1)[-1],
        "optimizer_args": {"lr": 1e-3, **optimizer.get("init_args", {})},
        "decay": own.get("model", {}).get("decay", base["model"]["decay"]),
        "lr_stages": stages,
        "lr_factor": stopping["lr_factor"],
        "patience": stopping["patience"],
        "epochs_per_fit": own.get("trainer", {}).get("max_epochs", base["trainer"]["max_epochs"]) // stages,
    }


def load_images(source: Path, data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """CIFAR-10 from an image-folder archive (``*/train|test/<class>/*``), as uint8 NHWC and labels;
    decoded once into ``data_dir``. Class folders sorted alphabetically are the official label order."""
    cache = data_dir / CACHE_NAME
    if cache.is_file():
        with np.load(cache) as stored:
            if str(stored["source"]) == str(source.resolve()):
                return {s: (stored[f"{s}_x"], stored[f"{s}_y"]) for s in SPLITS}
    files: dict[str, list[tuple[str, bytes]]] = {s: [] for s in SPLITS}
    with tarfile.open(source) as archive:
        for member in archive:
            parts = PurePosixPath(member.name).parts
            if member.isfile() and len(parts) >= 3 and parts[-3] in SPLITS:
                files[parts[-3]].append((parts[-2], archive.extractfile(member).read()))
    splits = {}
    for split, entries in files.items():
        classes = sorted({cls for cls, _ in entries})
        if len(classes) != CLASSES:
            fail(f"{source} holds {len(classes)} class folders under {split}/, not {CLASSES}: give CIFAR-10's images.")
        x = np.stack([np.asarray(Image.open(BytesIO(data)).convert("RGB")) for _, data in entries])
        y = np.array([classes.index(cls) for cls, _ in entries], dtype=np.int64)
        splits[split] = (x, y)
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial.npz")
    np.savez(partial, source=np.array(str(source.resolve())),
             **{f"{s}_{k}": v for s, (x, y) in splits.items() for k, v in (("x", x), ("y", y))})
    os.replace(partial, cache)
    return splits


def keras2_optimizers(keras: Any) -> dict[str, Any]:
    """Keras 2.0.8's RMSprop, SGD and Adam updates as Keras 3 optimizers (Keras 3 changed two of them:
    RMSprop's epsilon moved under the root, Adam's epsilon onto the bias-corrected root). The learning
    rate Keras 3 passes in already carries the legacy decay, ``lr / (1 + decay·iterations)``."""
    ops = keras.ops

    class Keras2RMSprop(keras.optimizers.Optimizer):
        def __init__(self, learning_rate: Any, rho: float = 0.9, epsilon: float = 1e-8, **kwargs: Any) -> None:
            super().__init__(learning_rate=learning_rate, name="Keras2RMSprop", **kwargs)
            self.rho, self.epsilon = rho, epsilon

        def build(self, variables: list) -> None:
            if not self.built:
                super().build(variables)
                self.accumulators = self.add_optimizer_variables(variables, "accumulator")

        def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
            lr = ops.cast(learning_rate, variable.dtype)
            accumulator = self.accumulators[keras_variable_index(self, variable)]
            self.assign(accumulator, self.rho * accumulator + (1 - self.rho) * ops.square(gradient))
            self.assign_sub(variable, lr * gradient / (ops.sqrt(accumulator) + self.epsilon))

    class Keras2SGD(keras.optimizers.Optimizer):
        def __init__(self, learning_rate: Any, momentum: float = 0.0, nesterov: bool = False, **kwargs: Any) -> None:
            super().__init__(learning_rate=learning_rate, name="Keras2SGD", **kwargs)
            self.momentum, self.nesterov = momentum, nesterov

        def build(self, variables: list) -> None:
            if not self.built:
                super().build(variables)
                self.moments = self.add_optimizer_variables(variables, "moment")

        def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
            lr = ops.cast(learning_rate, variable.dtype)
            moment = self.moments[keras_variable_index(self, variable)]
            velocity = self.momentum * moment - lr * gradient  # v = m·v − lr·g
            self.assign(moment, velocity)
            self.assign_add(variable, self.momentum * velocity - lr * gradient if self.nesterov else velocity)

    class Keras2Adam(keras.optimizers.Optimizer):
        def __init__(self, learning_rate: Any, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                     **kwargs: Any) -> None:
            super().__init__(learning_rate=learning_rate, name="Keras2Adam", **kwargs)
            self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

        def build(self, variables: list) -> None:
            if not self.built:
                super().build(variables)
                self.ms = self.add_optimizer_variables(variables, "m")
                self.vs = self.add_optimizer_variables(variables, "v")

        def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
            lr = ops.cast(learning_rate, variable.dtype)
            t = ops.cast(self.iterations + 1, variable.dtype)
            lr_t = lr * ops.sqrt(1 - ops.power(self.beta_2, t)) / (1 - ops.power(self.beta_1, t))
            index = keras_variable_index(self, variable)
            m, v = self.ms[index], self.vs[index]
            self.assign(m, self.beta_1 * m + (1 - self.beta_1) * gradient)
            self.assign(v, self.beta_2 * v + (1 - self.beta_2) * ops.square(gradient))
            self.assign_sub(variable, lr_t * m / (ops.sqrt(v) + self.epsilon))

    return {"KerasRMSprop": Keras2RMSprop, "KerasSGD": Keras2SGD, "KerasAdam": Keras2Adam}


def make_optimizer(keras: Any, config: dict[str, Any], lr: float) -> Any:
    """A fresh optimizer for one fit, as the notebook's ``compile`` made one: state and update count from zero."""
    kind = keras2_optimizers(keras)[config["optimizer"]]
    args = {k: v for k, v in config["optimizer_args"].items() if k in ("momentum", "nesterov")}
    rate = keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=1, decay_rate=config["decay"])
    return kind(learning_rate=rate if config["decay"] else lr, **args)


def write_json(path: Path, value: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(value, indent=2) + "\n")  # a stop mid-write leaves the previous file


class RunClock:
    """The run's own seconds, added to its state at every finished epoch: a stop loses only the epoch it cut
    off, and a resumed run's time counts every process that trained it."""

    def __init__(self, state: dict[str, Any], now: Callable[[], float] = time.monotonic) -> None:
        self.state, self.now = state, now
        self.mark = now()

    def lap(self) -> None:
        moment = self.now()
        self.state["seconds"] += moment - self.mark
        self.mark = moment


def epoch_batches(tf: Any, x: np.ndarray, y: np.ndarray, seed: int, first_epoch: int, epochs: int) -> Any:
    """The training images in batches of 32 for ``epochs`` epochs from run epoch ``first_epoch`` on, each
    epoch in an order drawn afresh from (seed, epoch), as Keras 2.0.8's ``fit(shuffle=True)`` permuted them
    with numpy: an epoch's order does not depend on how many processes trained the run before it, so a
    resumed run sees what an uninterrupted one would."""
    orders = np.stack([np.random.default_rng([seed, epoch]).permutation(len(x))
                       for epoch in range(first_epoch, first_epoch + epochs)])
    images, targets = tf.constant(x), tf.constant(y)
    return (tf.data.Dataset.from_tensor_slices(orders)
            .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(BATCH))
            .map(lambda rows: (tf.gather(images, rows), tf.gather(targets, rows)))
            .prefetch(2))


def callbacks(keras: Any, run_dir: Path, state: dict[str, Any], clock: RunClock, stage: int, patience: int,
              steps_per_epoch: int, epochs_per_fit: int) -> list[Any]:
    """Early stopping as Keras 2.0.8 counted; each epoch's randomness drawn from its number; after each epoch,
    its weights and optimizer state, then its record, one line and the run's state that names them."""
    done = [epoch for epoch in state["history"] if epoch["stage"] == stage]

    class ResumedEarlyStopping(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs: dict | None = None) -> None:
            super().on_train_begin(logs)
            for index, epoch in enumerate(done):  # the counters as they stood when this fit was cut off
                self.on_epoch_end(index, {"val_accuracy": epoch["val_acc"]})

    class DropoutCounters(keras.callbacks.Callback):
        """The epoch's dropout masks, a function of the epoch's number: the dropout layers' counters stand
        where an uninterrupted run's would (one draw per step)."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            number = len(state["history"])
            for layer in self.model.layers:
                if isinstance(layer, keras.layers.Dropout):
                    layer_seed = layer.seed_generator.state.numpy()[0]  # set by the run's seed, never changed
                    layer.seed_generator.state.assign(np.array([layer_seed, number * steps_per_epoch],
                                                               dtype=layer_seed.dtype))

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            optimizer = self.model.optimizer
            rate = optimizer.learning_rate
            lr = float(rate(optimizer.iterations) if callable(rate) else rate)
            number = len(state["history"]) + 1
            weights = f"epoch_{number}.weights.h5"  # written whole before the state names it
            self.model.save_weights(run_dir / weights)
            state["history"].append({
                "epoch": number, "stage": stage, "train_loss": float(logs["loss"]),
                "train_acc": float(logs["accuracy"]), "val_loss": float(logs["val_loss"]),
                "val_acc": float(logs["val_accuracy"]), "lr": lr,
                "ends_fit": bool(self.model.stop_training) or epoch + 1 == epochs_per_fit,  # early stopping ran first
            })
            state["weights"] = weights
            clock.lap()
            write_json(run_dir / STATE_FILE, state)
            for older in run_dir.glob("epoch_*.weights.h5"):
                if older.name != weights:
                    older.unlink()
            last = state["history"][-1]
            print(f"epoch {last['epoch']} (fit {stage + 1}) - train_loss {last['train_loss']:.4f} - train_acc "
                  f"{last['train_acc']:.4f} - val_loss {last['val_loss']:.4f} - val_acc {last['val_acc']:.4f} - "
                  f"lr {lr:.3g}", flush=True)

    return [
        ResumedEarlyStopping(monitor="val_accuracy", mode="max", patience=patience + 1, min_delta=0),
        DropoutCounters(),
        Record(),
    ]


def run_record(config: dict[str, Any], seed: int, run_dir: Path, state: dict[str, Any], source: Path, *,
               train_images: int, test_images: int, test_loss: float, test_acc: float, framework: str,
               threads: int) -> dict[str, Any]:
    """A finished run in the project's run record format, from what ``train`` kept; apart from TensorFlow,
    so that the project's tests hold it to the format ``src.publish`` and ``src.report`` read.
    ``threads`` is TensorFlow's intra-op setting or ``TF_NUM_INTRAOP_THREADS`` (0: its default, every core)."""
    history = state["history"]
    best = max(history, key=lambda epoch: epoch["val_acc"])
    last_fit = [e for e in history if e["stage"] == config["lr_stages"] - 1]
    return {
        "config": config["config"],
        "run_dir": str(run_dir),
        "stop_reason": "max_epochs" if len(last_fit) == config["epochs_per_fit"] else "early_stopping",
        "epochs": len(history),
        "best_epoch": best["epoch"],
        "best_val_acc": best["val_acc"],
        "test_loss": float(test_loss),
        "test_acc": float(test_acc),  # the stopped epoch's weights, as the notebook evaluated them
        "wall_time_s": round(state["seconds"], 1),
        "train_images_per_s": round(len(history) * train_images / state["seconds"], 1) if state["seconds"] else None,
        "hparams": {"framework": "keras", "optimizer": f"keras2.{config['optimizer']}",
                    "optimizer_args": config["optimizer_args"], "decay": config["decay"], "loss": "cross_entropy",
                    "batch_size": BATCH, "lr_stages": config["lr_stages"], "lr_factor": config["lr_factor"],
                    "patience": config["patience"], "seed": seed},
        "data": {"source": str(source), "train_images": train_images, "val_images": test_images,
                 "test_images": test_images, "validates_on_test": True},
        "environment": {**environment("cpu", "32-true", threads or os.cpu_count() or 1), "framework": framework,
                        "tf_intra_op_threads": threads, "processes": state["processes"]},
        "history": [{k: v for k, v in epoch.items() if k not in ("stage", "ends_fit")} for epoch in history],
        "schema_version": SCHEMA_VERSION,
    }


def train(config_name: str, seed: int, source: Path, data_dir: Path, out: Path,
          epochs_per_fit: int | None = None) -> dict[str, Any]:
    """One run of the notebook's cell for ``config_name``; its record, as written to ``results.json``."""
    tf, keras = import_keras()
    config = read_config(config_name)
    if epochs_per_fit:
        config["epochs_per_fit"] = epochs_per_fit
    run_dir = out / config_name / f"seed_{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"history": [], "seconds": 0.0}
    state["processes"] = state.get("processes", 0) + 1  # saved with the first epoch this process finishes
    data = load_images(source, data_dir)
    (x, labels), (x_test, labels_test) = data["train"], data["test"]
    y, y_test = keras.utils.to_categorical(labels, CLASSES), keras.utils.to_categorical(labels_test, CLASSES)

    keras.utils.set_random_seed(seed)  # the same initial weights and dropout seeds in every process of a run
    model = build_model(keras)
    if model.count_params() != PARAMS:
        raise AssertionError(f"the Keras model has {model.count_params():,} parameters, not {PARAMS:,}")
    ended = {epoch["stage"] for epoch in state["history"] if epoch["ends_fit"]}
    stages = [stage for stage in range(config["lr_stages"]) if stage not in ended]
    steps_per_epoch = -(-len(x) // BATCH)
    clock = RunClock(state)
    for stage in stages:
        done = [epoch for epoch in state["history"] if epoch["stage"] == stage]
        lr = config["optimizer_args"]["lr"] * config["lr_factor"] ** stage
        if state["history"] and not done and stage == stages[0]:
            model.load_weights(run_dir / state["weights"])  # the weights a finished fit kept, not its optimizer
        model.compile(optimizer=make_optimizer(keras, config, lr), loss="categorical_crossentropy", metrics=["accuracy"])
        if done:  # cut off in the middle of this fit: its weights and its optimizer's state as they were
            model.optimizer.build(model.trainable_variables)
            model.load_weights(run_dir / state["weights"])
        batches = epoch_batches(tf, x, y, seed, len(state["history"]), config["epochs_per_fit"] - len(done))
        model.fit(batches, epochs=config["epochs_per_fit"], initial_epoch=len(done), steps_per_epoch=steps_per_epoch,
                  validation_data=(x_test, y_test), verbose=0,
                  callbacks=callbacks(keras, run_dir, state, clock, stage, config["patience"], steps_per_epoch,
                                      config["epochs_per_fit"]))
    if not stages:  # every fit had ended: only the evaluation was left
        model.load_weights(run_dir / state["weights"])
    # evaluate's loss and metric, compiled again: a run resumed after its last fit has not compiled any
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=BATCH, verbose=0)
    clock.lap()
    record = run_record(config, seed, run_dir, state, source, train_images=len(labels), test_images=len(labels_test),
                        test_loss=test_loss, test_acc=test_acc,
                        framework=f"keras {keras.__version__} on tensorflow {tf.__version__}",
                        threads=tf.config.threading.get_intra_op_parallelism_threads()
                        or int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0))
    write_json(run_dir / RESULTS_FILE, record)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("config", help="an experiment of configs/ (sgd, rmsprop_baseline, adam_auto_staged, ...)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--source", type=Path, required=True, help="CIFAR-10 as an image-folder .tar.gz")
    parser.add_argument("--data_dir", type=Path, default=Path("data"), help="where the decoded images are kept")
    parser.add_argument("--out", type=Path, default=Path("runs/keras_reference"))
    parser.add_argument("--epochs_per_fit", type=int, help="epochs each fit may run (default: the config's, "
                        "max_epochs / lr_stages: the notebook's 100); fewer for a quick check")
    args = parser.parse_args()
    if not args.source.is_file():
        parser.error(f"--source {args.source} is not a file; give the .tar.gz of CIFAR-10's images")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # float32 on the CPU, as the project's runs it is compared with
    read_config(args.config)  # a wrong name is refused before TensorFlow loads
    record = train(args.config, args.seed, args.source, args.data_dir, args.out, args.epochs_per_fit)
    print(f"result   {record['stop_reason']} after {record['epochs']} epochs; test_acc {record['test_acc']:.4f} "
          f"(the stopped epoch); {args.out / args.config / f'seed_{args.seed}' / RESULTS_FILE}", file=sys.stderr)


if __name__ == "__main__":
    main()
