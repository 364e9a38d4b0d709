import math

import pytest
import torch
from torch import nn

from src.model import KerasCifarCNN

KERAS_PARAMETER_COUNTS = {
    "conv1": 896,
    "conv2": 9_248,
    "conv3": 18_496,
    "conv4": 36_928,
    "dense1": 1_180_160,
    "dense2": 5_130,
}


def test_maps_a_batch_of_images_to_ten_logits():
    logits = KerasCifarCNN()(torch.rand(4, 3, 32, 32))
    assert logits.shape == (4, 10)
    assert not torch.allclose(logits.softmax(1).sum(1), logits.sum(1))  # logits, not probabilities


def test_layer_parameter_counts_match_keras():
    model = KerasCifarCNN()
    counts = {name: sum(p.numel() for p in layer.parameters()) for name, layer in model.named_children()}
    assert {k: v for k, v in counts.items() if v} == KERAS_PARAMETER_COUNTS
    assert sum(p.numel() for p in model.parameters()) == 1_250_858


def test_flatten_sees_keras_2304_features():
    features = torch.rand(2, 3, 32, 32)
    for name, layer in KerasCifarCNN().named_children():
        features = layer(features)
        if name == "flatten":
            break
    assert features.shape == (2, 2_304)


@pytest.mark.parametrize("name", KERAS_PARAMETER_COUNTS)
def test_kernels_are_glorot_uniform_and_biases_zero(name):
    torch.manual_seed(0)
    layer = getattr(KerasCifarCNN(), name)
    weight = layer.weight.detach()
    receptive = weight[0, 0].numel() if weight.dim() == 4 else 1
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    limit = math.sqrt(6 / (fan_in + fan_out))
    assert weight.abs().max() <= limit
    assert weight.abs().max() > 0.95 * limit  # fills the whole range, as a uniform does
    assert weight.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.1)
    assert torch.count_nonzero(layer.bias) == 0


def test_dropout_rates_match_keras():
    rates = [m.p for m in KerasCifarCNN().modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.25, 0.25, 0.5]
