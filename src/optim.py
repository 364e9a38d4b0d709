"""Keras 2 (2.0.8) optimizer semantics where PyTorch's differ, Keras' legacy ``decay`` and its restart.

RMSprop only needs Keras' defaults: ``torch.optim.RMSprop(alpha=0.9, eps=1e-8)`` is Keras'
update exactly (epsilon outside the root). SGD with momentum and Adam differ:

* Keras SGD folds the learning rate into the velocity (``v = m·v − lr·g; p += v``), while
  PyTorch applies it after (``b = m·b + g; p −= lr·b``); the two part as soon as lr changes
  over time, which the notebook's ``decay`` does at every update.
* Keras Adam adds epsilon to the *uncorrected* ``√v`` and folds both bias corrections into
  the step size; PyTorch adds epsilon to the corrected ``√v̂``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from types import MethodType

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _evaluate(closure: Callable[[], Tensor] | None) -> Tensor | None:
    """The loss from ``closure``, as torch optimizers compute it before stepping."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _check_non_negative(**values: float) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"Invalid {name} value: {value}")


class KerasRMSprop(torch.optim.RMSprop):
    """``torch.optim.RMSprop`` with Keras 2's defaults: lr 1e-3, rho (alpha) 0.9, epsilon 1e-8."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, alpha: float = 0.9, eps: float = 1e-8) -> None:
        super().__init__(params, lr=lr, alpha=alpha, eps=eps)


class KerasSGD(Optimizer):
    """SGD with Keras' momentum and Nesterov forms: ``v = m·v − lr·g``, then ``p += v``
    (or ``p += m·v − lr·g`` with ``nesterov``)."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        _check_non_negative(lr=lr, momentum=momentum)
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov))

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if momentum == 0:
                    param.add_(grad, alpha=-lr)
                    continue
                state = self.state[param]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(param)
                velocity = state["velocity"]
                velocity.mul_(momentum).add_(grad, alpha=-lr)
                if group["nesterov"]:
                    param.add_(velocity, alpha=momentum).add_(grad, alpha=-lr)
                else:
                    param.add_(velocity)
        return loss


class KerasAdam(Optimizer):
    """Adam as Keras 2 computes it: ``lr_t = lr·√(1−β2^t)/(1−β1^t)``,
    ``p −= lr_t·m / (√v + ε)`` with ``t`` = 1 at the first update."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        _check_non_negative(lr=lr, eps=eps)
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"Invalid betas: {betas}; each must be in [0, 1)")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = _evaluate(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                t = state["step"]
                step_size = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                param.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(group["eps"]), value=-step_size)
        return loss


def compile_update(optimizer: Optimizer) -> Optimizer:
    """Run ``optimizer``'s update through ``torch.compile``, in place, and return it.

    Eager, an update is one pass over the weights per op (square, average, root, divide, add:
    on CPU the update costs as much as a tenth of a step); compiled, it is one fused pass. The
    gradients still come from the closure, outside the compiled code. Each group's lr becomes
    a 0-dim tensor before every update, so the decay (which fills it in place) and a new stage
    (which sets a float) never force a recompile. Results agree with the eager update to float
    rounding, not bit for bit.
    """
    update = torch.compile(optimizer.step)

    def step(self: Optimizer, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = _evaluate(closure)
        for group in self.param_groups:
            if not isinstance(group["lr"], Tensor):
                group["lr"] = torch.tensor(group["lr"])
        update()
        return loss

    optimizer.step = MethodType(step, optimizer)  # a bound method, as lr schedulers expect to wrap
    return optimizer


def keras_decay(optimizer: Optimizer, decay: float) -> LambdaLR:
    """Keras' legacy per-update decay ``lr_t = lr / (1 + decay·t)``, t = updates so far.

    Step it after every optimizer update (Lightning: ``interval: "step"``).
    """
    return LambdaLR(optimizer, lambda updates: 1.0 / (1.0 + decay * updates))


def restart_lr_schedule(
    optimizer: Optimizer, schedule: LambdaLR, base_lrs: Sequence[float], keep_state: bool = False
) -> None:
    """Start ``optimizer``'s decay ``schedule`` again from ``base_lrs``, one per parameter group.

    Without ``keep_state`` the optimizer forgets its moments and step counts and the schedule
    its update counter, as after Keras' recompile; with it both go on, at the new base rates.
    """
    if not keep_state:
        optimizer.state.clear()
        schedule.last_epoch = 0
    schedule.base_lrs = list(base_lrs)
    for group, decay, base in zip(optimizer.param_groups, schedule.lr_lambdas, base_lrs):
        # the schedule's lr now, computed as its get_lr() would, which warns when called outside step()
        group["lr"], group["initial_lr"] = base * decay(schedule.last_epoch), base
