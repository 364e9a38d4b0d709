"""The loss as a hyperparameter: the notebook lists "the type of loss calculation".

Every loss takes logits and integer labels. Those defined on probabilities apply the
softmax that Keras' model applied as its last layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from src.errors import UserInputError

LossName = Literal["cross_entropy", "keras_cross_entropy", "mse", "categorical_hinge"]

KERAS_EPSILON = 1e-7


def keras_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Keras 2's categorical cross-entropy: probabilities clipped to [1e-7, 1 - 1e-7]."""
    probs = logits.softmax(dim=1).clamp(KERAS_EPSILON, 1 - KERAS_EPSILON)
    return -probs.gather(1, target.unsqueeze(1)).log().mean()


def softmax_mse(logits: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between softmax outputs and one-hot targets (Keras' ``mse``)."""
    one_hot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
    return F.mse_loss(logits.softmax(dim=1), one_hot)


def categorical_hinge(logits: Tensor, target: Tensor) -> Tensor:
    """Keras' categorical hinge on softmax outputs: max(0, 1 + max_wrong - p_true)."""
    probs = logits.softmax(dim=1)
    one_hot = F.one_hot(target, logits.shape[1]).to(probs.dtype)
    positive = (probs * one_hot).sum(dim=1)
    negative = (probs * (1 - one_hot)).amax(dim=1)
    return torch.clamp(negative - positive + 1, min=0).mean()


def build_loss(name: LossName, label_smoothing: float = 0.0) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss function called ``name``; label smoothing applies to ``cross_entropy`` only."""
    if label_smoothing and name != "cross_entropy":
        raise UserInputError(
            f"label_smoothing={label_smoothing} only applies to loss 'cross_entropy', not "
            f"'{name}'. Set --model.loss cross_entropy or drop --model.label_smoothing."
        )
    if name == "cross_entropy":
        return lambda logits, target: F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    return {
        "keras_cross_entropy": keras_cross_entropy,
        "mse": softmax_mse,
        "categorical_hinge": categorical_hinge,
    }[name]
