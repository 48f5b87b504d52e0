"""One row per differentiable head: symgrad's gradient against independent references.

Each row gives an expression built around the head, the domain to sample and a tolerance. Every
row is checked (a) against ``sympy.diff`` evaluated at 30 digits, (b) against central differences
of SymPy's own ``lambdify`` of the value (so symgrad's compiler is not involved), and (c) the
compiled gradient against SymPy's ``lambdify`` of ``sympy.diff``. A completeness test makes sure
every head registered in ``symgrad.rules`` has a row.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pytest
import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair

from symgrad import grad, lambdify, numerical, relu, sigmoid
from symgrad.errors import UnsupportedFunctionError
from symgrad.rules import registered_heads

x, y, z = sp.symbols("x y z", real=True)  # real, so SymPy differentiates Abs as sign


@dataclass(frozen=True)
class Row:
    head: type
    expr: sp.Expr
    domain: tuple[float, float] = (-2.0, 2.0)
    rtol: float = 1e-6  # against finite differences
    reference: sp.Expr | None = None  # an equal expression for sympy.diff when needed
    compilable: bool = True  # False where NumPy has no such function


ROWS = [
    # arithmetic
    Row(sp.Add, x + 2 * y + sp.sin(x) - z),
    Row(sp.Mul, x * y * z),
    Row(sp.Mul, x * y * z * sp.sin(x) * sp.cos(y) * (z + 3)),  # > 4 factors: prefix/suffix path
    Row(sp.Pow, x**3 + y ** (-2) + sp.sqrt(z), domain=(0.5, 2.0)),
    Row(sp.Pow, x**y, domain=(0.5, 2.0)),  # symbolic exponent
    Row(sp.Pow, 2**x + x ** sp.Rational(-3, 2), domain=(0.5, 2.0)),
    # exponential and logarithm
    Row(sp.exp, sp.exp(x * y)),
    Row(sp.log, sp.log(x * y + 3), domain=(-1.5, 1.5)),
    # trigonometric
    Row(sp.sin, sp.sin(x * y)),
    Row(sp.cos, sp.cos(x + y)),
    Row(sp.tan, sp.tan(x / 2)),
    Row(sp.cot, sp.cot(x), domain=(0.3, 2.8)),
    Row(sp.sec, sp.sec(x / 2)),
    Row(sp.csc, sp.csc(x), domain=(0.3, 2.8)),
    Row(sp.asin, sp.asin(x / 3)),
    Row(sp.acos, sp.acos(x / 3)),
    Row(sp.atan, sp.atan(x * y)),
    Row(sp.acot, sp.acot(x * y), domain=(0.2, 2.0)),
    Row(sp.asec, sp.asec(x * y), domain=(1.1, 2.0)),
    Row(sp.acsc, sp.acsc(x * y), domain=(1.1, 2.0)),
    Row(sp.atan2, sp.atan2(y, x), domain=(0.2, 2.0)),
    # hyperbolic
    Row(sp.sinh, sp.sinh(x * y)),
    Row(sp.cosh, sp.cosh(x - y)),
    Row(sp.tanh, sp.tanh(x * y + z)),
    Row(sp.coth, sp.coth(x), domain=(0.3, 2.0)),
    Row(sp.sech, sp.sech(x * y)),
    Row(sp.csch, sp.csch(x), domain=(0.3, 2.0)),
    Row(sp.asinh, sp.asinh(x * y)),
    Row(sp.acosh, sp.acosh(x * y), domain=(1.2, 2.0)),
    Row(sp.atanh, sp.atanh(x / 3)),
    Row(sp.acoth, sp.acoth(x * y), domain=(1.2, 2.0)),
    Row(sp.asech, sp.asech(x / 3), domain=(0.3, 2.5)),
    Row(sp.acsch, sp.acsch(x), domain=(0.3, 2.0)),
    Row(sigmoid, sigmoid(x * y), reference=1 / (1 + sp.exp(-x * y))),
    # piecewise (sampled away from the kinks; the kinks have their own tests)
    Row(sp.Abs, sp.Abs(x * y)),
    Row(sp.sign, sp.sign(x) * y),
    Row(sp.Heaviside, sp.Heaviside(x) * y + sp.Heaviside(y, 0) * x),
    Row(sp.floor, sp.floor(3 * x) * y),
    Row(sp.ceiling, sp.ceiling(3 * x) * y),
    Row(sp.Mod, sp.Mod(3 * x, 2) * y, reference=(3 * x - 2 * sp.floor(3 * x / 2)) * y),
    Row(sp.Max, sp.Max(x, y, z) + relu(x - y)),
    Row(sp.Min, sp.Min(x, y * z)),
    Row(sp.Piecewise, sp.Piecewise((x**2, x > y), (sp.sin(y), True)) * z),
    Row(ExprCondPair, sp.Piecewise((x * y, x < 0), (y**2, True))),
]

FALLBACK_ROWS = [  # no rule of their own: SymPy's fdiff
    Row(sp.erf, sp.erf(x * y)),
    Row(sp.gamma, sp.gamma(x + 3), compilable=False),  # polygamma has no NumPy translation
    Row(sp.LambertW, sp.LambertW(x**2 + y), domain=(0.1, 2.0), compilable=False),
    Row(sp.loggamma, sp.loggamma(x + 3), compilable=False),
    Row(sp.erfc, sp.erfc(x) * y),
]


def _reference_diff(expr: sp.Expr, s: sp.Symbol) -> sp.Expr:
    # sympy.diff, with the almost-everywhere derivative of step functions (0 off the jumps):
    # DiracDelta and unevaluated Derivative(floor/ceiling/sign(...)) are zero at sampled points.
    d = sp.diff(expr, s).replace(sp.DiracDelta, lambda *args: sp.S.Zero)
    return d.replace(
        lambda e: (
            isinstance(e, (sp.Derivative, sp.Subs))
            and e.atoms(sp.floor, sp.ceiling, sp.sign) != set()
        ),
        lambda *args: sp.S.Zero,
    ).doit()


def _points(row: Row, syms: list[sp.Symbol], n: int = 4) -> list[dict]:
    rng = np.random.default_rng(zlib.crc32(str(row.expr).encode()))  # stable across runs
    lo, hi = row.domain
    pts = []
    kinks = row.expr.has(sp.floor, sp.ceiling, sp.sign, sp.Heaviside, sp.Abs, sp.Max, sp.Min)
    while len(pts) < n:
        vals = rng.uniform(lo, hi, size=len(syms))
        if kinks and _too_close(vals.tolist()):
            continue  # keep away from ties, from 0 and from floor/ceiling jumps
        pts.append(dict(zip(syms, vals.tolist(), strict=True)))
    return pts


def _too_close(vals: list[float]) -> bool:
    ties = any(abs(a - b) < 0.05 for i, a in enumerate(vals) for b in vals[i + 1 :])
    jumps = any(abs(3 * a - round(3 * a)) < 0.15 for a in vals)  # floor/ceiling(3x), 0
    products = any(abs(a * b) < 0.05 for i, a in enumerate(vals) for b in vals[i + 1 :])
    return ties or jumps or products


def _id(row: Row) -> str:
    return f"{row.head.__name__}:{row.expr}"[:60]


@pytest.mark.parametrize("row", ROWS + FALLBACK_ROWS, ids=_id)
def test_grad_matches_sympy_diff(row: Row) -> None:
    syms = sorted(row.expr.free_symbols, key=str)
    ours = grad(row.expr, syms)
    ref_expr = row.reference if row.reference is not None else row.expr
    refs = [_reference_diff(ref_expr, s) for s in syms]
    for point in _points(row, syms):
        subs = {s: sp.Float(v, 30) for s, v in point.items()}
        for s, mine, ref in zip(syms, ours, refs, strict=True):
            a = complex(mine.evalf(30, subs=subs))
            b = complex(ref.evalf(30, subs=subs))
            assert abs(a - b) <= 1e-9 * max(1.0, abs(b)), (s, point, mine, ref)


COMPILABLE = [r for r in ROWS + FALLBACK_ROWS if r.compilable]


@pytest.mark.parametrize("row", COMPILABLE, ids=_id)
def test_grad_matches_finite_differences(row: Row) -> None:
    syms = sorted(row.expr.free_symbols, key=str)
    value = sp.lambdify([syms], row.expr, modules=["numpy", "math"])
    compiled = lambdify([grad(row.expr, syms, simplify=False)], [syms])
    for point in _points(row, syms):
        at = np.array([point[s] for s in syms])
        num = numerical.gradient(lambda v: float(value(v)), at)
        (exact,) = compiled(at)
        np.testing.assert_allclose(exact, num, rtol=row.rtol, atol=1e-7)


@pytest.mark.parametrize("row", COMPILABLE, ids=_id)
def test_compiled_gradient_matches_sympy_lambdify(row: Row) -> None:
    syms = sorted(row.expr.free_symbols, key=str)
    ref_expr = row.reference if row.reference is not None else row.expr
    ref = sp.lambdify(
        [syms], [_reference_diff(ref_expr, s) for s in syms], modules=["numpy", "math"]
    )
    ours = lambdify([grad(row.expr, syms, simplify=False)], [syms])
    for point in _points(row, syms):
        at = np.array([point[s] for s in syms])
        np.testing.assert_allclose(ours(at)[0], np.array(ref(at), float), rtol=1e-10, atol=1e-12)


def test_every_registered_head_has_a_row() -> None:
    covered = {row.head for row in ROWS}
    missing = [h.__name__ for h in registered_heads() if h not in covered]
    assert not missing, f"rules without a table row: {missing}"


def test_uncompilable_function_gives_a_typed_error() -> None:
    with pytest.raises(UnsupportedFunctionError, match="LambertW"):
        lambdify(sp.LambertW(x), [x])


def test_relu_and_max_at_the_kink_follow_pytorch() -> None:
    # micrograd and PyTorch: d relu / dx = 0 at x = 0 (SymPy's Heaviside(0) would give 1/2)
    assert grad(relu(x), x).subs(x, 0) == 0
    assert grad(sp.Max(0, x), x).subs(x, 0) == 0
    assert grad(sp.Min(0, x), x).subs(x, 0) == 0
    assert grad(sp.Abs(x), x).subs(x, 0) == 0  # torch.abs
    # a tie between two variables shares the gradient, as torch.maximum does
    gx, gy = grad(sp.Max(x, y), [x, y])
    assert (gx.subs({x: 1, y: 1}), gy.subs({x: 1, y: 1})) == (sp.S.Half, sp.S.Half)
    f = lambdify(grad(relu(x), x), [x])
    assert f(np.array([-1.0, 0.0, 2.0])).tolist() == [0.0, 0.0, 1.0]


# ---------------------------------------------------------------------------------------------
# The whole complex plane: every analytic rule equals SymPy's derivative, branch cuts included
# ---------------------------------------------------------------------------------------------

zc, wc = sp.symbols("zc wc")  # no assumptions: complex
_R = sp.Rational
# exact points: on the real axis (on and off every branch cut of the inverse functions: (-inf, -1),
# (-1, 0), (0, 1), (1, inf)), on the imaginary axis (the cuts of asinh/atan), just above and
# below a cut, and in general position
COMPLEX_POINTS = [
    *(_R(v) for v in (-3, "-3/2", -1, "-1/2", "-1/10", "1/10", "1/2", 1, "3/2", 3)),
    *(sp.I * _R(v) for v in (-3, "-3/2", "-1/2", "1/2", "3/2", 3)),
    _R(-3, 2) + sp.I / 100,
    _R(-3, 2) - sp.I / 100,
    _R(3, 10) + _R(7, 10) * sp.I,
    _R(-6, 5) - _R(2, 5) * sp.I,
    2 - 3 * sp.I,
]
# functions that are not analytic: their rules give the real derivative (a.e.), checked above
REAL_ONLY = {sp.Abs, sp.sign, sp.Heaviside, sp.floor, sp.ceiling, sp.Max, sp.Min, sp.atan2, sp.Mod}
REAL_ONLY |= {sp.Piecewise, ExprCondPair, sp.Add, sp.Mul}  # no branch to choose


def _complex_nodes() -> list[sp.Expr]:
    nodes = [sp.Pow(zc, wc, evaluate=False), sp.log(zc, wc, evaluate=False)]
    nodes += [sp.Pow(zc, e, evaluate=False) for e in (_R(1, 2), _R(-3, 2), _R(5, 3), -1, 3)]
    nodes += [sp.Pow(zc, sp.Float(0.5), evaluate=False)]
    for head in registered_heads():
        if head not in REAL_ONLY and head is not sp.Pow and head is not sp.log:
            nodes.append(head(zc, evaluate=False))
    nodes.append(sp.log(zc, evaluate=False))
    return nodes


def _n30(e: sp.Expr) -> complex | None:
    try:
        v = complex(sp.N(e, 30))
    except (TypeError, ValueError, ZeroDivisionError):
        return None  # a pole or an undefined value: nothing to compare
    return v if np.isfinite(v) else None


def test_every_analytic_head_is_in_the_complex_plane_audit() -> None:
    audited = {type(n) for n in _complex_nodes()}
    assert set(registered_heads()) <= audited | REAL_ONLY


@pytest.mark.parametrize("node", _complex_nodes(), ids=str)
def test_rules_equal_sympy_diff_on_the_whole_complex_plane(node: sp.Expr) -> None:
    # The referee is sympy.diff of the same head (SymPy's own fdiff, not symgrad's table),
    # evaluated by mpmath at 30 digits: the formulas must choose the same branch everywhere.
    from symgrad.rules import local_partials

    compared = 0
    for arg, mine in zip(node.args, local_partials(node), strict=True):
        if not arg.is_Symbol:
            continue
        # an unevaluated two-argument log is log(z)/log(w) (SymPy's fdiff ignores the base)
        same = sp.log(zc) / sp.log(wc) if isinstance(node, sp.log) and len(node.args) == 2 else node
        ref = sp.diff(same, arg)
        for p in COMPLEX_POINTS:
            for q in [_R(1, 3), -2 + sp.I] if wc in node.free_symbols else [None]:
                subs = {zc: p} if q is None else {zc: p, wc: q}
                b = _n30(ref.subs(subs))
                if b is None:
                    continue
                a = _n30(mine.subs(subs))
                assert a is not None and abs(a - b) <= 1e-25 * max(1.0, abs(b)), (subs, mine, ref)
                compared += 1
    assert compared >= 10


def test_acosh_slope_on_its_branch_cut_is_negative() -> None:
    # the reproducer: at x = -2, d acosh / dx = 1/(sqrt(-3) sqrt(-1)) = -1/sqrt(3)
    t = sp.Symbol("t")
    g = grad(sp.acosh(t), t)
    assert abs(complex(g.subs(t, -2).evalf(30)) - (-1 / np.sqrt(3))) < 1e-15
    assert sp.simplify(g - sp.diff(sp.acosh(t), t)) == 0


def test_mod_in_its_divisor_matches_central_differences() -> None:
    # d Mod(p, q)/dq = -floor(p/q) (Python's and NumPy's sign convention, as torch.remainder);
    # the rows above cannot sample it: its jumps are where p/q is an integer
    rng = np.random.default_rng(7)
    f = lambdify(grad(sp.Mod(x, y), [x, y]), [x, y])
    h = 1e-7
    checked = 0
    for p, q in rng.uniform(-9, 9, size=(200, 2)):
        r = p / q
        if abs(q) < 0.5 or abs(r - round(r)) < 1e-3:
            continue  # away from the jumps and from q = 0
        dq = (np.mod(p, q + h) - np.mod(p, q - h)) / (2 * h)
        dp = (np.mod(p + h, q) - np.mod(p - h, q)) / (2 * h)
        np.testing.assert_allclose(f(p, q), (dp, dq), rtol=1e-6, atol=1e-6)
        checked += 1
    assert checked > 150
