"""The notebook's fixed network: the Keras ``cifar10_cnn`` example, layer for layer.

The network is the constant of every experiment, so its shapes, parameter counts and
initialisation match Keras exactly (glorot-uniform kernels, zero biases); only the
hyperparameters around it vary.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

NUM_CLASSES = 10


def _conv_block(block: int, channels_in: int, channels: int) -> dict[str, nn.Module]:
    """Keras' Conv2D 'same' + ReLU, Conv2D 'valid' + ReLU, MaxPool 2, Dropout .25, under the
    layer names the checkpoints use (block 1: conv1, relu1, conv2, relu2, pool1, drop1)."""
    first = 2 * block - 1
    return {
        f"conv{first}": nn.Conv2d(channels_in, channels, 3, padding="same"),
        f"relu{first}": nn.ReLU(),
        f"conv{first + 1}": nn.Conv2d(channels, channels, 3),
        f"relu{first + 1}": nn.ReLU(),
        f"pool{block}": nn.MaxPool2d(2),
        f"drop{block}": nn.Dropout(0.25),
    }


def _keras_init(module: nn.Module) -> None:
    """Keras' layer defaults: glorot-uniform kernels and zero biases."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class KerasCifarCNN(nn.Sequential):
    """Conv(32)x2 → pool → Conv(64)x2 → pool → Dense(512) → Dense(10), returning logits.

    The final softmax belongs to the loss, as PyTorch losses expect logits.
    Expects float input of shape (N, 3, 32, 32) scaled to [0, 1].
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__(OrderedDict({
            **_conv_block(1, 3, 32),
            **_conv_block(2, 32, 64),
            "flatten": nn.Flatten(),
            "dense1": nn.Linear(64 * 6 * 6, 512),
            "relu5": nn.ReLU(),
            "drop3": nn.Dropout(0.5),
            "dense2": nn.Linear(512, num_classes),
        }))
        self.apply(_keras_init)
