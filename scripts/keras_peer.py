"""The Keras peer of scripts/benchmark.py: the same network, optimizer and data, trained by Keras 3
on TensorFlow (CPU) through ``model.fit``, as the notebook trained it.

    python scripts/keras_peer.py --precision 32-true --steps 200 --warmup 30 --json -

prints one JSON line (images/s and how it ran). scripts/benchmark.py runs it in a subprocess, so
that TensorFlow and PyTorch never share a process or their thread pools. It imports neither torch
nor this project's code; TensorFlow and Keras come from ``pip install -e ".[peer]"``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any

import numpy as np

BATCH = 32
PARAMS = 1_250_858  # the Keras example's count, which src/model.py matches too
LR, DECAY, RHO, EPSILON = 1e-4, 1e-6, 0.9, 1e-8  # configs/rmsprop_baseline.yaml; epsilon of src/optim.KerasRMSprop
POLICIES = {"32-true": "float32", "bf16-mixed": "mixed_bfloat16"}  # Lightning's precision names
INSTALL_HINT = 'install them with `pip install -e ".[peer]"` (a separate virtual environment will do; give its python with --peer_python)'


def random_arrays(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images (NHWC) and labels: speed does not depend on pixel values. The one
    definition of the benchmark's data, so both frameworks train on the same arrays."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, count)


def import_keras() -> tuple[Any, Any]:
    """TensorFlow and Keras 3, or one ``error:`` line and exit status 2 when this python lacks them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notices would bury the JSON's neighbours
    try:
        import tensorflow as tf  # first: without it, the message names it rather than Keras' backend
        import keras
    except ImportError as err:
        print(f"error: the Keras peer needs TensorFlow and Keras 3, which {sys.executable} cannot import ({err}); "
              f"{INSTALL_HINT}.", file=sys.stderr)
        raise SystemExit(2) from None
    if int(keras.__version__.split(".")[0]) < 3:
        print(f"error: the Keras peer needs Keras 3, but {sys.executable} has Keras {keras.__version__}; {INSTALL_HINT}.",
              file=sys.stderr)
        raise SystemExit(2)
    return tf, keras


