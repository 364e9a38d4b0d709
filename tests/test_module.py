"""The training module's own options."""

import pytest
import torch
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


@pytest.mark.slow  # torch.compile: tens of seconds
def test_compile_update_keeps_lightnings_closure_contract_and_the_eager_update():
    torch.manual_seed(0)
    images, labels = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    updated = []
    for compiled in (False, True):
        torch.manual_seed(1)
        module = CifarClassifier(decay=1e-2, compile_update=compiled).eval()  # eval: no dropout masks to differ
        initial = torch.cat([p.detach().flatten() for p in module.parameters()])
        optimizer = module.configure_optimizers()["optimizer"]

        def closure():
            optimizer.zero_grad()
            loss = module.loss_fn(module(images), labels)
            loss.backward()
            return loss

        returned = [optimizer.step(closure=closure) for _ in range(3)]  # as Lightning calls it
        assert all(isinstance(loss, torch.Tensor) and loss.ndim == 0 for loss in returned)
        updated.append(torch.cat([p.detach().flatten() for p in module.parameters()]))
    # RMSprop divides by the root of tiny squared gradients, which magnifies rounding: "the same
    # update" is every weight within a small share of the largest step
    largest_step = (updated[0] - initial).abs().max()
    assert largest_step > 1e-3 and (updated[1] - updated[0]).abs().max() < 0.05 * largest_step
