"""Workload builders shared by the benchmark runner (symbolic MLPs, Lennard-Jones, data)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import sympy as sp

from symgrad.construct import add, apply, mul


def mlp_symbols(sizes: list[int]) -> list[sp.Symbol]:
    """Parameter symbols of an MLP in micrograd's order (per neuron: weights, then bias)."""
    params = []
    for layer, (nin, nout) in enumerate(itertools.pairwise(sizes)):
        for j in range(nout):
            params += [sp.Symbol(f"w{layer}_{j}_{i}") for i in range(nin)]
            params.append(sp.Symbol(f"b{layer}_{j}"))
    return params


def mlp_output(sizes: list[int], params: list[sp.Symbol], inputs: list[sp.Expr], act: str):
    """The score of one sample; ``act`` is "tanh" or "relu" for the hidden layers."""
    it = iter(params)
    h = list(inputs)
    for layer, (nin, nout) in enumerate(itertools.pairwise(sizes)):
        last = layer == len(sizes) - 2
        new = []
        for _ in range(nout):
            terms = [mul(next(it), h[i]) for i in range(nin)]
            s = add([*terms, next(it)])
            if last:
                new.append(s)
            elif act == "tanh":
                new.append(apply(sp.tanh, s))
            else:
                new.append(sp.Max(0, s, evaluate=False))
        h = new
    return h[0]


def mlp_loss(sizes: list[int], act: str = "tanh", loss: str = "square"):
    """Per-sample loss of an MLP over input symbols ``x1, x2`` and label ``y``.

    Returns ``(loss_expr, params, (x1, x2, y))``. ``loss="hinge"`` is micrograd's demo loss
    ``relu(1 - y * score)``; ``"square"`` is ``(score - y)**2``.
    """
    params = mlp_symbols(sizes)
    x = sp.symbols(f"x1:{sizes[0] + 1}")
    y = sp.Symbol("y")
    score = mlp_output(sizes, params, list(x), act)
    if loss == "hinge":
        e = sp.Max(0, add([sp.S.One, mul(sp.S.NegativeOne, y, score)]), evaluate=False)
    else:
        e = sp.Pow(add([score, mul(sp.S.NegativeOne, y)]), 2, evaluate=False)
    return e, params, (*x, y)


def moons(n: int = 100, seed: int = 0):
    """Two interleaved half circles with labels -1/+1 (scikit-learn's make_moons, noise 0.1)."""
    rng = np.random.default_rng(seed)
    n1 = n // 2
    n2 = n - n1
    t1 = np.linspace(0, np.pi, n1)
    t2 = np.linspace(0, np.pi, n2)
    X = np.concatenate(
        [np.stack([np.cos(t1), np.sin(t1)], 1), np.stack([1 - np.cos(t2), 0.5 - np.sin(t2)], 1)]
    )
    X += rng.normal(scale=0.1, size=X.shape)
    y = np.concatenate([-np.ones(n1), np.ones(n2)])
    return X, y


def init_params(n: int, seed: int = 1337) -> np.ndarray:
    """micrograd's initialisation: uniform(-1, 1) per parameter."""
    r = random.Random(seed)
    return np.array([r.uniform(-1, 1) for _ in range(n)])


def lennard_jones(n: int):
    """Energy of ``n`` particles in 3-D, sum over pairs of 4 (r^-12 - r^-6), sigma=eps=1.

    Returns ``(energy, coords)``; the pair terms share the squared distances.
    """
    coords = list(sp.symbols(f"q0:{3 * n}"))
    terms = []
    for i in range(n):
        for j in range(i + 1, n):
            d = [
                add([coords[3 * i + k], mul(sp.S.NegativeOne, coords[3 * j + k])]) for k in range(3)
            ]
            r2 = add([sp.Pow(c, 2, evaluate=False) for c in d])
            inv6 = sp.Pow(r2, -3, evaluate=False)
            terms.append(
                mul(
                    sp.Integer(4),
                    add([sp.Pow(inv6, 2, evaluate=False), mul(sp.S.NegativeOne, inv6)]),
                )
            )
    return add(terms), coords


def lattice(n: int, seed: int = 0) -> np.ndarray:
    """Coordinates of ``n`` particles near a cubic lattice with spacing 1.2 (no overlaps)."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n ** (1 / 3)))
    pts = [(i, j, k) for i in range(side) for j in range(side) for k in range(side)][:n]
    return (1.2 * np.array(pts, float) + rng.normal(scale=0.05, size=(n, 3))).ravel()


def nn_loss(sizes: list[int], loss: str = "hinge", alpha: float = 1e-4):
    """One sample's loss of a ``symgrad.nn.MLP`` (ReLU hidden layers), built as a user writes it.

    ``loss="hinge"``: micrograd's demo loss with the L2 term inside the expression,
    ``hinge(scores, [y]) + l2(theta, alpha)`` (the loss the peers of the ``setup`` workload
    differentiate). ``loss="softmax_cross_entropy"``: one-hot targets, no L2.
    Returns ``(loss_expr, parameter symbols, input symbols)``; parameters in micrograd's order.
    """
    from symgrad.nn import MLP, hinge, l2, softmax_cross_entropy

    model = MLP(sizes[0], sizes[1:], rng=random.Random(0))
    theta = model.parameter_symbols()
    x = list(sp.symbols(f"x0:{sizes[0]}"))
    scores = model.symbolic(x)
    if loss == "hinge":
        y = sp.Symbol("y")
        return hinge(scores, [y]) + l2(theta, alpha), theta, [*x, y]
    t = list(sp.symbols(f"t0:{len(scores)}"))
    return softmax_cross_entropy(scores, t), theta, [*x, *t]
