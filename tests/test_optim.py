"""The optimizers against Keras 2.0.8's update rules, written out here in float64."""

import warnings

import numpy as np
import pytest
import torch

from torch._dynamo.utils import counters

from src.optim import KerasAdam, KerasRMSprop, KerasSGD, compile_update, keras_decay, restart_lr_schedule

STEPS = 200
SHAPE = (7, 5)


def keras_rmsprop(p, grads, lr, decay, rho=0.9, eps=1e-8):
    a = np.zeros_like(p)
    for t, g in enumerate(grads):
        lr_t = lr / (1 + decay * t)
        a = rho * a + (1 - rho) * g**2
        p = p - lr_t * g / (np.sqrt(a) + eps)
    return p


def keras_sgd(p, grads, lr, decay, momentum=0.0, nesterov=False):
    v = np.zeros_like(p)
    for t, g in enumerate(grads):
        lr_t = lr / (1 + decay * t)
        v = momentum * v - lr_t * g
        p = p + (momentum * v - lr_t * g if nesterov else v)
    return p


def keras_adam(p, grads, lr, decay, beta1=0.9, beta2=0.999, eps=1e-8):
    m, v = np.zeros_like(p), np.zeros_like(p)
    for iterations, g in enumerate(grads):
        t = iterations + 1
        lr_t = lr / (1 + decay * iterations) * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        p = p - lr_t * m / (np.sqrt(v) + eps)
    return p


def run_torch(optimizer_class, p0, grads, decay, compiled=False, restart_at=None, **kwargs):
    param = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float32))
    optimizer = optimizer_class([param], **kwargs)
    if compiled:
        compile_update(optimizer)
    schedule = keras_decay(optimizer, decay)
    for t, g in enumerate(grads):
        if t == restart_at:  # a new stage at a tenth of the lr: the optimizer's lr is set as a float
            restart_lr_schedule(optimizer, schedule, [kwargs["lr"] / 10])
        param.grad = torch.tensor(g, dtype=torch.float32)
        optimizer.step()
        schedule.step()
    return param.detach().double().numpy()


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    return rng.normal(size=SHAPE), [rng.normal(size=SHAPE) for _ in range(STEPS)]


CASES = [
    ("rmsprop", KerasRMSprop, keras_rmsprop, dict(lr=1e-3)),
    ("sgd", KerasSGD, keras_sgd, dict(lr=0.01)),
    ("sgd_momentum", KerasSGD, keras_sgd, dict(lr=0.01, momentum=0.1)),
    ("sgd_nesterov", KerasSGD, keras_sgd, dict(lr=0.01, momentum=0.5, nesterov=True)),
    ("adam", KerasAdam, keras_adam, dict(lr=1e-3)),
]


@pytest.mark.parametrize("decay", [0.0, 1e-2])
@pytest.mark.parametrize("name,torch_class,reference,kwargs", CASES, ids=[c[0] for c in CASES])
def test_matches_keras_update_rule(problem, name, torch_class, reference, kwargs, decay):
    p0, grads = problem
    expected = reference(p0, grads, decay=decay, **kwargs)
    actual = run_torch(torch_class, p0, grads, decay, **kwargs)
    assert np.abs(expected - p0).max() > 1e-2  # the parameters really moved
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,torch_class,reference,kwargs", CASES, ids=[c[0] for c in CASES])
def test_a_compiled_update_follows_the_same_rule_without_recompiling_as_lr_decays(problem, name, torch_class,
                                                                                 reference, kwargs):
    p0, grads = problem
    torch._dynamo.reset()
    counters.clear()
    actual = run_torch(torch_class, p0, grads, 1e-2, compiled=True, **kwargs)
    np.testing.assert_allclose(actual, reference(p0, grads, decay=1e-2, **kwargs), rtol=1e-5, atol=1e-5)
    assert counters["stats"]["unique_graphs"] <= 3  # not one per lr: Adam's step count takes two


def test_a_compiled_update_takes_the_lr_a_new_stage_sets():
    p0 = np.random.default_rng(1).normal(size=SHAPE)
    grads = [np.random.default_rng(t).normal(size=SHAPE) for t in range(40)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a new stage says nothing of its own (no scheduler warning)
        eager = run_torch(KerasRMSprop, p0, grads, 1e-2, restart_at=20, lr=1e-3)
    compiled = run_torch(KerasRMSprop, p0, grads, 1e-2, compiled=True, restart_at=20, lr=1e-3)
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)
    assert np.abs(eager - run_torch(KerasRMSprop, p0, grads, 1e-2, lr=1e-3)).max() > 1e-4  # the stage mattered


@pytest.mark.parametrize(
    "torch_class,reference,kwargs",
    [
        (torch.optim.SGD, keras_sgd, dict(lr=0.01, momentum=0.5, nesterov=True)),
        (torch.optim.Adam, keras_adam, dict(lr=1e-3, eps=1e-3)),
    ],
    ids=["sgd_nesterov", "adam"],
)
def test_pytorch_native_forms_differ_from_keras(problem, torch_class, reference, kwargs):
    """Why src.optim exists: with decay (SGD) or a visible epsilon (Adam) PyTorch's forms part."""
    p0, grads = problem
    expected = reference(p0, grads, decay=1e-2, **kwargs)
    actual = run_torch(torch_class, p0, grads, 1e-2, **kwargs)
    assert np.abs(actual - expected).max() > 1e-4


@pytest.mark.parametrize("updates", [0, 1, 10, 1000])
def test_decay_divides_lr_by_one_plus_decay_times_updates(updates):
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([param], lr=0.1)
    schedule = keras_decay(optimizer, decay=1e-2)
    for _ in range(updates):
        param.grad = torch.ones(3)
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / (1 + 1e-2 * updates))


@pytest.mark.parametrize(
    "factory",
    [lambda p: KerasSGD(p, lr=-1), lambda p: KerasSGD(p, momentum=-0.1), lambda p: KerasAdam(p, betas=(1.0, 0.9))],
)
def test_rejects_invalid_arguments(factory):
    with pytest.raises(ValueError):
        factory([torch.nn.Parameter(torch.zeros(1))])
