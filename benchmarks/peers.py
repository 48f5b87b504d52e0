"""The alternatives, each written the way its users would write it (imports are optional).

Every ``make_*`` returns ``(setup_seconds, step)``, where ``step()`` performs one unit of
work (a value + gradient call, or one training step) and returns its result.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import itertools
import math
import time

import numpy as np

JAX_NOTE = "float64 (jax_enable_x64)"


def have(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:
        return False
    return True


def version(name: str) -> str:
    dist = {"torch": "torch", "jax": "jax"}.get(name, name)
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jax, jnp


# ---------------------------------------------------------------------------------------------
# the lecture's neuron: o = tanh(x1*w1 + x2*w2 + b), value and the 5 partial derivatives

NEURON_AT = (2.0, -3.0, 0.0, 1.0, 6.8813735870195432)  # x1, w1, x2, w2, b (the lecture's)


def neuron_hand():
    def step():
        x1, w1, x2, w2, b = NEURON_AT
        o = math.tanh(x1 * w1 + x2 * w2 + b)
        d = 1 - o * o
        return o, (w1 * d, x1 * d, w2 * d, x2 * d, d)

    return None, step


def _micrograd_value():
    """micrograd's Value; the PyPI release lacks the lecture's ``tanh``, added here as there."""
    from micrograd.engine import Value

    if not hasattr(Value, "tanh"):

        def tanh(self):
            t = math.tanh(self.data)
            out = Value(t, (self,), "tanh")

            def _backward():
                self.grad += (1 - t**2) * out.grad

            out._backward = _backward
            return out

        Value.tanh = tanh
    return Value


def neuron_micrograd():
    Value = _micrograd_value()

    def step():
        x1, w1, x2, w2, b = (Value(v) for v in NEURON_AT)
        o = (x1 * w1 + x2 * w2 + b).tanh()
        o.backward()
        return o.data, (x1.grad, w1.grad, x2.grad, w2.grad, b.grad)

    return None, step


def neuron_torch():
    import torch

    def step():
        x1, w1, x2, w2, b = (
            torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in NEURON_AT
        )
        o = torch.tanh(x1 * w1 + x2 * w2 + b)
        o.backward()
        return o.item(), (x1.grad.item(), w1.grad.item(), x2.grad.item(), w2.grad.item())

    return None, step


def neuron_jax():
    jax, jnp = _jax()
    t0 = time.perf_counter()
    f = jax.jit(
        jax.value_and_grad(
            lambda x1, w1, x2, w2, b: jnp.tanh(x1 * w1 + x2 * w2 + b), argnums=(0, 1, 2, 3, 4)
        )
    )
    jax.block_until_ready(f(*NEURON_AT))
    setup = time.perf_counter() - t0

    def step():
        return jax.block_until_ready(f(*NEURON_AT))

    return setup, step


def neuron_sympy():
    import sympy as sp

    t0 = time.perf_counter()
    syms = sp.symbols("x1 w1 x2 w2 b")
    x1, w1, x2, w2, b = syms
    o = sp.tanh(x1 * w1 + x2 * w2 + b)
    f = sp.lambdify(syms, [o, [sp.diff(o, s) for s in syms]])
    setup = time.perf_counter() - t0

    def step():
        return f(*NEURON_AT)

    return setup, step


def neuron_symengine():
    import symengine as se

    t0 = time.perf_counter()
    syms = se.symbols("x1 w1 x2 w2 b")
    x1, w1, x2, w2, b = syms
    o = se.tanh(x1 * w1 + x2 * w2 + b)
    f = se.Lambdify(syms, [o, *[se.diff(o, s) for s in syms]], backend="llvm", cse=True)
    setup = time.perf_counter() - t0

    def step():
        return f(NEURON_AT)

    return setup, step


def neuron_casadi():
    import casadi as ca

    t0 = time.perf_counter()
    v = ca.SX.sym("v", 5)
    o = ca.tanh(v[0] * v[1] + v[2] * v[3] + v[4])
    f = ca.Function("f", [v], [o, ca.gradient(o, v)])
    setup = time.perf_counter() - t0
    at = np.array(NEURON_AT)

    def step():
        return f(at)

    return setup, step


# ---------------------------------------------------------------------------------------------
# MLP training steps on a batch (X: (n, 2), y: (n,) in {-1, 1}); parameters in micrograd's
# order (per neuron: weights, then bias)


def _unflatten(p, sizes, xp):
    out, i = [], 0
    for nin, nout in itertools.pairwise(sizes):
        block = p[i : i + nout * (nin + 1)].reshape(nout, nin + 1)
        out.append((block[:, :nin], block[:, nin]))
        i += nout * (nin + 1)
    return out


def _forward(layers, X, act, xp):
    h = X
    for k, (W, b) in enumerate(layers):
        h = h @ W.T + b
        if k < len(layers) - 1:
            h = xp.tanh(h) if act == "tanh" else h * (h > 0)  # relu in every array library
    return h[:, 0]


def _loss(score, y, loss, xp):
    if loss == "hinge":
        m = 1 - y * score
        return xp.mean(m * (m > 0))
    return xp.mean((score - y) ** 2)


ALPHA = 1e-4  # micrograd demo's L2 regularisation
LR = 0.01


def mlp_jax(sizes, X, y, p, act, loss):
    jax, jnp = _jax()

    def total(p, X, y):
        score = _forward(_unflatten(p, sizes, jnp), X, act, jnp)
        return _loss(score, y, loss, jnp) + ALPHA * p @ p

    @jax.jit
    def train(p, X, y):
        value, g = jax.value_and_grad(total)(p, X, y)
        return p - LR * g, value

    pj, Xj, yj = jnp.asarray(p), jnp.asarray(X), jnp.asarray(y)
    t0 = time.perf_counter()
    jax.block_until_ready(train(pj, Xj, yj))
    setup = time.perf_counter() - t0

    def step():
        return jax.block_until_ready(train(pj, Xj, yj))

    return setup, step


def mlp_torch(sizes, X, y, p, act, loss):
    import torch

    pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def step():
        score = _forward(_unflatten(pt, sizes, torch), Xt, act, torch)
        total = _loss(score, yt, loss, torch) + ALPHA * pt @ pt
        pt.grad = None
        total.backward()
        with torch.no_grad():
            return pt - LR * pt.grad, total.item()

    return None, step


def mlp_casadi(sizes, X, y, p, act, loss, parts=None, l2_inside=False):
    """CasADi the way a scalar-code user writes it: SX expressions of one sample (inputs and
    label as symbols, parameters as one vector), gradient, Function, mapped over the batch.

    ``parts``, when a dict, receives the setup's split: ``build`` (the SX graph) and
    ``derive+compile`` (gradient, Function, map and the first call). ``l2_inside`` puts the
    L2 term ``ALPHA * sumsqr(p)`` inside the differentiated per-sample expression (the loss
    every contender of the ``setup`` workload is given) instead of adding it numerically."""
    import casadi as ca

    t0 = time.perf_counter()
    P = ca.SX.sym("p", len(p))
    x = ca.SX.sym("x", sizes[0])
    ys = ca.SX.sym("y")
    h, i = [x[k] for k in range(sizes[0])], 0
    for k, (nin, nout) in enumerate(itertools.pairwise(sizes)):
        new = []
        for _ in range(nout):
            s = P[i + nin]
            for q in range(nin):
                s = s + P[i + q] * h[q]
            i += nin + 1
            if k < len(sizes) - 2:
                s = ca.tanh(s) if act == "tanh" else ca.fmax(s, 0)
            new.append(s)
        h = new
    score = h[0]
    per_sample = ca.fmax(0, 1 - ys * score) if loss == "hinge" else (score - ys) ** 2
    if l2_inside:
        per_sample = per_sample + ALPHA * ca.sumsqr(P)
    t_build = time.perf_counter()
    f = ca.Function("sample", [x, ys, P], [per_sample, ca.gradient(per_sample, P)])
    fm = f.map(X.shape[0])
    Xc, yc = X.T.copy(), y[None, :].copy()
    fm(Xc, yc, p)
    setup = time.perf_counter() - t0
    if parts is not None:
        parts["build"] = t_build - t0
        parts["derive+compile"] = setup - parts["build"]
    mean = np.full(X.shape[0], 1.0 / X.shape[0])

    def step():
        values, grads = fm(Xc, yc, p)
        total = np.asarray(values).ravel() @ mean
        g = np.asarray(grads) @ mean
        if l2_inside:
            return p - LR * g, total
        return p - LR * (g + 2 * ALPHA * p), total + ALPHA * p @ p

    return setup, step


def mlp_hand(sizes, X, y, p, act, loss):
    """Hand-written NumPy backprop (2 hidden layers)."""
    if act != "relu" or loss != "hinge" or len(sizes) != 4:
        raise NotImplementedError

    def step():
        (W1, b1), (W2, b2), (W3, b3) = _unflatten(p, sizes, np)
        z1 = X @ W1.T + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ W2.T + b2
        h2 = np.maximum(z2, 0)
        s = (h2 @ W3.T + b3)[:, 0]
        m = 1 - y * s
        n = len(y)
        total = np.maximum(m, 0).mean() + ALPHA * p @ p
        ds = np.where(m > 0, -y, 0.0) / n
        gW3 = ds[None, :] @ h2
        gb3 = ds.sum(keepdims=True)
        dz2 = (ds[:, None] @ W3) * (z2 > 0)
        gW2, gb2 = dz2.T @ h1, dz2.sum(0)
        dz1 = (dz2 @ W2) * (z1 > 0)
        gW1, gb1 = dz1.T @ X, dz1.sum(0)
        g = np.concatenate(
            [
                np.hstack([gW, gb[:, None]]).ravel()
                for gW, gb in ((gW1, gb1), (gW2, gb2), (gW3, gb3))
            ]
        )
        return p - LR * (g + 2 * ALPHA * p), total

    return None, step


def mlp_micrograd(sizes, X, y, p, act, loss):
    from micrograd.engine import Value
    from micrograd.nn import MLP

    model = MLP(sizes[0], sizes[1:])
    for v, q in zip(model.parameters(), p, strict=True):
        v.data = float(q)
    inputs = [list(map(Value, row)) for row in X.tolist()]

    def step():
        scores = list(map(model, inputs))
        losses = [(1 + -yi * si).relu() for yi, si in zip(y.tolist(), scores, strict=True)]
        data_loss = sum(losses) * (1.0 / len(losses))
        reg = ALPHA * sum(q * q for q in model.parameters())
        total = data_loss + reg
        model.zero_grad()
        total.backward()
        return [q.data - LR * q.grad for q in model.parameters()], total.data

    return None, step
