"""Tests of symgrad.Value against published numbers (micrograd's engine tests and Karpathy's
lecture), SymPy's own ``diff`` and finite differences from symgrad.numerical."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad
from symgrad import Value, numerical
from symgrad.errors import InputTypeError


# ------------------------------------------------------------------ micrograd's engine tests
def test_micrograd_sanity_check():
    # micrograd test/test_engine.py::test_sanity_check, numbers from PyTorch
    x = Value(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    assert y.data == pytest.approx(-20.0, abs=1e-12)
    assert x.grad == pytest.approx(46.0, abs=1e-12)


def test_micrograd_more_ops():
    # micrograd test/test_engine.py::test_more_ops, numbers from PyTorch
    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    assert g.data == pytest.approx(24.70408163265306, rel=1e-6, abs=1e-6)
    assert a.grad == pytest.approx(138.83381924198252, rel=1e-6, abs=1e-6)
    assert b.grad == pytest.approx(645.5772594752186, rel=1e-6, abs=1e-6)


def test_more_ops_symbolic_agrees_with_sympy_diff():
    a = Value(-4.0, label="a")
    b = Value(2.0, label="b")
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    g = (c - d) ** 2 / 2.0
    g += 10.0 / ((c - d) ** 2)
    A, B = sp.symbols("a b")
    expr = sp.sympify(g)  # through _sympy_
    at = {A: -4, B: 2}
    # the relu arguments are -2 and 6 here: replace relu by its active branch for sympy.diff
    smooth = expr.replace(sp.Max, lambda *args: args[1] if args[1].subs(at) > 0 else 0)
    assert float(sp.diff(smooth, A).subs(at)) == pytest.approx(138.83381924198252, rel=1e-9)
    assert float(sp.diff(smooth, B).subs(at)) == pytest.approx(645.5772594752186, rel=1e-9)


# ------------------------------------------------------------------ Karpathy's lecture
def test_lecture_L_example():
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = Value(10.0, label="c")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    f = Value(-2.0, label="f")
    L = d * f
    L.label = "L"
    L.backward()
    assert L.data == -8.0
    got = {v.label: v.grad for v in (a, b, c, d, e, f)}
    assert got == {"a": 6.0, "b": -4.0, "c": -2.0, "d": -2.0, "e": -2.0, "f": 4.0}


def _neuron(tanh_via_exp: bool):
    x1 = Value(2.0, label="x1")
    x2 = Value(0.0, label="x2")
    w1 = Value(-3.0, label="w1")
    w2 = Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    if tanh_via_exp:
        e = (2 * n).exp()
        o = (e - 1) / (e + 1)
    else:
        o = n.tanh()
    o.backward()
    return o, dict(x1=x1.grad, w1=w1.grad, x2=x2.grad, w2=w2.grad, b=b.grad)


@pytest.mark.parametrize("via_exp", [False, True])
def test_lecture_neuron(via_exp):
    o, grads = _neuron(via_exp)
    assert o.data == pytest.approx(0.7071067811865476, abs=1e-12)
    expected = dict(x1=-1.5, w1=1.0, x2=0.5, w2=0.0, b=0.5)
    for k, v in expected.items():
        assert grads[k] == pytest.approx(v, abs=1e-9), k


def test_variable_used_twice():
    a = Value(3.0, label="a")
    b = a + a
    b.backward()
    assert a.grad == 2.0
    a = Value(-2.0, label="a")
    b = Value(3.0, label="b")
    f = (a * b) * (a + b)
    f.backward()
    assert (a.grad, b.grad) == (-3.0, -8.0)


def test_relu_gradient_at_zero_is_zero():
    x = Value(0.0)
    y = x.relu()
    y.backward()
    assert x.grad == 0.0
    x = Value(1e-300)
    (x.relu()).backward()
    assert x.grad == 1.0


def test_sum_of_ten_thousand_values():
    xs = [Value(float(i)) for i in range(10_000)]
    total = sum(xs)
    total.backward()
    assert total.data == sum(range(10_000))
    assert all(x.grad == 1.0 for x in xs)


def test_five_thousand_deep_tanh_chain():
    x = Value(0.5, label="x")
    y = x
    for _ in range(5000):
        y = y.tanh()
    y.backward()
    # reference: the chain rule by hand in plain floats
    t, g = 0.5, 1.0
    for _ in range(5000):
        t = math.tanh(t)
        g *= 1 - t * t
    assert y.data == pytest.approx(t, rel=1e-12)
    assert x.grad == pytest.approx(g, rel=1e-9)


def test_deep_chain_expr_builds_and_differentiates():
    x = Value(0.3, label="x")
    y = x
    for _ in range(2000):
        y = y.tanh()
    _, _, values = y._symgrad_graph()
    g = symgrad.grad(y, "x", simplify=False)  # a Value and a symbol name are accepted
    f = symgrad.lambdify(g, [sp.Symbol("x")])
    y.backward()
    assert float(f(0.3)) == pytest.approx(x.grad, rel=1e-9)
    assert values == {sp.Symbol("x"): 0.3}


# ------------------------------------------------------------------ semantics
def test_backward_accumulates_like_micrograd():
    x = Value(3.0)
    y = x * x
    y.backward()
    assert x.grad == 6.0
    y.backward()  # micrograd: root grad reset to 1, everything else accumulates
    assert x.grad == 12.0


def test_value_exponent_has_its_own_gradient():
    b = Value(2.0, label="b")
    e = Value(3.0, label="e")
    y = b**e
    y.backward()
    assert y.data == 8.0
    assert b.grad == pytest.approx(12.0)
    assert e.grad == pytest.approx(8.0 * math.log(2.0))
    x = Value(2.0)
    z = 3**x  # reflected power
    z.backward()
    assert z.data == 9.0 and x.grad == pytest.approx(9 * math.log(3))


@pytest.mark.parametrize(
    ("build", "value", "dx"),
    [
        (lambda x: x.exp(), math.exp(0.7), math.exp(0.7)),
        (lambda x: x.log(), math.log(0.7), 1 / 0.7),
        (lambda x: x.sigmoid(), 1 / (1 + math.exp(-0.7)), 0.0),
        (lambda x: x.tanh(), math.tanh(0.7), 1 - math.tanh(0.7) ** 2),
        (lambda x: 1 - x, 0.3, -1.0),
        (lambda x: 2 / x, 2 / 0.7, -2 / 0.49),
        (lambda x: x / 2, 0.35, 0.5),
        (lambda x: -x, -0.7, -1.0),
        (lambda x: x - 1, -0.3, 1.0),
        (lambda x: x**0.5, math.sqrt(0.7), 0.5 / math.sqrt(0.7)),
    ],
)
def test_unary_ops(build, value, dx):
    x = Value(0.7)
    y = build(x)
    y.backward()
    if dx == 0.0:  # sigmoid: s (1 - s)
        s = 1 / (1 + math.exp(-0.7))
        dx = s * (1 - s)
    assert y.data == pytest.approx(value, rel=1e-12)
    assert x.grad == pytest.approx(dx, rel=1e-12)


def test_micrograd_attributes():
    a = Value(2.0, label="a")
    b = a * 3
    assert b._op == "*" and a in b._prev and len(b._prev) == 2
    assert (a**2)._op == "**2"
    assert a.relu()._op == "ReLU"
    assert a.grad == 0
    assert repr(a) == "Value(data=2.0, grad=0.0)"


def test_expr_mirrors_graph_and_labels():
    x = Value(2.0, label="x")
    y = Value(3.0, label="y")
    h = x * y
    h.label = "h"
    out = (h + 1).tanh()
    expr, labels, values = out._symgrad_graph()
    X, Y = sp.symbols("x y")
    assert sp.simplify(expr - sp.tanh(X * Y + 1)) == 0
    assert labels[X * Y] == "h" and labels[X] == "x"
    assert values == {X: 2.0, Y: 3.0}
    assert out._sympy_() == expr


def test_unlabelled_and_duplicate_labels_get_distinct_symbols():
    a, b = Value(1.0), Value(2.0)
    c, d = Value(3.0, label="x"), Value(4.0, label="x")
    _, _, values = (a * b + c * d)._symgrad_graph()
    assert sorted(values.values()) == [1.0, 2.0, 3.0, 4.0]
    assert len({str(s) for s in values}) == 4


def test_constants_are_numbers_in_expr():
    x = Value(1.0, label="x")
    expr = (2 * x + 0.5).expr
    assert expr.free_symbols == {sp.Symbol("x")}


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad", ["1.0", None, 1 + 2j, [1.0], True])
def test_bad_data_is_a_typed_error(bad):
    with pytest.raises(InputTypeError, match="real number"):
        Value(bad)


@pytest.mark.parametrize("bad", ["1.0", None, 1 + 2j])
def test_bad_operand_is_a_typed_error(bad):
    x = Value(1.0)
    with pytest.raises(InputTypeError):
        x + bad
    with pytest.raises(InputTypeError):
        bad * x
    with pytest.raises(InputTypeError):
        x**bad


def test_bad_label():
    with pytest.raises(InputTypeError, match="label"):
        Value(1.0, label=3)


def test_no_real_answer_is_nan_or_inf_as_in_numpy_not_an_error():
    # IEEE 754 as NumPy gives it (the torch comparison is in tests/test_value_ieee.py)
    with np.errstate(all="ignore"):
        cases = [
            (Value(-1.0).log(), np.log(-1.0)),
            (Value(0.0).log(), np.log(0.0)),
            (Value(0.0) ** -1, np.float64(0.0) ** -1.0),
            (1 / Value(0.0), 1 * np.float64(0.0) ** -1.0),
            (Value(-2.0) ** 0.5, np.float64(-2.0) ** 0.5),
        ]
    for v, ref in cases:
        np.testing.assert_equal(v.data, float(ref))


def test_ieee_results_are_documented_not_errors():
    x = Value(1000.0)
    y = x.exp()
    assert y.data == math.inf
    y.backward()
    assert x.grad == math.inf
    big = Value(1e200) * 1e200
    assert big.data == math.inf
    # exponent gradient at a negative base: log has no real value, so nan (not a wrong number)
    b, e = Value(-2.0), Value(2.0)
    z = b**e
    z.backward()
    assert z.data == 4.0 and b.grad == -4.0 and math.isnan(e.grad)


# ------------------------------------------------------------------ randomized programs
UNARY = ["tanh", "sigmoid", "exp_tanh", "log1p_sq", "square", "cube", "neg", "relu"]
BINARY = ["add", "sub", "mul", "div", "pow"]


def _apply(op, a, b):
    if op == "tanh":
        return a.tanh()
    if op == "sigmoid":
        return a.sigmoid()
    if op == "exp_tanh":
        return a.tanh().exp()
    if op == "log1p_sq":
        return (a * a + 1).log()
    if op == "square":
        return a**2
    if op == "cube":
        return a**3
    if op == "neg":
        return -a
    if op == "relu":
        return a.relu()
    if op == "add":
        return a + b
    if op == "sub":
        return 1.5 - a + b
    if op == "mul":
        return a * b * 0.5
    if op == "div":
        return a / (b * b + 1)
    if op == "pow":
        return (a * a + 1) ** b.tanh()
    raise AssertionError(op)


step = st.tuples(st.sampled_from(UNARY + BINARY), st.integers(0, 50), st.integers(0, 50))


def _run(program, xs, labels=True):
    nodes = [Value(x, label=f"x{i}" if labels else "") for i, x in enumerate(xs)]
    for op, i, j in program:
        nodes.append(_apply(op, nodes[i % len(nodes)], nodes[j % len(nodes)]))
    return nodes


@settings(max_examples=40, deadline=None)
@given(
    program=st.lists(step, min_size=1, max_size=12),
    xs=st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3),
)
def test_random_programs_agree_with_symbolic_and_numerical(program, xs):
    nodes = _run(program, xs)
    out = nodes[-1]
    # keep away from relu's kink, where finite differences are meaningless
    relu_inputs = [n._children[0].data for n in out._topo() if n._op == "ReLU"]
    if any(abs(r) < 1e-3 for r in relu_inputs) or not math.isfinite(out.data):
        return
    out.backward()
    got = np.array([n.grad for n in nodes[:3]])

    syms = sp.symbols("x0 x1 x2")
    expr = out.expr
    symbolic = symgrad.grad(expr, list(syms), simplify=False)
    f = symgrad.lambdify(symbolic, [list(syms)])
    want_sym = np.array([float(g) for g in f(np.array(xs))], dtype=float)
    np.testing.assert_allclose(got, want_sym, rtol=1e-9, atol=1e-12)

    def value_of(point):
        return _run(program, [float(p) for p in point], labels=False)[-1].data

    want_num = numerical.gradient(value_of, np.array(xs), method="richardson")
    np.testing.assert_allclose(got, want_num, rtol=1e-5, atol=1e-6)


def test_random_programs_fixed_seed_exercise_every_op():
    rng = random.Random(0)
    for op in UNARY + BINARY:
        xs = [rng.uniform(0.2, 1.0) for _ in range(3)]
        nodes = _run([(op, 0, 1), ("mul", 3, 2)], xs)
        out = nodes[-1]
        out.backward()
        syms = sp.symbols("x0 x1 x2")
        g = [sp.diff(out.expr.doit(), s) for s in syms]  # SymPy's own diff as the reference
        want = [float(gi.subs(dict(zip(syms, xs, strict=True)))) for gi in g]
        got = [n.grad for n in nodes[:3]]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=op)


def test_backward_reads_the_rule_registry():
    # Value has no derivative formulas of its own: overriding the tanh rule changes backward()
    from symgrad import rules

    x = Value(0.4)
    y = x.tanh()
    with rules.override(sp.tanh, lambda n: [2 * (1 - n**2)]):
        y.backward()
    assert x.grad == pytest.approx(2 * (1 - math.tanh(0.4) ** 2), rel=1e-12)
    x.grad = 0.0
    y.backward()
    assert x.grad == pytest.approx(1 - math.tanh(0.4) ** 2, rel=1e-12)


def test_manual_backward_as_in_the_lecture():
    # the lecture first backpropagates by hand, calling _backward() node by node
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    x1w1 = x1 * w1
    x2w2 = x2 * w2
    s = x1w1 + x2w2
    n = s + b
    o = n.tanh()
    o.grad = 1.0
    for node in (o, n, s, x2w2, x1w1, x1):  # x1 is a leaf: nothing to do
        node._backward()
    got = [x1.grad, w1.grad, x2.grad, w2.grad, b.grad]
    np.testing.assert_allclose(got, [-1.5, 1.0, 0.5, 0.0, 0.5], atol=1e-9)
