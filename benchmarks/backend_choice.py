"""How the native backend was chosen: one kernel, three ways to compile it.

Usage: ``python benchmarks/backend_choice.py [--h 16]``

The kernel is the per-sample squared loss of a 2-h-h-1 tanh MLP and its gradient with respect
to all parameters, evaluated on a batch of 100 (tanh, because SymEngine cannot differentiate
``Max``). Candidates: symgrad's generated C (gcc, ctypes), numba ``njit`` of the same
statements as a Python loop (when numba is installed), and SymEngine's LLVM ``Lambdify`` (which
re-derives the gradient). Prints compile time and the median time per batch (alternating
repetitions).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sympy as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import peers  # noqa: E402
import workloads as wl  # noqa: E402

from symgrad.autodiff import sweep  # noqa: E402
from symgrad.codegen import c as cbackend  # noqa: E402
from symgrad.codegen import c_source, lambdify  # noqa: E402


def numba_kernel(arg_spec, outputs):
    """The C kernel's statements as a numba loop (C and Python share this expression syntax)."""
    import math

    import numba

    helpers = {
        "sg_max": numba.njit(lambda a, b: a if (a > b or a != a) else b),
        "sg_min": numba.njit(lambda a, b: a if (a < b or a != a) else b),
        "sg_heaviside": numba.njit(
            lambda x, h: 1.0 if x > 0 else (0.0 if x < 0 else (h if x == 0 else x))
        ),
        "tanh": math.tanh,
        "exp": math.exp,
        "log": math.log,
        "sqrt": math.sqrt,
        "pow": math.pow,
    }
    plan = c_source._plan(arg_spec, outputs)  # the C kernel's statements, whose text
    lines = ["def kernel(n, ins, rs, cs, out):", "    for i in range(n):"]  # is Python too here
    lines += [f"        {v} = ins[{j}][{r} * rs[{j}] + i * cs[{j}]]" for v, j, r in plan.loads]
    lines += [f"        {t} = {e}" for t, e, _ in plan.stmts]
    lines += [f"        out[{k}, i] = {r}" for k, (r, _) in enumerate(plan.results)]
    namespace = dict(helpers)
    exec("\n".join(lines), namespace)  # benchmark-generated source only
    return numba.njit(namespace["kernel"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--h", type=int, default=16)
    args = ap.parse_args()
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="symgrad-choice-")
    sizes = [2, args.h, args.h, 1]
    e, params, ins = wl.mlp_loss(sizes, "tanh", "square")
    g = sweep([e], params)[0]
    outs = [e] + [g.get(p, sp.S.Zero) for p in params]
    spec = [*ins, params]
    X, y = wl.moons(100)
    p = wl.init_params(len(params))
    x0, x1 = np.ascontiguousarray(X[:, 0]), np.ascontiguousarray(X[:, 1])
    ref = lambdify([e, outs[1:]], spec)(x0, x1, y, p)
    ref = np.vstack([ref[0][None, :], ref[1]])
    runs, compile_s = {}, {}

    t0 = time.perf_counter()
    kc = cbackend.build_c_kernel(spec, outs, name="choice_c")
    compile_s["generated C (gcc)"] = time.perf_counter() - t0
    runs["generated C (gcc)"] = lambda: kc(x0, x1, y, p)

    if peers.have("numba"):
        t0 = time.perf_counter()
        kn = numba_kernel(spec, outs)
        ins_ = (x0, x1, y, p)
        import numba

        typed = numba.typed.List(ins_)
        rs = np.array([1, 1, 1, 1])
        cs = np.array([1, 1, 1, 0])
        out = np.empty((len(outs), 100))
        kn(100, typed, rs, cs, out)
        compile_s["numba njit"] = time.perf_counter() - t0

        def run_numba():
            o = np.empty((len(outs), 100))
            kn(100, typed, rs, cs, o)
            return o

        runs["numba njit"] = run_numba

    if peers.have("symengine") and args.h <= 16:
        import symengine as se

        t0 = time.perf_counter()
        se_e = se.sympify(e.xreplace({}))
        se_params = [se.Symbol(s.name) for s in params]
        se_ins = [se.Symbol(s.name) for s in ins]
        se_outs = [se_e] + [se.diff(se_e, q) for q in se_params]
        fl = se.Lambdify([*se_ins, *se_params], se_outs, backend="llvm", cse=True)
        inp = np.hstack([np.stack([x0, x1, y], 1), np.tile(p, (100, 1))])
        fl(inp)
        compile_s["symengine llvm"] = time.perf_counter() - t0
        runs["symengine llvm"] = lambda: fl(inp).T

    for name, fn in runs.items():
        got = np.asarray(fn())
        err = float(np.max(np.abs(got - ref)))
        print(f"{name}: max |difference| to the NumPy backend {err:.1e}")
    times = {name: [] for name in runs}
    for _ in range(7):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            for _ in range(20):
                fn()
            times[name].append((time.perf_counter() - t0) / 20)
    print(
        f"\n2-{args.h}-{args.h}-1 tanh MLP, per-sample loss + gradient ({len(outs)} outputs), "
        "batch 100"
    )
    print("| candidate | compile | per batch (median) |\n| --- | --- | --- |")
    for name in runs:
        med = statistics.median(times[name]) * 1e6
        print(f"| {name} | {compile_s[name]:.2f} s | {med:.0f} us |")


if __name__ == "__main__":
    main()
