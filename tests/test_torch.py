"""symgrad.torch: compiled value and exact gradient as a torch.autograd.Function / nn.Module.

References are independent of symgrad: ``torch.autograd.gradcheck`` (finite differences of the
function's own forward), and the same loss written in native PyTorch operators.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

torch = pytest.importorskip("torch")
sgt = pytest.importorskip("symgrad.torch")

from symgrad.errors import InputTypeError, MissingSymbolError, OptionError  # noqa: E402

X1, W1, X2, W2, B = sp.symbols("x1 w1 x2 w2 b")
NEURON = sp.tanh(X1 * W1 + X2 * W2 + B)
LECTURE = (2.0, -3.0, 0.0, 1.0, 6.8813735870195432)  # x1, w1, x2, w2, b


def _mlp(sizes):
    """Per-sample square loss of a tanh MLP over inputs x1..xn and label y (parameters first)."""
    params, it = [], None
    for layer, (nin, nout) in enumerate(itertools.pairwise(sizes)):
        for j in range(nout):
            params += [sp.Symbol(f"w{layer}_{j}_{i}") for i in range(nin)]
            params.append(sp.Symbol(f"b{layer}_{j}"))
    xs = list(sp.symbols(f"x1:{sizes[0] + 1}"))
    y = sp.Symbol("y")
    it = iter(params)
    h = xs
    for layer, (nin, nout) in enumerate(itertools.pairwise(sizes)):
        new = []
        for _ in range(nout):
            s = sum(next(it) * h[i] for i in range(nin)) + next(it)
            new.append(s if layer == len(sizes) - 2 else sp.tanh(s))
        h = new
    return (h[0] - y) ** 2, params, xs, y


def _native_mlp_loss(p, X, y, sizes):
    # the same loss in PyTorch operators (parameters in the same order: per neuron w..., b)
    h, i = X, 0
    for layer, (nin, nout) in enumerate(itertools.pairwise(sizes)):
        block = p[i : i + nout * (nin + 1)].reshape(nout, nin + 1)
        i += nout * (nin + 1)
        h = h @ block[:, :nin].T + block[:, nin]
        if layer < len(sizes) - 2:
            h = torch.tanh(h)
    return ((h[:, 0] - y) ** 2).mean()


def test_lecture_neuron_values_and_gradients() -> None:
    F = sgt.function(NEURON, [X1, W1, X2, W2, B], [X1, W1, X2, W2, B])
    inputs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in LECTURE]
    out = F.apply(*inputs)
    out.backward()
    # the lecture's published numbers: o = 0.7071, dx1 = -1.5, dw1 = 1.0, dx2 = 0.5, dw2 = 0
    assert out.item() == pytest.approx(0.7071067811865476, abs=1e-12)
    got = [t.grad.item() for t in inputs]
    assert got == pytest.approx([-1.5, 1.0, 0.5, 0.0, 0.5], abs=1e-12)


def test_gradcheck_lecture_neuron_over_a_batch() -> None:
    F = sgt.function(NEURON, [X1, W1, X2, W2, B], [X1, W1, X2, W2, B])
    gen = torch.Generator().manual_seed(0)
    batch = [torch.rand(7, dtype=torch.float64, generator=gen) for _ in range(2)]
    # inputs of different batch shapes: the scalar weights broadcast against the batch
    inputs = [
        batch[0].requires_grad_(),
        torch.tensor(-3.0, dtype=torch.float64, requires_grad=True),
        batch[1].requires_grad_(),
        torch.rand(1, dtype=torch.float64, generator=gen).requires_grad_(),
        torch.tensor(0.3, dtype=torch.float64, requires_grad=True),
    ]
    assert torch.autograd.gradcheck(F.apply, inputs, eps=1e-6, atol=1e-9, rtol=1e-7)


def test_gradcheck_mlp_loss_in_parameters_and_data() -> None:
    sizes = (2, 4, 4, 1)
    loss, params, xs, y = _mlp(sizes)
    F = sgt.function(loss, [*params, *xs], [xs, y, params])
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(2, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    Y = torch.randn(5, dtype=torch.float64, generator=gen)
    P = torch.randn(len(params), dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(F.apply, (X, Y, P), eps=1e-6, atol=1e-9, rtol=1e-7)
    # and equal to native PyTorch autograd on the same loss
    value = F.apply(X, Y, P).mean()
    gp, gx = torch.autograd.grad(value, (P, X))
    P2, X2 = P.detach().clone().requires_grad_(), X.detach().clone().requires_grad_()
    ref = _native_mlp_loss(P2, X2.T, Y, sizes)
    rp, rx = torch.autograd.grad(ref, (P2, X2))
    assert value.item() == pytest.approx(ref.item(), rel=1e-13)
    np.testing.assert_allclose(gp.numpy(), rp.numpy(), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(gx.numpy(), rx.numpy(), rtol=1e-11, atol=1e-14)


def test_dtype_and_device_are_kept() -> None:
    F = sgt.function(NEURON, [W1, W2, B], [X1, W1, X2, W2, B])
    x = torch.linspace(-1, 1, 5, dtype=torch.float32)
    w = torch.tensor(0.5, dtype=torch.float32, requires_grad=True)
    out = F.apply(x, w, x, 0.25, 0.1)
    assert out.dtype == torch.float32 and out.device == x.device and out.shape == (5,)
    out.sum().backward()
    assert w.grad.dtype == torch.float32
    ref = torch.tanh(x.double() * 0.5 + x.double() * 0.25 + 0.1)
    np.testing.assert_allclose(out.detach().numpy(), ref.numpy(), rtol=1e-6)


def test_no_grad_forward_computes_the_value_only() -> None:
    F = sgt.function(X1**2, [X1], [X1])
    with torch.no_grad():
        out = F.apply(torch.tensor([1.0, 3.0], dtype=torch.float64))
    assert out.tolist() == [1.0, 9.0] and not out.requires_grad


def test_training_loop_converges_like_native_pytorch() -> None:
    sizes = (2, 8, 1)
    loss, params, xs, y = _mlp(sizes)
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(64, 2, dtype=torch.float64, generator=gen)
    Y = torch.sin(X[:, 0]) * X[:, 1]
    init = torch.empty(len(params), dtype=torch.float64).uniform_(-1, 1, generator=gen)
    model = sgt.Module(loss, params, [xs, y], init=init, dtype=torch.float64)
    native = torch.nn.Parameter(init.clone())
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    opt_native = torch.optim.Adam([native], lr=0.02)
    history, history_native = [], []
    for _ in range(150):
        opt.zero_grad()
        value = model(X.T, Y)
        value.backward()
        opt.step()
        opt_native.zero_grad()
        ref = _native_mlp_loss(native, X, Y, sizes)
        ref.backward()
        opt_native.step()
        history.append(value.item())
        history_native.append(ref.item())
    assert history[-1] < 0.25 * history[0]  # it trains
    np.testing.assert_allclose(history, history_native, rtol=1e-9)  # exactly like PyTorch
    np.testing.assert_allclose(model.params.detach().numpy(), native.detach().numpy(), rtol=1e-9)


def test_errors_are_typed() -> None:
    with pytest.raises(InputTypeError, match="whole arguments"):
        sgt.function(X1 * W1, [W1], [[X1, W1]])
    with pytest.raises(MissingSymbolError, match="not among args"):
        sgt.function(X1 * W1, [W1, B], [X1, W1])
    with pytest.raises(OptionError, match="reduce"):
        sgt.Module(X1 * W1, [W1], [X1], reduce="max")
    with pytest.raises(OptionError, match="one value per parameter"):
        sgt.Module(X1 * W1, [W1], [X1], init=[1.0, 2.0])
