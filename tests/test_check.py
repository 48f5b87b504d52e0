"""The gradient checker is itself tested: it must catch small, deliberate errors."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symgrad import check_grad, check_grad_fn
from symgrad.construct import add, mul, power
from symgrad.errors import (
    GradientCheckError,
    InputTypeError,
    MissingSymbolError,
    OptionError,
    ShapeError,
)
from symgrad.rules import override

x, y, w, b = sp.symbols("x y w b")
NEURON = sp.tanh(w * x + b) * y + sp.sin(x * y)


def _tanh_off_by(factor: float):
    # a deliberately wrong tanh rule: (1 - tanh^2) * factor
    return lambda n: [mul(sp.Float(factor), add([sp.S.One, mul(-1, power(n, 2))]))]


def test_a_rule_wrong_by_0_05_percent_is_caught_and_named() -> None:
    at = {x: 0.7, y: -1.3, w: 0.4, b: 0.2}
    assert check_grad(NEURON, at=at).ok
    with override(sp.tanh, _tanh_off_by(1.0005)):
        with pytest.raises(GradientCheckError, match="disagree for b, w, x") as info:
            check_grad(NEURON, at=at)
        report = info.value.report
    assert [r.name for r in report.failures] == ["b", "w", "x"]  # y does not pass through tanh
    rel = {r.name: r.rel_error for r in report.failures}
    assert 4e-4 < rel["w"] < 6e-4 and 4e-4 < rel["b"] < 6e-4  # only the tanh path: 0.05%


def test_pytorch_gradcheck_tolerances_would_miss_that_error() -> None:
    # torch.autograd.gradcheck defaults: atol=1e-5, rtol=1e-3 (documented); a 5e-4 relative
    # error passes them, which is why symgrad's defaults are far tighter
    at = {x: 0.7, y: -1.3, w: 0.4, b: 0.2}
    with override(sp.tanh, _tanh_off_by(1.0005)):
        assert check_grad(NEURON, at=at, rtol=1e-3, atol=1e-5).ok


SMOOTH = [
    sp.sin(x) * sp.exp(y),
    sp.tanh(w * x + b),
    sp.log(1 + x**2) / (2 + sp.cos(y)),
    sp.atan(x * y) + sp.sqrt(1 + w**2),
    x**3 * y - 2 * w * b,
]


@pytest.mark.parametrize("expr", SMOOTH, ids=str)
def test_numerical_error_on_smooth_functions(expr) -> None:
    rng = np.random.default_rng(0)
    syms = sorted(expr.free_symbols, key=str)
    at = {s: rng.uniform(-1.5, 1.5, size=5) for s in syms}  # five points at once
    central = check_grad(expr, at=at)
    assert central.points == 5
    assert max(r.rel_error for r in central.rows) < 1e-9
    complex_step = check_grad(expr, at=at, method="complex")
    assert max(r.rel_error for r in complex_step.rows) < 1e-13


def test_report_prints_a_table() -> None:
    report = check_grad(x**2 * y, wrt=[x], at={"x": 3.0, "y": 2.0})
    text = str(report)
    assert text.splitlines()[0].startswith("gradient check (central differences")
    assert "passed" in text.splitlines()[0]
    assert text.splitlines()[1].split() == [
        "variable",
        "symbolic",
        "numerical",
        "abs",
        "error",
        "rel",
        "error",
        "step",
        "ok",
    ]
    assert report.rows[0].symbolic == 12.0
    assert report.rows[0].step == pytest.approx(np.finfo(float).eps ** (1 / 3) * 3, rel=1e-6)


def test_failed_report_without_raising() -> None:
    with override(sp.sin, lambda n: [sp.cos(n.args[0]) * 1.01]):
        report = check_grad(sp.sin(x), at={x: 0.3}, raise_on_failure=False)
    assert not report.ok
    assert "FAILED for x" in str(report)


def test_nan_gradients_fail() -> None:
    report = check_grad(sp.sqrt(x), at={x: -1.0}, raise_on_failure=False)
    assert not report.ok


def test_callable_variant_catches_a_wrong_hand_derived_gradient() -> None:
    def f(v):
        return 3 * v[0] ** 2 - 4 * v[0] + 5

    assert check_grad_fn(f, lambda v: np.array([6 * v[0] - 4]), [3.0]).ok
    with pytest.raises(GradientCheckError, match="x\\[0\\]"):
        check_grad_fn(f, lambda v: np.array([6 * v[0] - 3]), [[3.0], [1.0]])
    report = check_grad_fn(f, lambda v: [6 * v[0] - 4], [3.0], names=["x"])
    assert report.rows[0].name == "x"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"at": None}, InputTypeError, "mapping"),
        ({"at": [1.0, 2.0]}, InputTypeError, "mapping"),
        ({"at": {x: 1.0}}, MissingSymbolError, "y"),
        ({"at": {x: 1.0, y: 2.0}, "wrt": [w]}, MissingSymbolError, "w"),
        ({"at": {x: [1.0, 2.0], y: [1.0, 2.0, 3.0]}}, ShapeError, "broadcast"),
        ({"at": {x: 1.0, y: 2.0}, "method": "sideways"}, Exception, "method"),
    ],
)
def test_bad_checker_input(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        check_grad(x * y, **kwargs)


def test_bad_callable_input() -> None:
    with pytest.raises(InputTypeError, match="callable"):
        check_grad_fn("f", lambda v: v, [1.0])
    with pytest.raises(ShapeError, match="names"):
        check_grad_fn(lambda v: v[0], lambda v: v, [1.0], names=["a", "b"])
    with pytest.raises(ShapeError, match="shape"):
        check_grad_fn(lambda v: v[0], lambda v: v, np.zeros((1, 1, 1)))


BAD_TOLERANCES = [
    ("a", InputTypeError),
    (None, InputTypeError),
    (True, InputTypeError),
    (1e-6j, InputTypeError),
    (complex(1e-6, 0), InputTypeError),
    ([1e-6], InputTypeError),
    (sp.Symbol("r"), InputTypeError),
    (sp.I, InputTypeError),
    (sp.oo, OptionError),
    (float("inf"), OptionError),
    (float("nan"), OptionError),
    (-1e-6, OptionError),
]


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize(("value", "error"), BAD_TOLERANCES, ids=repr)
def test_bad_tolerances_are_typed_errors(name, value, error) -> None:
    with pytest.raises(error, match=name):
        check_grad(x**2, at={x: 1.0}, **{name: value})
    with pytest.raises(error, match=name):
        check_grad_fn(lambda v: v[0] ** 2, lambda v: 2 * v, [1.0], **{name: value})


def test_tolerances_of_other_real_types_work() -> None:
    for value in (sp.Rational(1, 10**5), np.float32(1e-5), sp.Float(1e-5), 0):
        report = check_grad(x**2, at={x: 1.0}, rtol=value, raise_on_failure=False)
        assert report.ok and report.rtol == float(value)
        assert str(report)  # the report prints


def test_bad_points_and_names_for_check_grad_fn() -> None:
    f, g = (lambda v: v[0]), (lambda v: np.ones_like(v))
    for bad in ("ab", [[1.0], [1.0, 2.0]], object()):
        with pytest.raises(InputTypeError, match="array of numbers"):
            check_grad_fn(f, g, bad)
    for bad in ([], None, np.zeros((0, 2))):
        with pytest.raises(ShapeError):
            check_grad_fn(f, g, bad)
    with pytest.raises(InputTypeError, match="names"):
        check_grad_fn(f, g, [1.0], names="x")


def test_values_for_other_symbols_are_ignored_everywhere() -> None:
    # SymPy's subs convention, in check_grad and derive alike
    from symgrad import derive

    at = {x: 0.5, y: 2.0, "unused": 7.0}
    assert check_grad(x**2 * y, at=at).ok
    d = derive(x**2 * y, at=at)
    assert d.adjoint_values[x] == pytest.approx(2 * 0.5 * 2.0)  # d(x^2 y)/dx = 2xy
