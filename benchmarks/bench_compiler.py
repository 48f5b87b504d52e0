"""The compiler's speed targets, each with its peers in the same run (medians, ratios).

Run by hand (not part of the test suite)::

    python benchmarks/bench_compiler.py            # writes benchmarks/bench_compiler_results.md
    python benchmarks/bench_compiler.py --reps 5   # quicker

1. Per call on Python floats, value + gradient: the lecture's expression
   ``L = (a*b + c)*f`` and the lecture's neuron ``tanh(x1*w1 + x2*w2 + b)``. symgrad's
   ``value_and_grad`` against ``sympy.lambdify(cse=True, modules="math")`` of the same formulas
   (symgrad's gradient), both as SymPy's flat list ``[value, *gradient]`` (its fastest form)
   and as the same nesting as symgrad's ``(value, [gradient])``, and a hand-written ``math``
   function. symgrad runs by default (the gradient as a NumPy array) and with
   ``float_outputs="tuple"`` (a tuple of floats, as SymPy returns lists), each on the NumPy
   target (the Python-float path) and, when a C compiler is present, with ``backend="c"``
   (its builtin entry for Python floats, ``symgrad/codegen/c_float.py``).
2. micrograd's demo step (2-16-16-1 ReLU MLP, hinge loss, batch 100) with the L2 term
   ``alpha*sum(p**2)`` inside the differentiated loss, as ``benchmarks/peers.py`` gives the peers:
   symgrad's NumPy target (``reduce="mean"``) against hand-written NumPy backprop and JAX jit.

Contenders alternate within every repetition; the machine may be shared, so compare ratios.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import timeit
from pathlib import Path

import numpy as np
import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import peers
from benchmarks import workloads as wl
from symgrad import grad, value_and_grad
from symgrad.codegen.c import c_available

RESULTS = Path(__file__).with_name("bench_compiler_results.md")


def interleave(contenders: dict, reps: int, sample: float = 0.05) -> dict[str, float]:
    """Median seconds per call of each contender, alternating within every repetition."""
    numbers = {}
    for name, fn in contenders.items():
        fn()
        t = timeit.Timer(fn).timeit(10) / 10
        numbers[name] = max(1, min(200_000, int(sample / max(t, 1e-9))))
    times: dict[str, list[float]] = {n: [] for n in contenders}
    for _ in range(reps):
        for name, fn in contenders.items():
            times[name].append(timeit.Timer(fn).timeit(numbers[name]) / numbers[name])
    return {n: statistics.median(ts) for n, ts in times.items()}


def per_call(reps: int) -> list[tuple[str, dict[str, float]]]:
    a, b, c, f = sp.symbols("a b c f")
    lecture = ((a * b + c) * f, [a, b, c, f], (2.0, -3.0, 10.0, -2.0))
    syms = list(sp.symbols("x1 w1 x2 w2 b"))
    x1, w1, x2, w2, bb = syms
    neuron = (sp.tanh(x1 * w1 + x2 * w2 + bb), syms, peers.NEURON_AT)
    out = []
    for label, (expr, wrt, at) in (("lecture", lecture), ("neuron", neuron)):
        ours = value_and_grad(expr, wrt, wrt)
        tupled = value_and_grad(expr, wrt, wrt, float_outputs="tuple")
        g = grad(expr, wrt)
        flat = sp.lambdify(wrt, [expr, *g], cse=True, modules="math")
        nested = sp.lambdify(wrt, [expr, g], cse=True, modules="math")
        # the same numbers first
        v, gr = ours(*at)
        ref = flat(*at)
        assert abs(v - ref[0]) <= 1e-12 * abs(ref[0]) + 1e-300
        assert np.allclose(gr, ref[1:], rtol=1e-12, atol=0)
        contenders = {
            "symgrad (float path)": lambda ours=ours, at=at: ours(*at),
            'symgrad, float_outputs="tuple"': lambda tupled=tupled, at=at: tupled(*at),
        }
        if c_available():  # the C target's builtin entry for Python floats (codegen/c_float.py)
            native = value_and_grad(expr, wrt, wrt, backend="c")
            native_t = value_and_grad(expr, wrt, wrt, backend="c", float_outputs="tuple")
            assert np.allclose(native(*at)[1], ref[1:], rtol=1e-12, atol=0)
            assert np.allclose(native_t(*at)[1], ref[1:], rtol=1e-12, atol=0)
            c_tuple = 'symgrad backend="c", float_outputs="tuple"'
            contenders['symgrad backend="c"'] = lambda f=native, at=at: f(*at)
            contenders[c_tuple] = lambda f=native_t, at=at: f(*at)
        contenders |= {
            "sympy cse math, flat": lambda flat=flat, at=at: flat(*at),
            "sympy cse math, nested": lambda nested=nested, at=at: nested(*at),
        }
        if label == "neuron":
            contenders["hand (math)"] = peers.neuron_hand()[1]
        out.append((label, interleave(contenders, reps)))
    return out


def demo(reps: int) -> dict[str, float]:
    sizes = [2, 16, 16, 1]
    X, y = wl.moons(100)
    p = wl.init_params(337)
    e, params, ins = wl.mlp_loss(sizes, "relu", "hinge")
    total = e + sp.Float(peers.ALPHA) * sp.Add(*[q**2 for q in params])  # L2 inside the loss
    t0 = time.perf_counter()
    f = value_and_grad(total, params, [*ins, params], reduce="mean")
    setup = time.perf_counter() - t0
    x0, x1 = np.ascontiguousarray(X[:, 0]), np.ascontiguousarray(X[:, 1])

    def ours():
        value, g = f(x0, x1, y, p)
        return p - peers.LR * g, value

    contenders = {"symgrad numpy": ours}
    contenders["hand numpy"] = peers.mlp_hand(sizes, X, y, p, "relu", "hinge")[1]
    if peers.have("jax"):
        contenders["jax jit"] = peers.mlp_jax(sizes, X, y, p, "relu", "hinge")[1]
    ref = contenders["hand numpy"]()
    got = ours()
    assert np.allclose(got[0], ref[0], rtol=1e-9, atol=1e-12), "symgrad and hand NumPy disagree"
    times = interleave(contenders, reps)
    times["(symgrad setup, s)"] = setup
    return times


def _fmt(s: float) -> str:
    return f"{s * 1e9:.0f} ns" if s < 1e-6 else f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s:.3f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    lines = [
        "# Compiler speed targets (benchmarks/bench_compiler.py)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        f"Python {platform.python_version()}, NumPy {np.__version__}, SymPy {sp.__version__}; "
        f"{args.reps} alternating repetitions, medians. The machine was shared with other jobs: "
        "compare the ratios.",
        "",
    ]
    for label, times in per_call(args.reps):
        base = times["symgrad (float path)"]
        lines += [f"## Per call on Python floats: {label}, value + gradient", ""]
        lines += ["| contender | median per call | contender / symgrad |", "| --- | --- | --- |"]
        lines += [f"| {n} | {_fmt(t)} | {t / base:.2f} |" for n, t in times.items()]
        lines.append("")
    times = demo(args.reps)
    hand = times["hand numpy"]
    lines += ["## micrograd demo step, L2 inside the differentiated loss (batch 100)", ""]
    lines += ["| contender | median per step | contender / hand NumPy |", "| --- | --- | --- |"]
    lines += [
        f"| {n} | {_fmt(t)} | {t / hand:.2f} |" if not n.startswith("(") else f"| {n} | {t:.2f} | |"
        for n, t in times.items()
    ]
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        RESULTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
