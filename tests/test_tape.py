"""The tape (codegen/tape.py): small array programs run node by node, and the pieces lift.py
builds with it (_array_value_and_grad), against sympy.lambdify, sympy.diff and the compiled
NumPy target."""

from __future__ import annotations

import inspect
import weakref

import numpy as np
import pytest
import sympy as sp

from symgrad.codegen import compile as C
from symgrad.codegen import lambdify
from symgrad.codegen import tape as T
from symgrad.codegen.plan import plan
from tests.threads import run_threads

x, y, z = sp.symbols("x y z", real=True)
RNG = np.random.default_rng(7)
COLUMNS = [RNG.normal(size=9) for _ in range(3)]

EXPRESSIONS = [
    sp.exp(x) * y - z,
    -x + 2 * y,
    sp.Max(x, y, z) - sp.log(1 + sp.exp(x - sp.Max(x, y))),
    sp.Heaviside(x - y, sp.Rational(1, 2)) * z,
    1 / (x**2 + 1) + sp.sqrt(y**2 + 1) + sp.pi * z,
    sp.tanh(x) ** 2 - sp.Abs(y) * sp.sign(z),
    sp.Mul(-1, x, evaluate=False) + sp.Mul(-1, y, evaluate=False) * z,
    sp.Add(*[sp.Symbol(f"w{k}") * x for k in range(3)], evaluate=False).subs(
        {sp.Symbol(f"w{k}"): k + 1 for k in range(3)}
    ),
]


@pytest.fixture(params=["interpreted", "compiled"])
def tier(request, monkeypatch):
    # a tape runs node by node, then (hot) as one compiled straight-line function
    monkeypatch.setattr(T, "COMPILE_AFTER", 10**9 if request.param == "interpreted" else 1)
    return request.param


@pytest.mark.parametrize("expr", EXPRESSIONS, ids=range(len(EXPRESSIONS)))
def test_tape_matches_sympy_lambdify_and_the_compiled_target(expr, tier):
    # sympy.diff's DiracDelta (zero away from the kink) as the tape's Heaviside rule has it
    grads = [expr.diff(v).replace(sp.DiracDelta, lambda *a: sp.S.Zero) for v in (x, y, z)]
    outputs = [expr, grads]
    t = T.tape(plan(outputs, [x, y, z]))
    assert t is not None
    value, grad = t(*COLUMNS)
    reference = sp.lambdify([x, y, z], outputs, modules="numpy")(*COLUMNS)
    np.testing.assert_allclose(value, reference[0], rtol=1e-13, atol=1e-15)
    for k in range(3):
        np.testing.assert_allclose(
            np.broadcast_to(grad[k], COLUMNS[0].shape),
            np.broadcast_to(reference[1][k], COLUMNS[0].shape),
            rtol=1e-13,
            atol=1e-15,
        )
    compiled = lambdify(outputs, [x, y, z])(*COLUMNS)
    np.testing.assert_allclose(grad, compiled[1], rtol=1e-13, atol=1e-15)


def test_constant_outputs_vector_arguments_and_the_shown_source(tier):
    t = T.tape(plan([sp.Integer(3), [x * y, sp.pi]], [[x, y]]))
    value, rest = t(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert value == 3
    np.testing.assert_allclose(rest, [[3.0, 8.0], [np.pi, np.pi]])
    assert "x*y" in t.source and t.source.endswith("\n")


def test_nodes_printed_in_place_fall_back_to_the_compiled_function():
    pw = sp.Piecewise((x**2, x > 0), (-x, True))
    assert T.tape(plan(pw, [x])) is None
    f = C._array_value_and_grad(pw, x, [x])
    value, grad = f(np.array([-2.0, 3.0]))
    np.testing.assert_allclose(value, [2.0, 9.0])
    np.testing.assert_allclose(grad, [-1.0, 6.0])


def test_ieee_results_and_warnings_are_numpys(tier):
    t = T.tape(plan([sp.log(x), 1 / x], [x]))
    with pytest.warns(RuntimeWarning):
        value, inv = t(np.array([0.0, -1.0, np.inf]))
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(value, np.log([0.0, -1.0, np.inf]))
        np.testing.assert_array_equal(inv, 1 / np.array([0.0, -1.0, np.inf]))


def test_values_are_dropped_after_their_last_reader(monkeypatch):
    monkeypatch.setattr(T, "COMPILE_AFTER", 10**9)
    # a chain of single-use values: at most the current operation's operand and result live
    expr = 2 * sp.sin(sp.exp(x) + 1)
    t = T.tape(plan([expr], [x]))
    made, live = [], []

    class Watched(np.ndarray):
        pass

    def watch(fn):
        def run(*args):
            live.append(sum(ref() is not None for ref in made))
            out = np.asarray(fn(*args)).view(Watched)
            made.append(weakref.ref(out))
            return out

        return run

    t._code = [(watch(fn), *rest) for fn, *rest in t._code]
    (value,) = t(np.arange(3.0))
    assert len(made) == 4 and max(live) <= 1
    np.testing.assert_allclose(value, 2 * np.sin(np.exp(np.arange(3.0)) + 1))


def test_distinct_texts_compile_once_and_the_cache_is_bounded(monkeypatch):
    a = T.tape(plan([sp.cosh(x) * y], [x, y]))
    b = T.tape(plan([sp.cosh(y) * x], [x, y]))
    assert {fn for fn, *_ in a._code} == {fn for fn, *_ in b._code}
    monkeypatch.setattr(T, "COMPILED_MAX", 0)
    T.tape(plan([sp.sinh(x)], [x]))
    assert len(T._COMPILED) <= 2  # started afresh, then this tape's texts


def test_tapes_built_and_called_from_threads_agree():
    exprs = [sp.exp(x) * y - sp.Max(x, y) + k for k in range(6)]

    results: dict = {}

    def work(k):
        t = T.tape(plan([exprs[k], [-exprs[k], exprs[k] * z]], [x, y, z]))
        results[k] = t(*COLUMNS)

    run_threads(work, 6)
    for k, (value, rest) in sorted(results.items()):
        ref = sp.lambdify([x, y, z], exprs[k])(*COLUMNS)
        np.testing.assert_allclose(value, ref, rtol=1e-14)
        np.testing.assert_allclose(rest[0], -ref, rtol=1e-14)


def test_a_hot_tape_compiles_once_and_answers_bit_for_bit_the_same(monkeypatch):
    monkeypatch.setattr(T, "COMPILE_AFTER", 3)
    expr = sp.Max(x, y) - sp.log(1 + sp.exp(x - sp.Max(x, y))) + sp.Heaviside(z, 0) * x
    t = T.tape(plan([expr, [-expr, expr * z, sp.Integer(2)]], [x, y, z]))
    first = t(*COLUMNS)
    assert t._compiled is None
    results = [t(*COLUMNS) for _ in range(4)]
    compiled = t._compiled
    assert compiled is not None and t(*COLUMNS) is not None and t._compiled is compiled
    for value, rest in results:
        np.testing.assert_array_equal(value, first[0])
        np.testing.assert_array_equal(rest, first[1])
    assert "del " in inspect.getsource(compiled)  # values dropped after their last reader
