"""The corpus differential test: random compositions of SymPy's function families, referee SymPy.

Expressions are drawn (seeded) from SymPy's own function families (elementary functions and
their inverses, the gamma family, zeta/polylog, Bessel and Airy functions, error functions and
integrals, LambertW, orthogonal polynomials, hypergeometric functions, Piecewise, Min/Max,
Abs/sign, floor/ceiling, Heaviside, atan2, Mod) and composed at random. For every expression,
symgrad's ``grad`` and ``hessian`` are compared with ``sympy.diff``, both evaluated by mpmath at
30 digits at random points: on the complex plane and on the branch cuts for the analytic family,
at the kinks (0, ties, integers, condition boundaries) for the piecewise family.

Each comparison is one of:

* ``pass``: equal to 1e-15 relative (or both have no finite value at the point);
* ``kink``: at a kink, where ``sympy.diff`` has no value or SymPy's ``Heaviside(0) = 1/2``,
  symgrad's value is the documented convention (docs/conventions.md), checked here as being the
  one-sided derivative from the left, from the right, or their mean;
* ``typed error``: symgrad raises a :class:`symgrad.errors.SymgradError`; split by whether
  ``sympy.diff`` has an answer there (an unevaluated ``Derivative`` is no answer);
* ``wrong``: anything else (a different number, an untyped exception). Zero are allowed.

Run ``python -m tests.corpus [N]`` for the table of a run of N expressions (default 2000).
"""

from __future__ import annotations

import gc
import json
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import sympy as sp

from symgrad import grad, hessian, sigmoid
from symgrad.errors import SymgradError

R = sp.Rational
Z = sp.symbols("z w")  # no assumptions: the analytic family lives on the complex plane
X = sp.symbols("x y", real=True)  # real: SymPy differentiates Abs as sign, Max via Heaviside

