"""Packed layers (codegen/pack.py): the same numbers as SymPy's own lambdify, on every shape.

Networks written out over scalars have many isomorphic statements (one per unit); the NumPy and
JAX targets compute each such group as one array. These tests build random layered programs
(random widths, activations and losses, an L2 term, shared subexpressions), and compare the
packed function with ``sympy.lambdify`` of the same formulas and with the program printed
without packs, for Python floats, NumPy scalars, 1-D and 2-D batches, and a parameter vector
with batch axes of its own.
"""

from __future__ import annotations

import contextlib
import math
import random

import numpy as np
import pytest
import sympy as sp

import symgrad.codegen.numpy as numpy_target
from symgrad import grad, lambdify, value_and_grad
from symgrad.codegen import lift
from symgrad.codegen.pack import _schedule, pack
from symgrad.codegen.plan import STATEMENT, plan

ACTIVATIONS = {
    "tanh": sp.tanh,
    "relu": lambda z: sp.Max(0, z),
    "sigmoid": lambda z: 1 / (1 + sp.exp(-z)),
    "square": lambda z: z**2,
    "sin": sp.sin,
}


def network(seed: int):
    """A random MLP loss over scalar inputs and one parameter vector, built as a user writes it."""
    rng = random.Random(seed)
    # at most ~70 parameters: SymPy's lambdify (the reference) takes minutes on larger ones
    n_in = rng.randint(1, 3)
    widths = [rng.randint(1, 6) for _ in range(rng.randint(1, 2))]
    xs = list(sp.symbols(f"x0:{n_in}"))
    y = sp.Symbol("y")
    params: list[sp.Symbol] = []
    h = xs
    for layer, width in enumerate([*widths, 1]):
        act = ACTIVATIONS[rng.choice(sorted(ACTIVATIONS))]
        new = []
        for k in range(width):
            ws = list(sp.symbols(f"w{layer}_{k}_0:{len(h)}"))
            b = sp.Symbol(f"b{layer}_{k}")
            params += [*ws, b]
            z = sp.Add(*[w * v for w, v in zip(ws, h, strict=True)], b)
            new.append(z if layer == len(widths) else act(z))
        h = new
    score = h[0]
    loss = sp.Max(0, 1 - y * score) if rng.random() < 0.5 else (score - y) ** 2
    if rng.random() < 0.5:
        loss = loss + sp.Rational(1, 1000) * sp.Add(*[p**2 for p in params])
    return loss, params, [*xs, y]


@contextlib.contextmanager
def unpacked():
    """The NumPy target printing every statement on its own (the reference layout)."""
    saved = numpy_target.pack
    numpy_target.pack = lambda prog: prog
    try:
        yield
    finally:
        numpy_target.pack = saved


def _points(rng, n_data, n_params):
    p = rng.uniform(-1, 1, n_params)
    yield "floats", [float(v) for v in rng.normal(size=n_data)], p
    yield "numpy scalars", [np.float64(v) for v in rng.normal(size=n_data)], p
    yield "1-D batch", [rng.normal(size=7) for _ in range(n_data)], p
    yield "2-D batch", [rng.normal(size=(2, 3)) for _ in range(n_data)], p
    batched = rng.uniform(-1, 1, (n_params, 5))
    yield "batched parameters", [float(v) for v in rng.normal(size=n_data)], batched


@pytest.mark.parametrize("seed", range(24))
def test_packed_networks_agree_with_sympy_lambdify(seed):
    loss, params, data = network(seed)
    g = grad(loss, params)
    f = value_and_grad(loss, params, [*data, params])
    with unpacked():
        plain = value_and_grad(loss, params, [*data, params])
    ref = sp.lambdify([*data, params], [loss, *g], modules="numpy", cse=True)
    rng = np.random.default_rng(seed)
    for label, values, p in _points(rng, len(data), len(params)):
        with np.errstate(all="ignore"):
            value, gradient = f(*values, p)
            want = ref(*values, p)
            other = plain(*values, p)
        shape = np.broadcast_shapes(*[np.shape(v) for v in values], np.shape(p)[1:])
        assert np.shape(value) == shape, label
        assert np.shape(gradient) == (len(params), *shape), label
        np.testing.assert_allclose(value, np.broadcast_to(want[0], shape), rtol=1e-12, atol=1e-14)
        for k in range(len(params)):
            np.testing.assert_allclose(
                gradient[k], np.broadcast_to(want[1 + k], shape), rtol=1e-11, atol=1e-13,
                err_msg=f"{label}: entry {k}",
            )  # fmt: skip
        np.testing.assert_allclose(value, other[0], rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(gradient, other[1], rtol=1e-13, atol=1e-15)
        if label == "numpy scalars":
            assert type(value) is np.float64, type(value)


def test_most_random_networks_are_packed():
    # the test above exercises packs, not only the plain printer
    packed = sum(
        "_P0 = " in value_and_grad(*network(seed)[:2], [*network(seed)[2], network(seed)[1]]).source
        for seed in range(24)
    )
    assert packed >= 12


@pytest.mark.parametrize("seed", range(6))
def test_batch_mean_of_packed_networks(seed):
    loss, params, data = network(seed)
    f = value_and_grad(loss, params, [*data, params], reduce="mean")
    with unpacked():
        plain = value_and_grad(loss, params, [*data, params], reduce="mean")
    rng = np.random.default_rng(100 + seed)
    values = [rng.normal(size=50) for _ in data]
    p = rng.uniform(-1, 1, len(params))
    got, want = f(*values, p), plain(*values, p)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-15)


