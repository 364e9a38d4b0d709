import math

import pytest
import torch
from torch import nn

from src.model import ByteMaskDropout, KerasCifarCNN

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


def test_fast_dropout_network_has_the_same_layers_rates_and_parameters():
    fast, default = KerasCifarCNN(dropout=ByteMaskDropout), KerasCifarCNN()
    assert [m.p for m in fast.modules() if isinstance(m, ByteMaskDropout)] == [0.25, 0.25, 0.5]
    assert fast.state_dict().keys() == default.state_dict().keys()  # checkpoints load either way


@pytest.mark.parametrize("p", [0.25, 0.5])
@pytest.mark.parametrize("layout", ["flat", "nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_byte_mask_dropout_keeps_each_element_with_probability_1_minus_p_scaled_up(p, layout, dtype):
    torch.manual_seed(0)
    x = torch.rand(64, 32, 15, 15).add_(0.5).to(dtype)  # no zeros of its own
    x = {"flat": x.flatten(1), "nchw": x, "channels_last": x.contiguous(memory_format=torch.channels_last)}[layout]
    y = ByteMaskDropout(p).train()(x)
    kept = y != 0
    count = kept.numel()
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / count)  # 5 sigma
    torch.testing.assert_close(y[kept], (x * (1 / (1 - p))).to(dtype)[kept])
    assert y.dtype == dtype and y.stride() == x.stride()
    # independent elements: neighbours along every axis agree only as often as chance says
    for dim in range(x.dim()):
        both = (kept.narrow(dim, 1, x.shape[dim] - 1) & kept.narrow(dim, 0, x.shape[dim] - 1)).float().mean()
        assert abs(both.item() - (1 - p) ** 2) < 0.01


def test_byte_mask_dropout_backward_passes_gradient_through_the_kept_elements_only():
    torch.manual_seed(0)
    x = torch.rand(8, 512).add_(0.5).requires_grad_()
    y = ByteMaskDropout(0.5).train()(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float() * 2)


def test_byte_mask_dropout_masks_follow_the_seed_and_differ_between_calls():
    layer, x = ByteMaskDropout(0.25).train(), torch.ones(32, 512)
    torch.manual_seed(7)
    first, second = layer(x), layer(x)
    torch.manual_seed(7)
    assert torch.equal(layer(x), first)  # a seeded (or resumed, RNG restored) run draws the same masks
    assert not torch.equal(first, second)


def test_byte_mask_dropout_is_the_identity_in_eval_mode_and_refuses_rates_it_cannot_draw_exactly():
    x = torch.rand(4, 10)
    assert torch.equal(ByteMaskDropout(0.5).eval()(x), x)
    with pytest.raises(ValueError, match="multiple of 1/256"):
        ByteMaskDropout(0.3)
