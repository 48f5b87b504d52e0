"""The three Hessian problems of Laue, Mitterreiter & Giesen (NeurIPS 2018), evaluated.

Problems (all parsed from matrixcalculus.org text by ``symgrad.matrix.parse``):

* quadratic form ``x'*A*x`` (A: n x n), Hessian ``A + A'``;
* logistic regression ``sum(log(exp(-y.*(X*w)) + vector(1)))`` (X: n x n, labels +-1),
  Hessian ``X' diag(d) X``; its BLAS floor is ``(X * d).T @ X`` with ``d`` given;
* matrix factorisation ``norm2(T - U*V')^2`` w.r.t. U (T: n x n, U, V: n x k, k = 2),
  Hessian ``2 I (x) V'V`` (row-major vec), a dense (nk) x (nk) matrix.

For n in 10, 100, 1000, 3000 this times, in one process and interleaved, symgrad's compiled
closed-form Hessian, ``jax.jit(jax.hessian(f))`` and ``torch.func.hessian(f)`` (each checked
against symgrad's value once), and for logistic regression two BLAS floors with the weights
``d`` given: ``(X * d).T @ X`` (general product) and ``Z.T @ Z`` with ``Z = sqrt(d) X`` given
(``syrk``, which symgrad's code uses when every weight is >= 0), and a fairer third: hand-written
NumPy computing the same Hessian from ``w`` (the weights by hand, then ``(X * d).T @ X``; checked
against symgrad's). Floors print ``symgrad/this`` too. symgrad's function is timed as it runs
after its first ``NATIVE_AFTER`` calls: through its C entry (:mod:`symgrad.matrix.native`, built
before timing), which passes large calls on to NumPy. Run by hand:

    PYTHONPATH=. python benchmarks/bench_hessian.py [--sizes 10,100,1000,3000] [--threads 1]

Fast contenders are interleaved in random order every repetition (:mod:`timing`); medians of
CPU time (the steady measure on a shared machine) and wall time; a ratio is the median of the
per-repetition ratios. A contender slower than ``--budget``/4 seconds (default 20) in its first
run is timed once (JAX after its compiling first run), so n = 3000 stays short.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import threads

THREADS = threads.pin_from_argv()  # before NumPy / PyTorch / JAX are imported

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402
import timing  # noqa: E402

from symgrad import matrix as mx  # noqa: E402
from symgrad.matrix import native  # noqa: E402
from symgrad.matrix.parse import parse  # noqa: E402

K = 2  # rank of the factorisation

PROBLEMS = {
    "quadratic form": ("x'*A*x", {"A": ("n", "n"), "x": ("n",)}, "x"),
    "logistic regression": (
        "sum(log(exp(-y.*(X*w)) + vector(1)))",
        {"X": ("n", "n"), "w": ("n",), "y": ("n",)},
        "w",
    ),
    "matrix factorisation (U)": (
        "norm2(T - U*V')^2",
        {"T": ("n", "n"), "U": ("n", K), "V": ("n", K)},
        "U",
    ),
}


def symgrad_hessian(name):
    """(compiled Hessian, argument names) for one problem; derived once, any n."""
    text, shapes, wrt = PROBLEMS[name]
    f = parse(text, shapes)
    syms = {s.name: s for s in mx.expr.value_nodes([f]) if isinstance(s, sp.MatrixSymbol)}
    H = mx.hessian(f, syms[wrt])
    order = [wrt, *sorted(n for n in syms if n != wrt)]
    fn = mx.compile_matrix(H, [syms[n] for n in order])
    fn.native = native.prepare(fn)  # as after its first NATIVE_AFTER calls
    return fn, order


def data(name, n, rng):
    if name == "quadratic form":
        return {"x": rng.normal(size=(n, 1)), "A": rng.normal(size=(n, n))}
    if name == "logistic regression":
        return {
            "w": rng.normal(size=(n, 1)) / np.sqrt(n),
            "X": rng.normal(size=(n, n)),
            "y": rng.choice([-1.0, 1.0], size=(n, 1)),
        }
    return {
        "U": rng.normal(size=(n, K)),
        "T": rng.normal(size=(n, n)),
        "V": rng.normal(size=(n, K)),
    }


def jax_fn(name, vals):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    if name == "quadratic form":
        A = jnp.asarray(vals["A"])
        h = jax.jit(jax.hessian(lambda x: x @ A @ x))
        x = jnp.asarray(vals["x"].ravel())
        return lambda: h(x).block_until_ready()
    if name == "logistic regression":
        X, y = jnp.asarray(vals["X"]), jnp.asarray(vals["y"].ravel())
        h = jax.jit(jax.hessian(lambda w: jnp.sum(jnp.log1p(jnp.exp(-y * (X @ w))))))
        w = jnp.asarray(vals["w"].ravel())
        return lambda: h(w).block_until_ready()
    T, V = jnp.asarray(vals["T"]), jnp.asarray(vals["V"])
    h = jax.jit(jax.hessian(lambda u: jnp.sum((T - u.reshape(-1, K) @ V.T) ** 2)))
    u = jnp.asarray(vals["U"].ravel())
    return lambda: h(u).block_until_ready()


def torch_fn(name, vals):
    import torch
    from torch.func import hessian

    if THREADS:
        torch.set_num_threads(THREADS)
    t = {k: torch.from_numpy(v) for k, v in vals.items()}
    if name == "quadratic form":
        A, x = t["A"], t["x"].ravel()
        return lambda: hessian(lambda v: v @ A @ v)(x)
    if name == "logistic regression":
        X, y, w = t["X"], t["y"].ravel(), t["w"].ravel()
        return lambda: hessian(lambda v: torch.sum(torch.log1p(torch.exp(-y * (X @ v)))))(w)
    T, V, U = t["T"], t["V"], t["U"].ravel()
    return lambda: hessian(lambda u: torch.sum((T - u.reshape(-1, K) @ V.T) ** 2))(U)


def floor_fns(vals):
    """The floors of the logistic Hessian: two BLAS products with the weights ``d`` given
    (general and syrk), and hand-written NumPy computing the whole Hessian from ``w``."""
    X, y, w = vals["X"], vals["y"], vals["w"]
    s = 1 / (1 + np.exp(-y * (X @ w)))
    d = y * y * s * (1 - s)
    Z = np.sqrt(d) * X
    return {
        "floor (X*d).T@X": lambda: (X * d).T @ X,
        "floor Z.T@Z (syrk)": lambda: Z.T @ Z,
        "hand NumPy from w": lambda: hand_hessian(X, y, w),
    }


FLOORS = ("floor (X*d).T@X", "floor Z.T@Z (syrk)", "hand NumPy from w")


def hand_hessian(X, y, w):
    """The logistic Hessian as a NumPy user writes it: the weights from ``w``, one product.

    ``f = sum log(1 + exp(-y_i x_i^T w))`` has ``H = X^T diag(d) X`` with
    ``d = y^2 s (1 - s)``, ``s = sigmoid(y X w)`` (``y^2`` is 1 for labels +-1; kept so that
    this is the same function of ``y`` as symgrad's).
    """
    s = 1 / (1 + np.exp(-y * (X @ w)))
    d = y * y * s * (1 - s)
    return (X * d).T @ X


def _once(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def _time(contenders, first, reps, budget):
    """``(times, slow)``: :func:`timing.interleave` lists, a single run for slow contenders.

    ``first`` holds each contender's first (checked) run as ``(wall, cpu)``: for a contender
    slower than ``budget / 4`` it is the timing (JAX's first run compiles, so JAX runs again).
    """
    slow = {}
    for k, fn in contenders.items():
        wall, cpu = first[k]
        if wall > budget / 4:
            slow[k] = _once(fn)[:2] if k.startswith("jax") else (wall, cpu)
    fast = {k: fn for k, fn in contenders.items() if k not in slow}
    times = timing.interleave(fast, reps, sample=0.005, warmup=1)
    for k, (wall, cpu) in slow.items():
        times[k] = {"wall": [wall], "cpu": [cpu]}
    return times, slow


def _ratio(times, slow, a, b, clock):
    if a in slow or b in slow:
        return timing.median(times, a, clock) / timing.median(times, b, clock)
    return timing.ratio(times, a, b, clock)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,1000,3000")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--big-reps", type=int, default=3, help="repetitions for n > 1000")
    parser.add_argument("--peers", default="jax,torch")
    parser.add_argument("--problems", default="", help="run only problems containing this")
    parser.add_argument(
        "--no-torch-above", type=int, default=0, help="skip torch.func.hessian above this n"
    )
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"threads per library: {args.threads or 'library defaults'}; load average {load}")
    rng = np.random.default_rng(0)
    for name in (p for p in PROBLEMS if args.problems in p):
        t0 = time.perf_counter()
        fn, order = symgrad_hessian(name)
        spent = 1e3 * (time.perf_counter() - t0)
        entry = "C entry" if fn.native else "NumPy function (no C entry)"
        print(f"\n{name}: symgrad derive + compile + build {spent:.0f} ms; {entry}")
        for n in (int(s) for s in args.sizes.split(",")):
            vals = data(name, n, rng)
            arrays = [vals[k] for k in order]
            contenders = {"symgrad": lambda fn=fn, arrays=arrays: fn(*arrays)}
            if name == "logistic regression":
                contenders.update(floor_fns(vals))
            first = {k: _once(f) for k, f in contenders.items()}
            ref = first["symgrad"][2]
            if "hand NumPy from w" in first:
                got = first["hand NumPy from w"][2]
                assert np.allclose(got, ref, rtol=1e-8, atol=1e-8), f"hand disagrees at n={n}"
            makers = {"jax": jax_fn, "torch": torch_fn}
            for p in peers:
                if p == "torch" and args.no_torch_above and n > args.no_torch_above:
                    print(f"  n={n:5d}  torch.func.hessian skipped (--no-torch-above)")
                    continue
                run = makers[p](name, vals)
                try:
                    first[f"{p} hessian"] = _once(run)
                except Exception as e:  # XLA's RESOURCE_EXHAUSTED at large n
                    print(f"  n={n:5d}  {p} hessian failed: {type(e).__name__}: {str(e)[:200]}")
                    continue
                got = np.asarray(first[f"{p} hessian"][2])
                assert np.allclose(got, ref, rtol=1e-8, atol=1e-8), f"{p} disagrees at n={n}"
                contenders[f"{p} hessian"] = run
            first = {k: v[:2] for k, v in first.items()}
            times, slow = _time(
                contenders, first, args.reps if n <= 1000 else args.big_reps, args.budget
            )
            print(f"  n={n:5d}  (CPU median; wall median; this/symgrad CPU, wall)")
            for k in contenders:
                cpu, wall = timing.median(times, k), timing.median(times, k, "wall")
                runs = "1 run" if k in slow else f"{len(times[k]['cpu'])} reps"
                line = f"    {k:20s} {cpu * 1e3:10.4f} ms {wall * 1e3:10.4f} ms  ({runs})"
                if k != "symgrad":
                    line += (
                        f"  {_ratio(times, slow, k, 'symgrad', 'cpu'):8.3f}x"
                        f" {_ratio(times, slow, k, 'symgrad', 'wall'):8.3f}x"
                    )
                if k in FLOORS:  # the goal's direction: symgrad over the floor
                    line += f"  (symgrad/this {_ratio(times, slow, 'symgrad', k, 'cpu'):.3f}x CPU)"
                print(line, flush=True)


if __name__ == "__main__":
    main()