def demo_loss(hidden: int, seed: int, alpha: float):
    """micrograd's demo network 2-h-h-1 (ReLU) by ``symgrad.nn``: hinge loss, L2 term inside."""
    from symgrad.nn import MLP, hinge, l2

    model = MLP(2, [hidden, hidden, 1], rng=random.Random(seed))
    theta = model.parameter_symbols()
    x = list(sp.symbols("x0:2"))
    y = sp.Symbol("y")
    return hinge(model.symbolic(x), [y]) + l2(theta, alpha), theta, x, y


def test_a_layer_is_one_matrix_product_per_sweep(monkeypatch):
    monkeypatch.setattr(lift, "LIFT_MIN", math.inf)  # the scalar program, packed
    loss, theta, x, y = demo_loss(16, 0, 1e-4)
    f = value_and_grad(loss, theta, [*x, y, theta], reduce="mean")
    body = f.source.split("_coerce_vector(")[1]
    # one matrix product forward (hidden layer 2) and one backward (its adjoint to layer 1);
    # layer 1 reads two inputs and the output unit is one: elementwise
    assert body.count("_mm(") == 2
    statements = [ln for ln in body.splitlines() if " = " in ln and not ln.startswith("_")]
    assert len(statements) < 30, len(statements)
    rng = np.random.default_rng(1)
    X, Y, p = rng.normal(size=(2, 100)), rng.choice([-1.0, 1.0], 100), rng.normal(size=337) * 0.3
    with unpacked():
        plain = value_and_grad(loss, theta, [*x, y, theta], reduce="mean")
    np.testing.assert_allclose(f(*X, Y, p)[1], plain(*X, Y, p)[1], rtol=1e-12, atol=1e-15)


def test_members_are_independent_and_scheduled_after_their_operands():
    checked = 0
    for seed in range(24):
        loss, params, data = network(seed)
        prog = pack(plan(grad(loss, params), [*data, params]))
        for pk in prog.packs:
            members = set(pk.members)
            assert pk.members == list(range(pk.members[0], pk.members[0] + pk.rows))  # together
            for m in pk.members:
                assert prog.kind[m] == STATEMENT
                todo = list(prog.args_of[m])
                while todo:  # every operand of every member comes before the pack
                    a = todo.pop()
                    assert a not in members and a < pk.members[0]
                    todo += prog.args_of[a]
            checked += 1
    assert checked >= 10


def test_outputs_of_a_pack_stay_numpy_scalars():
    w, x = sp.symbols("w:6"), sp.Symbol("x")
    outs = [sp.exp(w[k] * x) * sp.sin(w[k] * x) for k in range(6)]
    f = lambdify(outs, [list(w), x])
    assert "_P0" in f.source
    got = f(np.linspace(0.1, 0.6, 6), np.float64(0.5))
    for k, v in enumerate(got):
        want = np.exp((k + 1) * 0.05) * np.sin((k + 1) * 0.05)
        assert type(v) is np.float64 and abs(v - want) < 1e-15


