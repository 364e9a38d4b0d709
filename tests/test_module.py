"""The training module's own options."""

from torch import nn

from src.model import ByteMaskDropout
from src.module import CifarClassifier


def dropout_types(module: CifarClassifier) -> set[type]:
    return {type(m) for m in module.net.modules() if isinstance(m, nn.Dropout)}


def test_fast_dropout_swaps_the_dropout_layers_and_nothing_else():
    default, fast = CifarClassifier(), CifarClassifier(fast_dropout=True)
    assert dropout_types(default) == {nn.Dropout}  # the default keeps PyTorch's masks, as published runs used
    assert dropout_types(fast) == {ByteMaskDropout}
    assert default.state_dict().keys() == fast.state_dict().keys()
