"""Where the C entry of compiled matrix programs should leave products to BLAS (measured).

:mod:`symgrad.matrix.native` runs a product with at most ``PRODUCT_C_UP_TO`` multiply-adds as a
C loop, and a weighted Gram product ``X^T diag(s) X`` with at most ``GRAM_C_UP_TO`` in C;
larger ones call NumPy's ``matmul`` (BLAS) from C. This builds each program twice, once with
every product in C and once with every product through BLAS, and times both over sizes
(interleaved, CPU-time medians): the thresholds sit where the two cross. Programs: ``A B``
(n x n times n x n), ``A w`` (n x n times n x 1) and the logistic-regression Hessian
(``X^T diag(d) X`` with ``d`` from ``w``). Run by hand:

    PYTHONPATH=. python benchmarks/bench_native_thresholds.py [--threads 1]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import threads

THREADS = threads.pin_from_argv()  # before NumPy is imported

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402
import timing  # noqa: E402

from symgrad.matrix import expr as mx  # noqa: E402
from symgrad.matrix import native  # noqa: E402
from symgrad.matrix.codegen import compile_matrix  # noqa: E402
from symgrad.matrix.hessian import hessian  # noqa: E402
from symgrad.matrix.parse import parse  # noqa: E402

SIZES = (4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 64, 80, 96, 128)


def _programs():
    n = sp.Symbol("n", integer=True, positive=True)
    A, B, w = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("B", n, n), sp.MatrixSymbol("w", n, 1)
    f = parse("sum(log(exp(-y.*(X*w)) + vector(1)))", {"X": ("n", "n"), "w": ("n",), "y": ("n",)})
    s = {x.name: x for x in mx.value_nodes([f]) if isinstance(x, sp.MatrixSymbol)}
    return {
        "A @ B (n^3 multiply-adds)": (mx.matmul(A, B), [A, B], ("A", "B")),
        "A @ w (n^2)": (mx.matmul(A, w), [A, w], ("A", "w")),
        "logistic Hessian (gram n^3)": (hessian(f, s["w"]), [s["w"], s["X"], s["y"]], "wXy"),
    }


def _data(names, n, rng):
    shapes = {"A": (n, n), "B": (n, n), "w": (n, 1), "X": (n, n), "y": (n, 1)}
    out = [rng.normal(size=shapes[k]) for k in names]
    if names == "wXy":
        out[2] = np.sign(out[2]) + (out[2] == 0)
    return out


def _built(outputs, args, up_to):
    native.PRODUCT_C_UP_TO = native.GRAM_C_UP_TO = native.MATVEC_C_UP_TO = up_to
    f = compile_matrix(outputs, args)
    assert native.prepare(f), "needs a C compiler and Python's headers"
    return f


def main():
    saved = native.PRODUCT_C_UP_TO, native.MATVEC_C_UP_TO, native.GRAM_C_UP_TO
    print(
        f"threads per library: {THREADS}; PRODUCT_C_UP_TO, MATVEC_C_UP_TO, GRAM_C_UP_TO = {saved}"
    )
    rng = np.random.default_rng(0)
    for name, (outputs, args, names) in _programs().items():
        in_c, in_blas = _built(outputs, args, 1 << 60), _built(outputs, args, 0)
        print(f"\n{name}: CPU medians, us")
        for n in SIZES:
            vals = _data(names, n, rng)
            np.testing.assert_allclose(in_c(*vals), in_blas(*vals), rtol=1e-10, atol=1e-12)
            runs = {
                "C": lambda f=in_c, v=vals: f(*v),
                "BLAS": lambda f=in_blas, v=vals: f(*v),
            }
            times = timing.interleave(runs, 300, sample=0.002)
            c, b = (1e6 * timing.median(times, k) for k in ("C", "BLAS"))
            print(f"  n={n:3d}  C {c:7.2f}  BLAS {b:7.2f}  C/BLAS {c / b:5.2f}", flush=True)
    native.PRODUCT_C_UP_TO, native.MATVEC_C_UP_TO, native.GRAM_C_UP_TO = saved


if __name__ == "__main__":
    main()