def test_jax_target_packs_too():
    jax = pytest.importorskip("jax")
    loss, params, data = network(5)
    rng = np.random.default_rng(2)
    values = [rng.normal(size=9) for _ in data]
    p = rng.uniform(-1, 1, len(params))
    want = value_and_grad(loss, params, [*data, params])(*values, p)
    with jax.enable_x64(True):
        f = value_and_grad(loss, params, [*data, params], backend="jax")
        got = f(*values, p)
    np.testing.assert_allclose(np.asarray(got[0]), want[0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(got[1]), want[1], rtol=1e-11, atol=1e-14)


def test_exported_packed_function_runs_without_symgrad(tmp_path):
    import json
    import subprocess
    import sys

    for seed in range(24):  # the first random network with a pack
        loss, params, data = network(seed)
        f = lambdify([loss, grad(loss, params)], [*data, params], reduce="mean", name="step")
        if "_P0 = " in f.source:
            break
    assert "_P0 = " in f.source
    f.export(tmp_path / "step_np.py")
    rng = np.random.default_rng(7)
    values = [rng.normal(size=11).tolist() for _ in data]
    p = rng.uniform(-1, 1, len(params)).tolist()
    code = (
        "import sys, json\n"
        "sys.modules['symgrad'] = None\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import numpy as np, step_np\n"
        f"v, g = step_np.step(*[np.array(a) for a in {values!r}], np.array({p!r}))\n"
        "print(json.dumps([float(v), g.tolist()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    value, gradient = json.loads(out.stdout)
    want = f(*[np.array(a) for a in values], np.array(p))
    assert value == want[0]
    np.testing.assert_array_equal(gradient, want[1])


def test_batch_mean_gradient_by_blocks_agrees(monkeypatch):
    monkeypatch.setattr(lift, "LIFT_MIN", math.inf)  # the scalar program, packed
    # 2-40-40-1: the weight gradients read 3 blocks of the adjoints x inputs product (fuse._blocks)
    loss, theta, x, y = demo_loss(40, 3, 1e-3)
    f = value_and_grad(loss, theta, [*x, y, theta], reduce="mean")
    assert "blocks=" in f.source
    with unpacked():
        plain = value_and_grad(loss, theta, [*x, y, theta], reduce="mean")
    rng = np.random.default_rng(5)
    X, Y, p = rng.normal(size=(2, 64)), rng.choice([-1.0, 1.0], 64), rng.normal(size=len(theta))
    got, want = f(*X, Y, p / 4), plain(*X, Y, p / 4)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-11, atol=1e-14)
    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        g = value_and_grad(loss, theta, [*x, y, theta], reduce="mean", backend="jax")
        assert "blocks=" in g.source
        on_jax = g(*X, Y, p / 4)
    np.testing.assert_allclose(np.asarray(on_jax[1]), want[1], rtol=1e-11, atol=1e-14)


def _kahn(n: int, args_of: list, found: list) -> list[int]:
    # the reference schedule: Kahn's algorithm over all units (packs and single nodes) with a
    # heap by priority (a node's position, a pack's last member's)
    import heapq

    unit = list(range(n))
    for members in found:
        for m in members:
            unit[m] = members[0]
    priority = list(range(n))
    packs = {members[0]: members for members in found}
    for members in found:
        priority[members[0]] = members[-1]
    indeg = [0] * n
    succ: list[list[int]] = [[] for _ in range(n)]
    for i, a in enumerate(args_of):
        for j in a:
            if unit[j] != unit[i]:
                indeg[unit[i]] += 1
                succ[unit[j]].append(unit[i])
    ready = [(priority[u], u) for u in range(n) if unit[u] == u and indeg[u] == 0]
    heapq.heapify(ready)
    out: list[int] = []
    while ready:
        _, u = heapq.heappop(ready)
        out += packs.get(u, [u])
        for v in succ[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(ready, (priority[v], v))
    return out


def test_schedule_is_kahns_order_over_units():
    # random DAGs in topological order with random packs of mutually independent nodes
    compared = 0
    for seed in range(60):
        rng = random.Random(seed)
        n = rng.randint(5, 120)
        args_of = [sorted(rng.sample(range(i), min(i, rng.randint(0, 3)))) for i in range(n)]
        below: list[set[int]] = [set() for _ in range(n)]  # every node each node depends on
        for i, a in enumerate(args_of):
            for j in a:
                below[i] |= below[j] | {j}
        free = list(range(n))
        rng.shuffle(free)
        found: list[list[int]] = []
        taken: set[int] = set()
        for _ in range(rng.randint(0, 6)):
            members: list[int] = []
            size = rng.randint(2, 8)
            for i in free:
                if i not in taken and all(i not in below[m] and m not in below[i] for m in members):
                    members.append(i)
                if len(members) == size:
                    break
            if len(members) >= 2:
                rng.shuffle(members)  # members in any order, as pack() aligns them
                found.append(members)
                taken.update(members)
        expected = _kahn(n, args_of, found)
        if len(expected) != n:
            continue  # packs that read each other both ways: pack() keeps the program unpacked
        prog = type("P", (), {"order": [None] * n, "args_of": args_of})()
        got = _schedule(prog, [(members, None) for members in found])
        assert got == expected, seed
        compared += 1
    assert compared >= 30
