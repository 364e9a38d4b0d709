"""The notebook's fixed network: the Keras ``cifar10_cnn`` example, layer for layer.

The network is the constant of every experiment, so its shapes, parameter counts and
initialisation match Keras exactly (glorot-uniform kernels, zero biases); only the
hyperparameters around it vary.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

NUM_CLASSES = 10


class ByteMaskDropout(nn.Dropout):
    """``nn.Dropout`` whose CPU masks come from 8 random bits per element, drawn 64 at a time.

    PyTorch's CPU dropout draws one random number per element, serially: at batch 32 the
    network's three dropouts take 10-20% of a training step. Comparing a random byte with
    ``256·p`` keeps each element with probability exactly ``1 − p`` when ``p`` is a multiple of
    1/256 (this network's 0.25 and 0.5), independently, scaled by ``1/(1 − p)``: the same
    dropout, from other random numbers, so a seed gives other masks than ``nn.Dropout``'s.
    Elsewhere (GPU) it is ``nn.Dropout``, whose masks are already cheap there.
    """

    def __init__(self, p: float = 0.5) -> None:
        if not (p * 256).is_integer():
            raise ValueError(f"ByteMaskDropout needs p to be a multiple of 1/256, got {p}")
        super().__init__(p)

    def forward(self, input: Tensor) -> Tensor:
        layout = _dense_layout(input)
        if not self.training or self.p in (0, 1) or input.device.type != "cpu" or layout is None:
            return super().forward(input)
        words = torch.empty((input.numel() + 7) // 8, dtype=torch.int64).random_(-(2**63), None)  # all 64 bits
        random_bytes = words.view(torch.uint8)[: input.numel()]
        keep = random_bytes.as_strided(input.shape, layout) >= round(self.p * 256)
        return input * keep.to(input.dtype).mul_(1 / (1 - self.p))


def _dense_layout(tensor: Tensor) -> tuple[int, ...] | None:
    """The strides of ``tensor`` when it fills its memory without gaps in a standard order."""
    if tensor.is_contiguous() or (tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last)):
        return tensor.stride()
    return None


def _conv_block(block: int, channels_in: int, channels: int, dropout: type[nn.Dropout]) -> dict[str, nn.Module]:
    """Keras' Conv2D 'same' + ReLU, Conv2D 'valid' + ReLU, MaxPool 2, Dropout .25, under the
    layer names the checkpoints use (block 1: conv1, relu1, conv2, relu2, pool1, drop1)."""
    first = 2 * block - 1
    return {
        f"conv{first}": nn.Conv2d(channels_in, channels, 3, padding="same"),
        f"relu{first}": nn.ReLU(),
        f"conv{first + 1}": nn.Conv2d(channels, channels, 3),
        f"relu{first + 1}": nn.ReLU(),
        f"pool{block}": nn.MaxPool2d(2),
        f"drop{block}": dropout(0.25),
    }


def _keras_init(module: nn.Module) -> None:
    """Keras' layer defaults: glorot-uniform kernels and zero biases."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class KerasCifarCNN(nn.Sequential):
    """Conv(32)x2 → pool → Conv(64)x2 → pool → Dense(512) → Dense(10), returning logits.

    The final softmax belongs to the loss, as PyTorch losses expect logits.
    Expects float input of shape (N, 3, 32, 32) scaled to [0, 1]. ``dropout`` is the layer
    class for its three dropouts: ``nn.Dropout``, or :class:`ByteMaskDropout` for faster CPU
    steps.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: type[nn.Dropout] = nn.Dropout) -> None:
        super().__init__(OrderedDict({
            **_conv_block(1, 3, 32, dropout),
            **_conv_block(2, 32, 64, dropout),
            "flatten": nn.Flatten(),
            "dense1": nn.Linear(64 * 6 * 6, 512),
            "relu5": nn.ReLU(),
            "drop3": dropout(0.5),
            "dense2": nn.Linear(512, num_classes),
        }))
        self.apply(_keras_init)
