"""symgrad.nn's optimisers: in-place updates of arrays, schedules, and the PyTorch-shaped
``SGD(model.parameters(), lr=...)``/``zero_grad()``/``step()`` on Value models.

References: micrograd itself (its own engine and hand-written update loop), PyTorch's
``torch.optim`` on the same numbers, and update formulas written out by hand.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from symgrad import Value
from symgrad.errors import InputTypeError, OptionError, ShapeError
from symgrad.nn import MLP, SGD, Adam, Trainer

XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
YS = [1.0, -1.0, -1.0, 1.0]


def _lecture_loss(model):
    preds = [model(x) for x in XS]
    return sum(((p - y) ** 2 for p, y in zip(preds, YS, strict=True)), Value(0.0) * 0)


def test_pytorch_shaped_sgd_trains_the_lecture_mlp_like_micrograd():
    micrograd_nn = pytest.importorskip("micrograd.nn")
    # the same initial weights: symgrad's MLP draws micrograd's numbers in micrograd's order
    random.seed(1)
    theirs = micrograd_nn.MLP(3, [4, 4, 1])
    random.seed(1)
    mine = MLP(3, [4, 4, 1])
    assert [p.data for p in mine.parameters()] == [p.data for p in theirs.parameters()]
    opt = SGD(mine.parameters(), lr=0.05)
    mine_losses, their_losses = [], []
    for _ in range(30):
        loss = _lecture_loss(mine)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mine_losses.append(loss.data)
        # micrograd's own training loop, by hand
        preds = [theirs(x) for x in XS]
        ref = sum((p - y) ** 2 for p, y in zip(preds, YS, strict=True))
        theirs.zero_grad()
        ref.backward()
        for p in theirs.parameters():
            p.data -= 0.05 * p.grad
        their_losses.append(ref.data)
    np.testing.assert_allclose(mine_losses, their_losses, rtol=1e-12, atol=1e-14)
    assert mine_losses[-1] < 0.5 * mine_losses[0]
    np.testing.assert_allclose(
        [p.data for p in mine.parameters()], [p.data for p in theirs.parameters()], rtol=1e-12
    )


@pytest.mark.parametrize(
    ("make_mine", "make_torch"),
    [
        (lambda ps: SGD(ps, lr=0.05), lambda t, ps: t.optim.SGD(ps, lr=0.05)),
        (
            lambda ps: SGD(ps, lr=0.02, momentum=0.9),
            lambda t, ps: t.optim.SGD(ps, lr=0.02, momentum=0.9),
        ),
        (lambda ps: Adam(ps, lr=0.01), lambda t, ps: t.optim.Adam(ps, lr=0.01)),
    ],
)
def test_step_on_the_lecture_tanh_mlp_matches_torch_optim(make_mine, make_torch):
    torch = pytest.importorskip("torch")
    mine = MLP(3, [4, 4, 1], variant="lecture", rng=random.Random(0))
    # the same network in PyTorch, from the same weights (per neuron: weights, then bias)
    f64 = torch.float64
    layers = []
    for layer in mine.layers:
        lin = torch.nn.Linear(len(layer.neurons[0].w), len(layer.neurons)).double()
        with torch.no_grad():
            weights = [[w.data for w in n.w] for n in layer.neurons]
            lin.weight.copy_(torch.tensor(weights, dtype=f64))
            lin.bias.copy_(torch.tensor([n.b.data for n in layer.neurons], dtype=f64))
        layers += [lin, torch.nn.Tanh()]
    net = torch.nn.Sequential(*layers)
    X, Y = torch.tensor(XS, dtype=f64), torch.tensor(YS, dtype=f64)
    opt, topt = make_mine(mine.parameters()), make_torch(torch, net.parameters())
    losses = []
    for _ in range(25):
        loss = _lecture_loss(mine)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = ((net(X)[:, 0] - Y) ** 2).sum()
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert loss.data == pytest.approx(tloss.item(), rel=1e-10, abs=1e-13)
        losses.append(loss.data)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_update_of_several_arrays_matches_torch(momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(3, 4)), rng.normal(size=5)]
    tensors = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    for mine, theirs in (
        (SGD(lr=0.1, momentum=momentum), torch.optim.SGD(tensors, lr=0.1, momentum=momentum)),
        (Adam(lr=0.05, betas=(0.8, 0.99)), torch.optim.Adam(tensors, lr=0.05, betas=(0.8, 0.99))),
    ):
        for k in range(6):
            grads = [rng.normal(size=a.shape) for a in arrays]
            mine.update(arrays, grads, k)
            for t, g in zip(tensors, grads, strict=True):
                t.grad = torch.tensor(g)
            theirs.step()
            for a, t in zip(arrays, tensors, strict=True):
                np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_step_follows_the_schedule_by_step_count():
    w = Value(0.0)
    opt = SGD([w], lr=lambda k: 1.0 / (k + 1))
    for _ in range(3):
        w.grad = 6.0  # d(6 w)/dw, without a graph
        opt.step()
    assert w.data == pytest.approx(-6.0 * (1 + 1 / 2 + 1 / 3), rel=1e-15)
    assert opt.steps == 3
    opt.reset()
    assert opt.steps == 0


def test_trainer_keeps_accepting_rate_only_optimisers_and_bound_ones():
    model = MLP(3, [4, 1], variant="lecture", rng=random.Random(0))
    for opt in (SGD(0.05), SGD(lr=0.05), SGD(model.parameters(), lr=0.05)):
        history = Trainer(model, "sse", optimizer=opt).fit(XS, YS, steps=5)
        assert history.loss[-1] < history.loss[0]


def test_misuse_is_a_typed_error():
    model = MLP(2, [3, 1], rng=random.Random(0))
    with pytest.raises(OptionError, match=r"SGD\(model.parameters\(\), lr=...\)"):
        SGD(lr=0.1).step()
    with pytest.raises(OptionError, match="parameters"):
        Adam().zero_grad()
    with pytest.raises(InputTypeError, match=r"model.parameters\(\), not the model"):
        SGD(model, lr=0.1)
    with pytest.raises(OptionError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(InputTypeError, match="Value"):
        SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(InputTypeError, match="twice"):
        SGD(0.1, lr=0.2)
    w = Value(1.0)
    with pytest.raises(OptionError, match="twice"):
        SGD([w, w], lr=0.1)
    with pytest.raises(OptionError):
        SGD(model.parameters(), lr=-1.0)
    with pytest.raises(InputTypeError):
        SGD(model.parameters(), lr="fast")
    opt = SGD(lr=0.1, momentum=0.9)
    with pytest.raises(InputTypeError, match="lists"):
        opt.update(np.zeros(2), np.zeros(2), 0)
    with pytest.raises(ShapeError):
        opt.update([np.zeros(2)], [np.zeros(3)], 0)
    with pytest.raises(ShapeError):
        opt.update([np.zeros(2)], [], 0)
    with pytest.raises(InputTypeError, match="float"):
        opt.update([np.zeros(2, dtype=int)], [np.zeros(2)], 0)
    with pytest.raises(InputTypeError, match="step number"):
        opt.update([np.zeros(2)], [np.zeros(2)], -1)
    with pytest.raises(InputTypeError, match="arrays"):
        opt.update(None, [np.zeros(2)], 0)
    with pytest.raises(InputTypeError, match="grads"):
        opt.update([np.zeros(2)], 0.5, 0)
    with pytest.raises(InputTypeError, match=r"grads\[0\]"):
        Adam().update([np.zeros(2)], [["x", 1]], 0)
    opt.update([np.zeros(2)], [np.ones(2)], 0)
    with pytest.raises(ShapeError, match="reset"):
        opt.update([np.zeros(3)], [np.ones(3)], 1)
    opt.reset()
    opt.update([np.zeros(3)], [np.ones(3)], 0)


def test_generator_of_parameters_is_accepted_once():
    model = MLP(2, [3, 1], rng=random.Random(0))
    opt = SGD((p for p in model.parameters()), lr=0.1)
    assert opt.params == model.parameters()
