"""Each loss against values and gradients worked out by hand."""

import math

import pytest
import torch

from src.errors import UserInputError
from src.losses import build_loss

# Softmax of [0, ln 3] is [1/4, 3/4]: easy numbers to check by hand.
LOGITS = [[0.0, math.log(3.0)]]


def value_and_grad(name, target, logits=LOGITS, **kwargs):
    x = torch.tensor(logits, requires_grad=True)
    loss = build_loss(name, **kwargs)(x, torch.tensor(target))
    loss.backward()
    return loss.item(), x.grad[0].tolist()


def test_cross_entropy_is_minus_the_log_probability_of_the_true_class():
    value, grad = value_and_grad("cross_entropy", [1])
    assert value == pytest.approx(-math.log(0.75))
    assert grad == pytest.approx([0.25, -0.25])  # softmax − one-hot


def test_label_smoothing_mixes_in_a_uniform_target():
    value, grad = value_and_grad("cross_entropy", [1], label_smoothing=0.2)
    # target = 0.8·one-hot + 0.2/2 = [0.1, 0.9]
    assert value == pytest.approx(-(0.1 * math.log(0.25) + 0.9 * math.log(0.75)))
    assert grad == pytest.approx([0.25 - 0.1, 0.75 - 0.9])


def test_keras_cross_entropy_equals_plain_one_where_no_clipping_happens():
    keras_value, keras_grad = value_and_grad("keras_cross_entropy", [1])
    value, grad = value_and_grad("cross_entropy", [1])
    assert keras_value == pytest.approx(value)
    assert keras_grad == pytest.approx(grad)


def test_keras_cross_entropy_clips_probabilities_at_1e7():
    value, grad = value_and_grad("keras_cross_entropy", [0], logits=[[-30.0, 30.0]])
    assert value == pytest.approx(-math.log(1e-7), rel=1e-4)
    assert grad == pytest.approx([0.0, 0.0])  # clipped: no gradient, as in Keras


def test_mse_on_softmax_outputs():
    value, grad = value_and_grad("mse", [1])
    # mean over 2 entries of (1/4 − 0)² and (3/4 − 1)²
    assert value == pytest.approx((0.25**2 + 0.25**2) / 2)
    # d/dp = (p − y); through softmax: J = [[pq, −pq], [−pq, pq]] with pq = 3/16
    assert grad == pytest.approx([(0.25 - (-0.25)) * 3 / 16, -(0.25 - (-0.25)) * 3 / 16])


def test_categorical_hinge_on_softmax_outputs():
    value, grad = value_and_grad("categorical_hinge", [1])
    # max(0, max_wrong − p_true + 1) = 1/4 − 3/4 + 1
    assert value == pytest.approx(0.5)
    # d/dx of (p0 − p1) = [2·p0·p1, −2·p0·p1] = [3/8, −3/8]
    assert grad == pytest.approx([3 / 8, -3 / 8])


def test_label_smoothing_with_another_loss_is_refused():
    with pytest.raises(UserInputError, match="only applies to loss 'cross_entropy'"):
        build_loss("mse", label_smoothing=0.1)