def build_model(keras: Any) -> Any:
    """The notebook's cifar10_cnn, layer for layer (separate Activation layers, as it had them).
    Its input is uint8; Rescaling scales each batch to [0, 1] inside the step, as the project
    scales each sliced batch. The softmax stays float32 under a mixed policy, as Keras advises."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input((32, 32, 3), dtype="uint8"),
        layers.Rescaling(1 / 255),
        layers.Conv2D(32, (3, 3), padding="same"), layers.Activation("relu"),
        layers.Conv2D(32, (3, 3)), layers.Activation("relu"),
        layers.MaxPooling2D(pool_size=(2, 2)), layers.Dropout(0.25),
        layers.Conv2D(64, (3, 3), padding="same"), layers.Activation("relu"),
        layers.Conv2D(64, (3, 3)), layers.Activation("relu"),
        layers.MaxPooling2D(pool_size=(2, 2)), layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(512), layers.Activation("relu"), layers.Dropout(0.5),
        layers.Dense(10), layers.Activation("softmax", dtype="float32"),
    ])


def optimizer(keras: Any) -> Any:
    """RMSprop at the baseline's lr with Keras 2's legacy decay, lr / (1 + decay·iterations) per update.

    Keras 3 adds epsilon under the square root (lr·g / √(v + ε)); Keras 2 and KerasRMSprop add it
    after (lr·g / (√v + ε)). The arithmetic per step is the same, so speed is comparable."""
    schedule = keras.optimizers.schedules.InverseTimeDecay(LR, decay_steps=1, decay_rate=DECAY)
    return keras.optimizers.RMSprop(learning_rate=schedule, rho=RHO, epsilon=EPSILON)


def step_timer(keras: Any, warmup: int, steps: int) -> Any:
    """A callback that times as scripts/benchmark.py's StepTimer times Lightning: from the first
    step after ``warmup`` to the end of training, which it ends after ``warmup + steps`` steps."""

    class StepTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.done, self.updates, self.start, self.end = 0, 0, 0.0, 0.0

        def sync(self) -> int:
            # reading the update counter waits for every update before it, as torch.cuda.synchronize
            # would; TensorFlow runs CPU steps synchronously anyway, so this costs a scalar read
            return int(self.model.optimizer.iterations.numpy())

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if self.done == warmup:
                self.sync()
                self.start = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.done += 1
            if self.done == warmup + steps:
                self.model.stop_training = True

        def on_train_end(self, logs: dict | None = None) -> None:
            self.updates = self.sync()
            self.end = time.perf_counter()

    return StepTimer()


def train(precision: str, steps: int, warmup: int, images: int, seed: int, inter_op_threads: int = 0) -> dict[str, Any]:
    """Images/s of ``steps`` timed steps of ``model.fit`` after ``warmup`` untimed ones, and how it ran.

    ``inter_op_threads`` 1 makes TensorFlow run a step's independent ops one after another, as
    eager PyTorch does; 0 keeps its default.
    """
    tf, keras = import_keras()
    if inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)  # before TensorFlow starts
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(POLICIES[precision])
    model = build_model(keras)
    params = model.count_params()
    if params != PARAMS:
        raise AssertionError(f"the Keras model has {params:,} parameters, not the example's {PARAMS:,}")
    model.compile(optimizer=optimizer(keras), loss="categorical_crossentropy", metrics=["accuracy"])
    x, labels = random_arrays(images, seed)
    y = keras.utils.to_categorical(labels, 10)
    timer = step_timer(keras, warmup, steps)
    epochs = -(-(steps + warmup) // -(-images // BATCH))  # enough epochs; the timer stops at the step count
    with contextlib.redirect_stdout(sys.stderr):  # Keras' progress bar (its default, kept) must not mix with the JSON
        model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=True, callbacks=[timer])
    if timer.done != steps + warmup or timer.updates != steps + warmup:
        raise AssertionError(f"fit ran {timer.done} steps and {timer.updates} optimizer updates, not {steps + warmup}")
    return {
        "precision": precision,
        "policy": keras.mixed_precision.global_policy().name,
        "images_per_s": steps * BATCH / (timer.end - timer.start),
        "steps": steps,
        "warmup": warmup,
        "batch": BATCH,
        "params": params,
        "jit_compile": model.jit_compile,  # Keras' "auto" resolved: off where TensorFlow sees only CPUs
        "verbose": "auto",  # fit's default: a progress bar, as the notebook trained
        **versions(tf, keras),
    }


def versions(tf: Any, keras: Any) -> dict[str, Any]:
    """Versions and thread settings: TensorFlow's 0 means its default, one thread per core."""
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "tf_devices": [d.device_type for d in tf.config.list_physical_devices()],
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),  # unset: TensorFlow's default (on, on x86)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--precision", choices=sorted(POLICIES), default="32-true")
    parser.add_argument("--steps", type=int, default=200, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps first")
    parser.add_argument("--images", type=int, default=16_000, help="random images to train on (as scripts/benchmark.py)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random images and of Keras")
    parser.add_argument("--inter_op_threads", type=int, default=0,
                        help="TensorFlow's threads for running independent ops at once (default 0: its own choice)")
    parser.add_argument("--check", action="store_true", help="only report versions: TensorFlow and Keras import")
    parser.add_argument("--json", default="-", help="where the JSON goes; - for stdout")
    args = parser.parse_args()
    if args.check:
        result = versions(*import_keras())
    else:
        if args.images < BATCH or args.steps < 1 or args.warmup < 0 or args.inter_op_threads < 0:
            parser.error("--images must be at least one batch, --steps at least 1, and --warmup and "
                         "--inter_op_threads not negative")
        result = train(args.precision, args.steps, args.warmup, args.images, args.seed, args.inter_op_threads)
    if args.json == "-":
        print(json.dumps(result), flush=True)
    else:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