# ---------------------------------------------------------------------------------------------
# the function families
# ---------------------------------------------------------------------------------------------
ANALYTIC_UNARY: list[tuple[str, Callable[[sp.Expr], sp.Expr]]] = [
    (f.__name__, f)
    for f in (
        sp.sin,
        sp.cos,
        sp.tan,
        sp.cot,
        sp.sec,
        sp.csc,
        sp.asin,
        sp.acos,
        sp.atan,
        sp.acot,
        sp.asec,
        sp.acsc,
        sp.sinh,
        sp.cosh,
        sp.tanh,
        sp.coth,
        sp.sech,
        sp.csch,
        sp.asinh,
        sp.acosh,
        sp.atanh,
        sp.acoth,
        sp.asech,
        sp.acsch,
        sp.exp,
        sp.log,
        sp.sqrt,
        sp.erf,
        sp.erfc,
        sp.erfi,
        sp.gamma,
        sp.loggamma,
        sp.digamma,
        sp.LambertW,
        sp.airyai,
        sp.airybi,
        sp.Ei,
        sp.li,
        sp.Si,
        sp.Ci,
        sp.Shi,
        sp.Chi,
        sp.fresnels,
        sp.fresnelc,
        sp.elliptic_k,
        sp.elliptic_e,
        sigmoid,
        sp.zeta,
    )
] + [
    ("cbrt", lambda u: u ** R(1, 3)),
    ("pow3/2", lambda u: u ** R(3, 2)),
    ("pow-1/2", lambda u: u ** R(-1, 2)),
    ("pow0.7", lambda u: u ** sp.Float(0.7)),
    ("trigamma", lambda u: sp.polygamma(1, u)),
    ("polygamma2", lambda u: sp.polygamma(2, u)),
    ("hurwitz", lambda u: sp.zeta(2, u)),
    ("polylog2", lambda u: sp.polylog(2, u)),
    ("polylog3", lambda u: sp.polylog(3, u)),
    ("LambertW-1", lambda u: sp.LambertW(u, -1)),
    ("besselj0", lambda u: sp.besselj(0, u)),
    ("besselj1", lambda u: sp.besselj(1, u)),
    ("bessely1", lambda u: sp.bessely(1, u)),
    ("besseli2", lambda u: sp.besseli(2, u)),
    ("besselk0", lambda u: sp.besselk(0, u)),
    ("jn1", lambda u: sp.jn(1, u)),
    ("expint2", lambda u: sp.expint(2, u)),
    ("lowergamma2", lambda u: sp.lowergamma(2, u)),
    ("uppergamma3", lambda u: sp.uppergamma(3, u)),
    ("legendre3", lambda u: sp.legendre(3, u)),
    ("chebyshevt4", lambda u: sp.chebyshevt(4, u)),
    ("hermite3", lambda u: sp.hermite(3, u)),
    ("laguerre2", lambda u: sp.laguerre(2, u)),
    ("assoc_legendre21", lambda u: sp.assoc_legendre(2, 1, u)),
    ("hyper2F1", lambda u: sp.hyper([1, 2], [3], u)),
    ("beta2", lambda u: sp.beta(u, 2)),
    ("erf2", lambda u: sp.erf2(u, 1)),
]
ANALYTIC_BINARY: list[tuple[str, Callable[[sp.Expr, sp.Expr], sp.Expr]]] = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("pow", lambda a, b: a**b),
    ("beta", sp.beta),
    ("lowergamma", sp.lowergamma),
    ("uppergamma", sp.uppergamma),
    ("besselj", sp.besselj),  # d/d order: SymPy has no derivative (typed error)
    ("zeta", sp.zeta),  # d/ds: SymPy has none
    ("polylog", sp.polylog),
    ("elliptic_f", sp.elliptic_f),
]
REAL_UNARY: list[tuple[str, Callable[[sp.Expr], sp.Expr]]] = [
    ("Abs", sp.Abs),
    ("sign", sp.sign),
    ("floor", sp.floor),
    ("ceiling", sp.ceiling),
    ("Heaviside", sp.Heaviside),
    ("relu", lambda u: sp.Max(0, u)),
    ("Min0", lambda u: sp.Min(0, u)),
    ("Mod", lambda u: sp.Mod(u, 2)),  # SymPy has no derivative (typed error)
    ("sin", sp.sin),
    ("exp", sp.exp),
    ("tanh", sp.tanh),
    ("atan", sp.atan),
    ("square", lambda u: u**2),
    ("erf", sp.erf),
]
REAL_BINARY: list[tuple[str, Callable[[sp.Expr, sp.Expr], sp.Expr]]] = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("Max", sp.Max),
    ("Min", sp.Min),
    ("atan2", sp.atan2),
    ("pw_sign", lambda a, b: sp.Piecewise((a, b > 0), (b**2, True))),
    ("pw_less", lambda a, b: sp.Piecewise((a * b, a < b), (a + b, True))),
]
NONSMOOTH = (
    sp.Abs, sp.sign, sp.floor, sp.ceiling, sp.Heaviside, sp.Max, sp.Min, sp.Piecewise, sp.Mod,
    sp.re, sp.atan2,
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    family: str  # "analytic" or "real"
    expr: sp.Expr
    syms: tuple[sp.Symbol, ...]
    points: tuple[dict, ...]


def _random_plan(rng: random.Random, family: str, depth: int):
    # the tree of choices, drawn before anything is built: a construction that is cut off (see
    # corpus) leaves the random stream, and so every other expression, unchanged
    syms = Z if family == "analytic" else X
    unary = ANALYTIC_UNARY if family == "analytic" else REAL_UNARY
    binary = ANALYTIC_BINARY if family == "analytic" else REAL_BINARY
    if depth == 0 or rng.random() < 0.15:
        if rng.random() < 0.8:
            return rng.choice(syms)
        return R(rng.randint(-5, 5), rng.randint(1, 4))
    if rng.random() < 0.6:
        return (rng.choice(unary)[1], _random_plan(rng, family, depth - 1))
    f = rng.choice(binary)[1]
    return (f, _random_plan(rng, family, depth - 1), _random_plan(rng, family, depth - 1))


def _build(plan) -> sp.Expr:
    if not isinstance(plan, tuple):
        return plan
    f, *args = plan
    built = [_build(a) for a in args]
    # a function of constants only is a constant (and SymPy may spend seconds evaluating it)
    return f(*built) if any(a.free_symbols for a in built) else built[0]


def _analytic_point(rng: random.Random) -> sp.Expr:
    # exact points: generic complex, on the real axis (every inverse function's cut lies there),
    # on the imaginary axis (asinh, atan, ...), and the branch points themselves
    kind = rng.random()
    q = lambda: R(rng.randint(-24, 24), 8)  # noqa: E731
    if kind < 0.35:
        return q() + q() * sp.I
    if kind < 0.7:
        return q()
    if kind < 0.85:
        return q() * sp.I
    return rng.choice([0, 1, -1, 2, -2, sp.I, -sp.I, R(1, 2), R(-1, 2)])


def _real_point(rng: random.Random, syms: tuple[sp.Symbol, ...]) -> dict:
    # kinks: 0, ties x = y and x = -y, integers (floor, ceiling, Mod), besides generic points
    q = lambda: R(rng.randint(-24, 24), 8)  # noqa: E731
    x, y = q(), q()
    kind = rng.random()
    if kind < 0.15:
        x = sp.S.Zero
    elif kind < 0.3:
        y = x
    elif kind < 0.4:
        y = -x
    elif kind < 0.5:
        x = sp.Integer(rng.randint(-3, 3))
    elif kind < 0.6:
        y = sp.S.Zero
    return dict(zip(syms, (x, y), strict=True))


def corpus(n: int, seed: int = 14, points: int = 2) -> list[Case]:
    """``n`` seeded random expressions, half analytic (complex points), half piecewise (real).

    An expression whose construction takes SymPy more than 5 s (its automatic evaluation of
    some compositions runs for minutes) or raises inside SymPy is left out, the next one drawn.
    """
    rng = random.Random(seed)
    cases = []
    while len(cases) < n:
        family = "analytic" if len(cases) % 2 == 0 else "real"
        plan = _random_plan(rng, family, rng.randint(1, 3))
        if family == "analytic":
            pts = [{s: _analytic_point(rng) for s in Z} for _ in range(points)]
        else:
            pts = [_real_point(rng, X) for _ in range(points)]
        try:
            with _time_limit(time.process_time() + 5.0):
                expr = _build(plan)
        except (_Timeout, Exception):  # SymPy's own evaluation failed or ran away: next one
            continue
        syms = tuple(s for s in (Z if family == "analytic" else X) if s in expr.free_symbols)
        if not syms:
            continue
        pts = [{s: v for s, v in p.items() if s in syms} for p in pts]
        cases.append(Case(family, expr, syms, tuple(pts)))
    return cases


# ---------------------------------------------------------------------------------------------
# the referee
# ---------------------------------------------------------------------------------------------
class _Timeout(BaseException):
    """The case's CPU budget ran out (a BaseException: SymPy's and mpmath's ``except Exception``
    must not swallow it)."""


class _RefereeFailed(Exception):
    """SymPy or mpmath could not evaluate an expression (neither a pass nor a failure)."""


@contextmanager
def _time_limit(deadline: float):
    # until the case's deadline in CPU seconds (time.process_time(), so a loaded machine gives
    # the same verdicts); SymPy and mpmath cannot be cancelled otherwise (special functions at
    # complex points can take minutes at 30 digits)
    def handler(signum, frame):
        # not inside a garbage-collector callback (JAX registers one): an exception there is
        # unraisable (printed and lost, a failure under pytest); the timer fires again 0.5 s on
        callbacks = {getattr(cb, "__code__", None) for cb in gc.callbacks}
        f = frame
        while f is not None:
            if f.f_code in callbacks:
                return
            f = f.f_back
        raise _Timeout

    seconds = deadline - time.process_time()
    if seconds <= 0:
        raise _Timeout
    old = signal.signal(signal.SIGPROF, handler)
    signal.setitimer(signal.ITIMER_PROF, seconds, 0.5)  # re-fires if swallowed anyway
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


UNDEFINED = "undefined"


def _value(e: sp.Expr, at: dict) -> complex | str | None:
    """``e`` at ``at`` by mpmath at 30 digits: a complex, UNDEFINED (no finite value), or None
    (not a number: an unevaluated Derivative or a function mpmath cannot evaluate)."""
    try:
        v = sp.N(e.xreplace(at), 30)
    except (ValueError, TypeError, ZeroDivisionError, ArithmeticError):
        return UNDEFINED
    except _Timeout:
        raise
    except Exception as exc:  # SymPy itself fails (RecursionError in its evaluation, ...)
        raise _RefereeFailed(f"{type(exc).__name__} evaluating {sp.sstr(e)[:60]}") from exc
    if v.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        return UNDEFINED
    if not v.is_number or v.has(sp.Derivative, sp.Subs):
        return None
    try:
        c = complex(v)
    except (TypeError, ValueError):
        return None
    if c != c or abs(c) == float("inf"):
        return UNDEFINED
    return c


def _close(a: complex, b: complex, tol: float = 1e-15) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


def _almost_everywhere(d: sp.Expr) -> sp.Expr:
    # sympy.diff's derivative of step functions holds DiracDelta (0 off the jumps, no value on
    # them: the kink check handles those points) and unevaluated Derivative(floor(u)) (0 a.e.)
    def step_derivative(e: sp.Basic) -> bool:
        return isinstance(e, (sp.Derivative, sp.Subs)) and any(
            e.has(h) for h in (sp.floor, sp.ceiling, sp.sign, sp.Heaviside)
        )

    d = d.replace(step_derivative, lambda *a: sp.S.Zero)
    return d.replace(lambda e: isinstance(e, sp.Subs) and e.expr == 0, lambda *a: sp.S.Zero)


def _delta_free(d: sp.Expr, at: dict) -> sp.Expr | None:
    # DiracDelta(u) -> 0 where u != 0; None where some u = 0 (no value: a kink)
    for delta in d.atoms(sp.DiracDelta):
        u = _value(delta.args[0], at)
        if u is None or u == UNDEFINED or abs(u) < 1e-25:
            return None
    return d.replace(sp.DiracDelta, lambda *a: sp.S.Zero)


def _reference(d: sp.Expr, at: dict) -> complex | str | None:
    try:
        clean = _delta_free(_almost_everywhere(d), at)
    except (_Timeout, _RefereeFailed):
        raise
    except Exception as exc:  # SymPy fails rebuilding its own formula (TypeError in sorting)
        raise _RefereeFailed(f"{type(exc).__name__} rewriting {sp.sstr(d)[:60]}") from exc
    return None if clean is None else _value(clean, at)


def _limits(d: sp.Expr, at: dict) -> list[complex]:
    # the derivative formula just beside the point, along every axis and diagonal: the values
    # of the smooth pieces that meet there
    h = R(1, 10**12)
    syms = list(at)
    directions = [{s: 1} for s in syms]
    if len(syms) == 2:
        directions += [{syms[0]: 1, syms[1]: 1}, {syms[0]: 1, syms[1]: -1}]
    out = []
    for direction in directions:
        for sign in (-1, 1):
            shifted = {s: at[s] + sign * h * direction.get(s, 0) for s in syms}
            v = _reference(d, shifted)
            if isinstance(v, complex):
                out.append(v)
    return out


def _quotients(f: sp.Expr, at: dict, s: sp.Symbol) -> list[complex]:
    # one-sided difference quotients of the function itself along s, at 45 digits: the second
    # referee where SymPy's formula has no value (a product of DiracDeltas at 0, Heaviside(0))
    h = R(1, 10**15)

    def val(p):
        try:
            v = complex(sp.N(f.xreplace(p), 45))
        except (TypeError, ValueError, ZeroDivisionError, ArithmeticError):
            return None
        except _Timeout:
            raise
        except Exception as exc:  # SymPy itself fails
            raise _RefereeFailed(f"{type(exc).__name__} evaluating {sp.sstr(f)[:60]}") from exc
        return v if v == v and abs(v) != float("inf") else None

    mid, left, right = val(at), val({**at, s: at[s] - h}), val({**at, s: at[s] + h})
    if mid is None or left is None or right is None:
        return []
    return [complex((mid - left) / h), complex((right - mid) / h)]


def classify(
    mine: sp.Expr, d: sp.Expr, f: sp.Expr, at: dict, s: sp.Symbol, nonsmooth: bool
) -> tuple[str, str]:
    """``(category, detail)`` for one derivative ``d = sympy.diff(f, s)`` at one point."""
    ref = _reference(d, at)
    ours = _value(mine, at)
    if ours is None:
        if ref is None:  # the same function mpmath cannot evaluate here on both sides
            raise _RefereeFailed(f"neither side evaluates: {sp.sstr(mine)[:60]}")
        return "wrong", f"symgrad's result does not evaluate: {sp.sstr(mine)[:80]}"
    if isinstance(ref, complex) and isinstance(ours, complex) and _close(ours, ref):
        return "pass", ""
    if ref == UNDEFINED and ours == UNDEFINED:
        return "pass", "no finite value on either side"
    if nonsmooth and ref is None:
        # SymPy's formula has a DiracDelta at 0 here (a tie or a step at the point): with the
        # impulse dropped and Heaviside(0) = 1/2 (SymPy's value, PyTorch's tie weight) or 0 (the
        # weight of a variable tied with a constant), it is the chain rule with symgrad's weights
        impulse_free = _almost_everywhere(d).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
        for h0 in (sp.S.Half, sp.S.Zero):
            weighted = impulse_free.replace(sp.Heaviside, lambda u, *a, h=h0: sp.Heaviside(u, h))
            v = _value(weighted, at)
            if isinstance(v, complex) and isinstance(ours, complex) and _close(ours, v, 1e-9):
                return "kink", "SymPy's formula with symgrad's weights"
        if ours == UNDEFINED and _value(f, at) in (UNDEFINED, None):
            return "pass", "the function itself has no value here"
    sides: list[complex] = []
    if nonsmooth and isinstance(ours, complex):
        quotients = _quotients(_almost_everywhere(f), at, s)
        differentiable = len(quotients) == 2 and _close(*quotients, 1e-9)
        if ref is None and differentiable and _close(ours, quotients[1], 1e-9):
            # SymPy's formula has no value here, but the function is differentiable
            return "pass", "difference quotients"
        # at a kink: the convention is the derivative of one of the pieces that meet there or
        # the mean of two (Max ties, Abs and sign at 0, relu at 0, floor at integers)
        sides = _limits(d, at) + quotients
        means = [(a + b) / 2 for i, a in enumerate(sides) for b in sides[i + 1 :]]
        if any(_close(ours, v, 1e-9) for v in sides + means):
            return "kink", ""
        # where the pieces' derivatives disagree, PyTorch's tie weights (1/2) compose in higher
        # derivatives (d2/dx2 Min(x, c)**2 at the tie is 2 * (1/2)**2): a convex combination of
        # the pieces, so between them (difference quotients across a jump are left out)
        finite = [v for v in sides if abs(v) < 1e8]
        if finite and not all(_close(v, finite[0], 1e-9) for v in finite):
            tol = 1e-9 * max(1.0, *(abs(v) for v in finite))
            re_ok = (
                min(v.real for v in finite) - tol <= ours.real <= max(v.real for v in finite) + tol
            )
            im_ok = (
                min(v.imag for v in finite) - tol <= ours.imag <= max(v.imag for v in finite) + tol
            )
            if re_ok and im_ok:
                return "kink", "between the pieces"
    where = f"d/d{s} at {at}: symgrad {ours}, sympy.diff {ref}, pieces {sides}"
    return "wrong", where


def run_case(case: Case, budget: float = 20.0) -> list[tuple[str, str]]:
    """Every comparison of one expression: each gradient entry and each Hessian entry.

    The referee (``sympy.diff`` and the evaluations) has ``budget`` CPU seconds for the whole
    case; comparisons left when it runs out are counted as ``referee timeout`` (neither passed
    nor failed). symgrad's gradient and Hessian get ``budget`` CPU seconds each, whatever the
    referee spent: running out is a ``symgrad timeout``.
    """
    timeout = time.process_time() + budget
    e, syms = case.expr, list(case.syms)
    nonsmooth = case.family == "real" or e.has(*NONSMOOTH)
    try:
        with _time_limit(timeout):
            # SymPy has no derivative of Mod; its definition p - q floor(p/q) has one (a.e.)
            ref_e = e.replace(sp.Mod, lambda p, q: p - q * sp.floor(p / q))
            refs1 = [sp.diff(ref_e, s) for s in syms]
            # SymPy's diff of its own nan is 0: a first derivative with no value has no second
            refs2 = [[sp.nan if r.has(sp.nan) else sp.diff(r, t) for t in syms] for r in refs1]
    except _Timeout:
        return [("referee timeout", "sympy.diff")]
    except Exception as exc:  # SymPy's own diff fails (SingularityFunction, ...): no answer
        refs1 = refs2 = None
        ref_error = exc
    results: list[tuple[str, str]] = []
    for order in (1, 2):
        try:
            # symgrad's own budget per order: what the referee spent before is not charged to it
            with _time_limit(time.process_time() + budget):
                if order == 1:
                    mine = [grad(e, syms)]
                else:
                    h = hessian(e, syms)
                    mine = [[h[i, j] for j in range(len(syms))] for i in range(len(syms))]
        except _Timeout:
            results.append(("symgrad timeout", f"order {order}"))
            continue
        except SymgradError as exc:
            has = refs1 is not None and _sympy_has_answer(refs1 if order == 1 else refs2)
            results.append(
                ("typed error (SymPy has an answer)" if has else "typed error", str(exc)[:120])
            )
            continue
        except Exception as exc:  # untyped: a bug
            results.append(("wrong", f"untyped {type(exc).__name__}: {exc}"[:160]))
            continue
        if refs1 is None:
            results.append(("wrong", f"symgrad answers where sympy.diff raises {ref_error!r}"))
            continue
        pairs = (
            [(m, r, ref_e, s) for m, r, s in zip(mine[0], refs1, syms, strict=True)]
            if order == 1
            else [
                (mine[i][j], refs2[i][j], refs1[i], syms[j])
                for i in range(len(syms))
                for j in range(len(syms))
            ]
        )
        for at in case.points:
            for m, r, f, s in pairs:
                try:
                    with _time_limit(timeout):
                        results.append(classify(m, r, f, at, s, nonsmooth))
                except _Timeout:
                    results.append(("referee timeout", "evaluation"))
                except _RefereeFailed as exc:
                    results.append(("referee failed", str(exc)))
    return results


def _sympy_has_answer(refs) -> bool:
    flat = [r for row in refs for r in (row if isinstance(row, list) else [row])]
    return not any(r.has(sp.Derivative, sp.Subs) for r in flat)


def worst(results: list[tuple[str, str]]) -> str:
    order = [
        "wrong",
        "symgrad timeout",
        "typed error (SymPy has an answer)",
        "typed error",
        "referee timeout",
        "referee failed",
        "kink",
        "pass",
    ]
    cats = {c for c, _ in results}
    return next(c for c in order if c in cats)


def table(
    n: int,
    seed: int = 14,
    points: int = 2,
    out=sys.stdout,
    progress: bool = True,
    budget: float = 20.0,
    shard: tuple[int, int] = (0, 1),
    log=None,
) -> tuple[Counter, Counter]:
    """Run ``n`` expressions and print the counts per expression and per comparison."""
    start = time.perf_counter()
    per_expr: Counter = Counter()
    per_cmp: Counter = Counter()
    wrong = []
    i, count = shard  # expressions i, i + count, i + 2 count, ... (parallel runs)
    for k, case in enumerate(corpus(n, seed, points)):
        if k % count != i:
            continue
        t0 = time.perf_counter()
        results = run_case(case, budget)
        dt = time.perf_counter() - t0
        if progress and (k % 50 == 0 or dt > 10):
            print(
                f"[{k}] {time.perf_counter() - start:.0f} s; {dt:.1f} s for {case.expr}",
                file=sys.stderr,
            )
        per_expr[worst(results)] += 1
        per_cmp.update(c for c, _ in results)
        if log is not None:  # one line per expression, for runs read while they go
            counts = dict(Counter(c for c, _ in results))
            print(json.dumps({"k": k, "worst": worst(results), "counts": counts}), file=log)
            log.flush()
        new = [(case.expr, d) for c, d in results if c == "wrong"]
        if progress and new:
            print(f"[{k}] WRONG {case.expr}: {new[0][1]}", file=sys.stderr)
        wrong += new
    elapsed = time.perf_counter() - start
    what = f"{n} expressions" + (f", shard {i}/{count}" if count > 1 else "")
    print(f"corpus: {what} (seed {seed}, {points} points each), {elapsed:.0f} s", file=out)
    print(f"{'category':<36}{'expressions':>12}{'comparisons':>13}", file=out)
    for cat in sorted(set(per_expr) | set(per_cmp)):
        print(f"{cat:<36}{per_expr[cat]:>12}{per_cmp[cat]:>13}", file=out)
    for expr, detail in wrong[:20]:
        print(f"WRONG {sp.sstr(expr)[:100]}: {detail}", file=out)
    return per_expr, per_cmp


if __name__ == "__main__":
    # python -m tests.corpus [N [i/k [log.jsonl [budget]]]]: N expressions (default 2000),
    # shard i of k, a JSON line per expression appended to log.jsonl, CPU seconds per case
    n_ = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    i_, k_ = map(int, sys.argv[2].split("/")) if len(sys.argv) > 2 else (0, 1)
    log_ = open(sys.argv[3], "a") if len(sys.argv) > 3 else None  # noqa: SIM115
    table(n_, shard=(i_, k_), budget=float(sys.argv[4]) if len(sys.argv) > 4 else 10.0, log=log_)
