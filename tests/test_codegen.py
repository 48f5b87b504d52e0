"""lambdify / value_and_grad: shapes, broadcasting, generated source, and typed errors."""

from __future__ import annotations

import re
import traceback

import numpy as np
import pytest
import sympy as sp

from symgrad import lambdify, value_and_grad
from symgrad.errors import (
    ArgumentError,
    BackendUnavailableError,
    InputTypeError,
    MissingSymbolError,
    OptionError,
    ShapeError,
    SymgradError,
)

x, y, z = sp.symbols("x y z")


def test_scalars_arrays_and_broadcasting() -> None:
    f = lambdify(x * y + sp.sin(x), [x, y])
    assert f(0.5, 2.0) == pytest.approx(0.5 * 2 + np.sin(0.5))
    xs = np.linspace(0, 1, 7)
    np.testing.assert_allclose(f(xs, 2.0), xs * 2 + np.sin(xs))
    grid = f(xs[:, None], np.arange(3.0)[None, :])
    assert grid.shape == (7, 3)
    assert f(3, 2) == pytest.approx(6 + np.sin(3))  # integers are promoted to floats
    assert lambdify(x**-1, [x])(np.array([2, 4])).tolist() == [0.5, 0.25]


def test_vector_arguments_index_the_first_axis() -> None:
    w = sp.symbols("w0:3")
    f = lambdify(sp.tanh(w[0] * x + w[1]) * w[2], [x, w])
    out = f(np.array([0.0, 1.0]), [1.0, 0.5, 2.0])
    np.testing.assert_allclose(out, 2 * np.tanh(np.array([0.0, 1.0]) + 0.5))
    # a batch of parameter vectors: shape (3, batch)
    batch = f(1.0, np.array([[1.0, 2.0], [0.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(batch, np.tanh([1.0, 2.0]))


def test_nested_outputs_become_arrays_with_constants_broadcast() -> None:
    f = lambdify([x**2, [2 * x, sp.Integer(2)], sp.Matrix([[x, 1], [0, y]])], [x, y])
    value, g, m = f(np.array([1.0, 2.0, 3.0]), 5.0)
    assert value.shape == (3,)
    assert g.shape == (2, 3) and g[1].tolist() == [2.0, 2.0, 2.0]
    assert m.shape == (2, 2, 3)
    single = lambdify([x], [x])(2.0)
    assert single == (2.0,)
    assert lambdify(sp.Integer(3), [])() == 3


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_a_top_level_matrix_is_one_array(backend) -> None:
    from symgrad.codegen.c import c_available

    if backend == "c" and not c_available():
        pytest.skip("no C compiler")
    m = sp.Matrix([[x, sp.Integer(1)], [sp.exp(y), x * y]])
    reference = sp.lambdify([x, y], m, "numpy")  # also one 2-D array
    f = lambdify(m, [x, y], backend)
    np.testing.assert_allclose(f(2.0, 0.5), reference(2.0, 0.5), rtol=1e-12)
    xs = np.array([1.0, 2.0, 3.0])
    batch = f(xs, 0.5)
    assert batch.shape == (2, 2, 3)
    for k, xv in enumerate(xs):
        np.testing.assert_allclose(batch[..., k], reference(xv, 0.5), rtol=1e-12)
    mean = lambdify(m, [x, y], backend, reduce="mean")(xs, 0.5)
    np.testing.assert_allclose(mean, batch.mean(axis=-1), rtol=1e-12)


def test_value_and_grad_matches_hand_derivatives() -> None:
    f = value_and_grad(x**2 * y + sp.exp(x), [x, y])
    value, g = f([1.0, 3.0])
    assert value == pytest.approx(3 + np.e)
    np.testing.assert_allclose(g, [2 * 3 + np.e, 1.0])
    h = value_and_grad(sp.sin(x), x)
    assert h(0.0) == (0.0, 1.0)
    k = value_and_grad(x * y, x, [x, y])
    assert k(2.0, 3.0) == (6.0, 3.0)
    with pytest.raises(MissingSymbolError, match="args="):
        value_and_grad(x * y, x)


def test_shared_subexpressions_are_computed_once() -> None:
    u = sp.tanh(x * y + z)
    f = value_and_grad(u**2 + u, [x, y, z])
    assert f.source.count("numpy.tanh(") == 1


def test_generated_names_survive_hostile_symbol_names() -> None:
    odd = [sp.Symbol(n) for n in ("lambda", "x.y", "a b", "ß", "return", "_t0", "_a0")]
    expr = sum((i + 1) * s for i, s in enumerate(odd))
    f = lambdify(expr, odd)
    assert f(*range(1, 8)) == sum((i + 1) * (i + 1) for i in range(7))
    assert "lambda" in f.source  # mentioned in comments only, safely quoted
    compile(f.source, "<check>", "exec")


def test_traceback_shows_the_generated_source() -> None:
    f = lambdify(sp.sqrt(x), [x])
    with pytest.raises(ArgumentError):
        f("text")
    g = lambdify(x + y, [x, y])
    try:
        g(np.zeros(2), np.zeros(3))
    except ShapeError as err:
        frames = traceback.extract_tb(err.__cause__.__traceback__)
        assert any(fr.filename.startswith("<symgrad:") and fr.line for fr in frames)
    else:  # pragma: no cover - the call above must fail
        pytest.fail("mismatched shapes did not raise")


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda f: f(1.0), ArgumentError, "2 argument"),
        (lambda f: f(1.0, 2.0, 3.0), ArgumentError, "2 argument"),
        (lambda f: f("a", 1.0), ArgumentError, "number"),
        (lambda f: f(None, 1.0), ArgumentError, "number"),
        (lambda f: f(True, 1.0), ArgumentError, "number"),
        (lambda f: f(np.array(["a"]), 1.0), ArgumentError, "numeric"),
        (lambda f: f(np.zeros(2), np.zeros(3)), ShapeError, "broadcast"),
    ],
)
def test_bad_calls_give_typed_errors(call, error, match) -> None:
    f = lambdify(x * y, [x, y])
    with pytest.raises(error, match=match):
        call(f)


def test_vector_argument_shape_errors() -> None:
    w = sp.symbols("w0:3")
    f = lambdify(sum(w), [w])
    with pytest.raises(ShapeError, match="3 entries"):
        f([1.0, 2.0])
    with pytest.raises(ShapeError, match="scalar"):
        f(1.0)


@pytest.mark.parametrize(
    "outputs, args, error, match",
    [
        (x * y, [x], MissingSymbolError, "y"),
        (x, [x, x], InputTypeError, "twice"),
        (x, [x**2], InputTypeError, "Symbol"),
        ("x + 1", [x], InputTypeError, "parse"),
        ([x, []], [x], InputTypeError, "empty"),
    ],
)
def test_bad_specifications_give_typed_errors(outputs, args, error, match) -> None:
    with pytest.raises(error, match=match):
        lambdify(outputs, args)


def test_unknown_backend_and_bad_name() -> None:
    with pytest.raises(BackendUnavailableError, match="numpy"):
        lambdify(x, [x], backend="fortran")
    with pytest.raises(OptionError, match="identifier"):
        lambdify(x, [x], name="not valid")


def test_errors_share_one_base_class() -> None:
    with pytest.raises(SymgradError):
        lambdify(x, [y])


def test_exact_float_constants() -> None:
    c = 0.1 + 0.2  # 0.30000000000000004: must survive printing exactly
    f = lambdify(sp.Float(c) * x, [x])
    assert f(1.0) == c
    assert lambdify(sp.Rational(1, 3) * x, [x])(3.0) == 1.0


def _reference(outputs, args, *values):
    # SymPy's own lambdify: an independent printer and no inlining
    out = sp.lambdify(args, outputs, modules="numpy")(*values)
    return np.stack(np.broadcast_arrays(*out)) if isinstance(out, list) else out


@pytest.mark.parametrize(
    "expr",
    [
        # an inlined sum inside a product inside a product (a precedence bug once)
        x**2 / ((x**2 + 2) * (y**2 + 2)) + x / (y**2 + 2),
        -(x + y) * (z - x) ** 3 - sp.exp(-(x * y)) / (1 + z**2),
        sp.Piecewise((-(x * y), x > 0), (x + y, True)) * sp.cos(-(y + z)),
        (x + 2) ** (z + 1) + sp.tanh(-(x - y)) - (x * y) ** -1,
    ],
)
def test_inlined_single_use_nodes_keep_their_precedence(expr) -> None:
    pts = [np.array([0.3, 1.7, 2.5]), np.array([0.8, 0.2, 1.1]), np.array([1.5, 0.4, 0.9])]
    grads = [sp.diff(expr, s) for s in (x, y, z)]
    f = lambdify([expr, grads], [x, y, z])
    value, g = f(*pts)
    np.testing.assert_allclose(value, _reference(expr, [x, y, z], *pts), rtol=1e-12)
    # alone, more of the value's nodes are read once, so more is inlined
    alone = lambdify(expr, [x, y, z])
    np.testing.assert_allclose(alone(*pts), _reference(expr, [x, y, z], *pts), rtol=1e-12)
    np.testing.assert_allclose(g, _reference(grads, [x, y, z], *pts), rtol=1e-11)
    for p in zip(*pts, strict=True):  # the math fast path prints the same expressions
        v, gs = f(*map(float, p))
        assert v == pytest.approx(float(_reference(expr, [x, y, z], *p)), rel=1e-12)
        np.testing.assert_allclose(gs, _reference(grads, [x, y, z], *p), rtol=1e-11)


def test_negations_of_different_names_share_a_template_but_not_a_name() -> None:
    # ``1 - u`` prints through a cached template with a negated slot; every use must keep its
    # own name (a template keyed on the wrong thing would repeat the first one)
    us = [sp.sin(x), sp.cos(y), sp.exp(z), sp.tanh(x * y)]
    outs = []
    for u in us:  # each u is read several times: a statement, negated in place
        outs += [u * (1 - u), sp.Pow(-u, 3, evaluate=False), sp.exp(-u) + u]
    f = lambdify(outs, [x, y, z])
    reference = sp.lambdify([x, y, z], outs, "numpy")
    for point in [(0.3, -1.2, 0.7), (2.0, 0.5, -0.1)]:
        np.testing.assert_allclose(f(*point), reference(*point), rtol=1e-13)
        batch = [np.full(3, v) for v in point]
        np.testing.assert_allclose(np.array(f(*batch))[:, 0], reference(*point), rtol=1e-13)
    assert f.source.count("-_t") >= 8  # the negations are printed in place, over names


def test_dead_temporaries_are_reused() -> None:
    # a chain: each link is read once by the next, so only a few names are ever live; the sum of
    # all links reads every link, so those must all stay distinct until the sum
    u, links = x, []
    for k in range(200):
        u = sp.sin(sp.Add(u, k, evaluate=False), evaluate=False)
        links.append(u)
    total = sp.Add(*links, evaluate=False)
    square = sp.Mul(u, u, evaluate=False)  # one node read twice by the same product
    f = lambdify([square, total], [x])
    at = np.array([0.1, 0.7])
    ref, refs = at, []
    for k in range(200):
        ref = np.sin(ref + k)
        refs.append(ref)
    value, sum_ = f(at)
    np.testing.assert_allclose(value, ref * ref, rtol=1e-12)
    np.testing.assert_allclose(sum_, np.sum(refs, axis=0), rtol=1e-12)
    chain = lambdify(square, [x])
    names = {t for t in re.findall(r"\b_t\d+\b", chain.source)}
    assert len(names) <= 2, names
    np.testing.assert_allclose(chain(at), ref * ref, rtol=1e-12)


def test_inlining_depth_is_bounded() -> None:
    # 3,000 nested single-use nodes must not become one 3,000-deep expression
    u = x
    for k in range(3000):
        u = sp.sin(u, evaluate=False) if k % 2 else sp.exp(-u, evaluate=False)
    f = lambdify(u, [x])
    deepest = max(line.count("(") for line in f.source.splitlines())
    assert deepest < 50
    ref = 0.3
    for k in range(3000):
        ref = np.sin(ref) if k % 2 else np.exp(-ref)
    assert f(np.array([0.3]))[0] == pytest.approx(ref, rel=1e-12)


def test_reduce_mean_averages_each_output_over_the_batch() -> None:
    w = sp.Symbol("w")
    outputs = [w * x**2, [[x, 2 * w], [sp.Integer(3), x * y]], w]
    f = lambdify(outputs, [x, y, w])
    m = lambdify(outputs, [x, y, w], reduce="mean")
    xs, ys = np.linspace(-1, 2, 7), np.linspace(0, 1, 7)
    full, means = f(xs, ys, 1.5), m(xs, ys, 1.5)
    np.testing.assert_allclose(means[0], np.mean(1.5 * xs**2), rtol=1e-14)
    want = [[np.mean(xs), 3.0], [3.0, np.mean(xs * ys)]]
    np.testing.assert_allclose(means[1], want, rtol=1e-14)
    np.testing.assert_allclose(means[1], full[1].mean(axis=-1), rtol=1e-14)
    assert means[2] == 1.5  # no batch axes: its own mean
    assert m(0.5, 2.0, 1.5)[0] == 1.5 * 0.25  # scalars: the fast path, already one sample
    with pytest.raises(ShapeError, match="empty batch"):
        m(np.array([]), 1.0, 1.0)


def test_reduce_rejects_unknown_values() -> None:

    with pytest.raises(OptionError, match="reduce"):
        lambdify(x, [x], reduce="sum")


def test_an_output_that_only_negates_a_vector_entry():
    # the entry is read only through a negation printed in place: it must still be unpacked
    x, y, z = sp.symbols("x y z")
    batch = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(lambdify(-y, [[x, y, z]])(batch), -batch[1])
    value, gradient = value_and_grad(-y, [x, y, z], [[x, y, z]])(batch)
    np.testing.assert_array_equal(value, -batch[1])
    np.testing.assert_array_equal(gradient, [0, -1, 0])
    assert float(lambdify(-y, [[x, y, z]])([1.0, 2.0, 3.0])) == -2.0


def test_a_softmax_over_300_scores_compiles_on_the_numpy_target() -> None:
    # Max of 300 scores: a balanced tree of numpy.maximum (a left fold nests 299 calls, and
    # Python's parser refuses more than 200 nested parentheses)
    from symgrad.nn.losses import softmax_cross_entropy

    s, t = sp.symbols("s0:300"), sp.symbols("t0:300")
    loss = softmax_cross_entropy(list(s), list(t))
    scores = np.random.default_rng(5).normal(size=(300, 4)) * 20
    onehot = np.eye(300)[[3, 299, 0, 150]].T
    f = value_and_grad(loss, list(s), [list(s), list(t)])
    value, grad = f(scores, onehot)
    lse = np.log(np.exp(scores - scores.max(0)).sum(0)) + scores.max(0)
    np.testing.assert_allclose(value, lse - (onehot * scores).sum(0), rtol=1e-13)
    np.testing.assert_allclose(grad, np.exp(scores - lse) - onehot, rtol=1e-11, atol=1e-14)
    maximum = lambdify(sp.Max(*s, evaluate=False), [list(s)])
    np.testing.assert_array_equal(maximum(scores), scores.max(axis=0))
