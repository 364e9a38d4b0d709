"""The notebook's fixed network: the Keras ``cifar10_cnn`` example, layer for layer.

The network is the constant of every experiment, so its shapes, parameter counts and
initialisation match Keras exactly (glorot-uniform kernels, zero biases); only the
hyperparameters around it vary.
"""

from __future__ import annotations

from torch import nn

NUM_CLASSES = 10


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
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding="same")
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 32, 3)
        self.relu2 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.drop1 = nn.Dropout(0.25)
        self.conv3 = nn.Conv2d(32, 64, 3, padding="same")
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(64, 64, 3)
        self.relu4 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.drop2 = nn.Dropout(0.25)
        self.flatten = nn.Flatten()
        self.dense1 = nn.Linear(64 * 6 * 6, 512)
        self.relu5 = nn.ReLU()
        self.drop3 = nn.Dropout(0.5)
        self.dense2 = nn.Linear(512, num_classes)
        self.apply(_keras_init)
