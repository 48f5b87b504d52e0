"""Benchmarks of symgrad against SymPy, SymEngine, CasADi, JAX, PyTorch, micrograd, hand code.

Usage (from the repository root)::

    python benchmarks/run.py [--quick] [--only NAME[,NAME...]] [--no-write] [--write]
                             [--threads N]

Runs every workload for symgrad and for each installed peer (missing peers are skipped with a
note), alternating the contenders repetition by repetition so that machine noise hits them
alike, and reports medians, min/max, the ratio of each peer to symgrad measured in the same
run, and the peak Python memory of one call (tracemalloc; native allocations of JAX/PyTorch/
CasADi are not seen by it). Writes the Markdown tables into ``docs/benchmarks.md`` (between
markers) and the plot ``docs/benchmarks.png`` when every workload ran (or ``--write``), unless
``--no-write``.

Workloads: neuron, demo, scaling, lj, check_grad, issue2, setup, width (see
``docs/benchmarks.md``). ``--threads N`` (default 1) sizes BLAS's and XLA's thread pools for every
contender (``benchmarks/threads.py``; 0 keeps the libraries' defaults): on a 2-core machine that
runs anything else, a second BLAS thread waits for a core on every small matrix product.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import gc
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import threads  # before NumPy, PyTorch and JAX size their thread pools

THREADS = threads.pin_from_argv()

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import peers  # noqa: E402
import workloads as wl  # noqa: E402

import symgrad  # noqa: E402
from symgrad.autodiff import sweep  # noqa: E402
from symgrad.codegen import fuse as codegen_fuse  # noqa: E402
from symgrad.codegen import lambdify, value_and_grad  # noqa: E402
from symgrad.codegen.c import c_available  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks.png"
START, END = "<!-- BENCHMARKS:START -->", "<!-- BENCHMARKS:END -->"

ROWS: list[dict] = []  # every measurement of the run
NOTES: list[str] = []
CLAIMS: list[tuple[str, str, bool]] = []


# --------------------------------------------------------------------------------- timing


def _per_call(fn: Callable, number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def interleave(contenders: dict[str, Callable], reps: int, sample: float = 0.05) -> dict:
    """Median/min/max seconds per call, contenders alternating within every repetition."""
    numbers = {}
    for name, fn in contenders.items():
        fn()  # warm up (caches, JIT)
        t = _per_call(fn, 1)
        numbers[name] = max(1, min(100_000, int(sample / max(t, 1e-9))))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(reps):
        for name, fn in contenders.items():
            if r >= 3 and numbers[name] == 1 and times[name][0] > 0.5:
                continue  # seconds-long contenders (micrograd): three samples are enough
            times[name].append(_per_call(fn, numbers[name]))
    out = {}
    for name, fn in contenders.items():
        gc.collect()
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        ts = times[name]
        out[name] = {
            "median": statistics.median(ts),
            "min": min(ts),
            "max": max(ts),
            "n": len(ts),
            "peak_kib": peak / 1024,
        }
    return out


def record(workload: str, results: dict, setups: dict, base: str, notes: dict | None = None):
    for name, r in results.items():
        ROWS.append(
            {
                "workload": workload,
                "contender": name,
                "setup": setups.get(name),
                **r,
                "ratio": r["median"] / results[base]["median"] if base in results else None,
                "note": (notes or {}).get(name, ""),
            }
        )


def skip(name: str, module: str, workload: str) -> bool:
    if peers.have(module):
        return False
    note = f"{workload}: {name} skipped ({module} is not installed)"
    if note not in NOTES:
        NOTES.append(note)
    return True


def claim(text: str, value: str, ok: bool) -> None:
    CLAIMS.append((text, value, ok))
    print(f"  [{'PASS' if ok else 'FAIL'}] {text}: {value}")


# ------------------------------------------------------------------------------ workloads


def bench_neuron(quick: bool) -> None:
    """The lecture's neuron: value + 5 partial derivatives per call, scalar inputs."""
    print("neuron ...")
    syms = sp.symbols("x1 w1 x2 w2 b")
    x1, w1, x2, w2, b = syms
    o = sp.tanh(x1 * w1 + x2 * w2 + b)
    contenders, setups = {}, {}
    for backend in ("numpy", "c"):
        if backend == "c" and not c_available():
            NOTES.append("neuron: symgrad-c skipped (no C compiler)")
            continue
        t0 = time.perf_counter()
        f = value_and_grad(o, list(syms), args=list(syms), backend=backend)
        setups[f"symgrad-{backend}"] = time.perf_counter() - t0
        contenders[f"symgrad-{backend}"] = lambda f=f: f(*peers.NEURON_AT)
    makers = {
        "sympy diff+lambdify": ("sympy", peers.neuron_sympy),
        "symengine llvm": ("symengine", peers.neuron_symengine),
        "casadi": ("casadi", peers.neuron_casadi),
        "jax jit": ("jax", peers.neuron_jax),
        "pytorch eager": ("torch", peers.neuron_torch),
        "micrograd": ("micrograd", peers.neuron_micrograd),
        "hand (math)": ("math", peers.neuron_hand),
    }
    for name, (module, make) in makers.items():
        if skip(name, module, "neuron"):
            continue
        setups[name], contenders[name] = make()
    results = interleave(contenders, 5 if quick else 11)
    record("neuron", results, setups, "symgrad-numpy")
    sg = results["symgrad-numpy"]["median"]
    if "sympy diff+lambdify" in results:
        r = results["sympy diff+lambdify"]["median"] / sg
        claim(
            "neuron: symgrad (default backend) no slower than SymPy lambdify", f"{r:.2f}x", r >= 1
        )
    for peer, need in (("jax jit", 5), ("micrograd", 5)):
        if peer in results:
            r = results[peer]["median"] / sg
            claim(f"neuron: symgrad >= {need}x faster than {peer}", f"{r:.1f}x", r >= need)


def _compiled_mlp(sizes, act, loss, backend):
    """(build s, derive+compile s, compiled batch-mean loss and gradient, params).

    The expression is one sample's loss; ``reduce="mean"`` makes the compiled function
    return the batch means (what a training step needs), as the peers' steps do.
    """
    t0 = time.perf_counter()
    e, params, ins = wl.mlp_loss(sizes, act, loss)
    t1 = time.perf_counter()
    f = value_and_grad(e, params, [*ins, params], backend=backend, reduce="mean")
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, f, params


def _symgrad_step(f, X, y, p):
    x0, x1 = np.ascontiguousarray(X[:, 0]), np.ascontiguousarray(X[:, 1])

    def step():
        value, grad = f(x0, x1, y, p)  # batch means
        total = value + peers.ALPHA * p @ p
        return p - peers.LR * (grad + 2 * peers.ALPHA * p), total

    return step


def bench_demo(quick: bool) -> None:
    """micrograd's demo: 2-16-16-1 ReLU MLP, hinge loss + L2, one step on a batch of 100."""
    print("demo ...")
    sizes = [2, 16, 16, 1]
    X, y = wl.moons(100)
    p = wl.init_params(337)
    contenders, setups = {}, {}
    for backend in ("numpy", "c"):
        if backend == "c" and not c_available():
            continue
        _, setup, f, _ = _compiled_mlp(sizes, "relu", "hinge", backend)
        setups[f"symgrad-{backend}"] = setup
        contenders[f"symgrad-{backend}"] = _symgrad_step(f, X, y, p)
    makers = {
        "jax jit": ("jax", peers.mlp_jax),
        "pytorch eager": ("torch", peers.mlp_torch),
        "casadi": ("casadi", peers.mlp_casadi),
        "hand numpy": ("numpy", peers.mlp_hand),
        "micrograd": ("micrograd", peers.mlp_micrograd),
    }
    for name, (module, make) in makers.items():
        if skip(name, module, "demo"):
            continue
        setups[name], contenders[name] = make(sizes, X, y, p, "relu", "hinge")
    # all contenders compute the same loss: check before timing
    ref = contenders["symgrad-numpy"]()
    for name, fn in contenders.items():
        other = fn()
        new_p = np.asarray(other[0].detach() if hasattr(other[0], "detach") else other[0])
        if not np.allclose(new_p, ref[0], rtol=1e-9, atol=1e-12):
            NOTES.append(f"demo: {name} disagrees with symgrad on the updated parameters")
    results = interleave(contenders, 5 if quick else 11)
    record("demo", results, setups, "symgrad-numpy")
    sg = results["symgrad-numpy"]["median"]
    if "micrograd" in results:
        r = results["micrograd"]["median"] / sg
        claim("demo: NumPy backend >= 500x faster than micrograd", f"{r:.0f}x", r >= 500)
    if "symgrad-c" in results and "jax jit" in results:
        r = results["jax jit"]["median"] / results["symgrad-c"]["median"]
        claim("demo: C backend at least as fast as JAX jit", f"{r:.2f}x", r >= 1)


SCALING_H = (4, 8, 16, 32, 64)


def bench_scaling(quick: bool) -> None:
    """2-h-h-1 tanh MLP, squared loss: setup (derive + compile) and one step on 100 samples."""
    print("scaling ...")
    X, y = wl.moons(100)
    for h in (4, 16, 64) if quick else SCALING_H:
        sizes = [2, h, h, 1]
        n = h * h + 5 * h + 1  # 3h + h(h + 1) + (h + 1)
        p = wl.init_params(n)
        contenders, setups, notes = {}, {}, {}
        # setup medians over alternating repetitions (JAX and CasADi build afresh each time)
        times: dict[str, list] = {"symgrad-numpy": [], "build": [], "casadi": [], "cas-build": []}
        times["jax jit"] = []
        for _ in range(3 if quick else 5):
            build, setup, f, _ = _compiled_mlp(sizes, "tanh", "square", "numpy")
            times["symgrad-numpy"].append(setup)
            times["build"].append(build)
            if peers.have("casadi"):
                parts: dict = {}
                times["casadi"].append(peers.mlp_casadi(sizes, X, y, p, "tanh", "square", parts)[0])
                times["cas-build"].append(parts["build"])
            if peers.have("jax"):
                times["jax jit"].append(peers.mlp_jax(sizes, X, y, p, "tanh", "square")[0])
        med = {k: float(np.median(v)) for k, v in times.items() if v}
        setups["symgrad-numpy"] = med["symgrad-numpy"]
        notes["symgrad-numpy"] = (
            f"setup excludes building the SymPy loss ({med['build']:.3f} s, median)"
        )
        if "casadi" in med:
            notes["casadi"] = (
                f"setup includes building the SX graph ({med['cas-build']:.3f} s); "
                f"gradient + Function + map + first call: {med['casadi'] - med['cas-build']:.3f} s"
            )
        contenders["symgrad-numpy"] = _symgrad_step(f, X, y, p)
        if c_available() and (h <= 16 or not quick):
            _, setup, f, _ = _compiled_mlp(sizes, "tanh", "square", "c")
            setups["symgrad-c"] = setup
            contenders["symgrad-c"] = _symgrad_step(f, X, y, p)
        for name, module, make in (
            ("jax jit", "jax", peers.mlp_jax),
            ("casadi", "casadi", peers.mlp_casadi),
            ("pytorch eager", "torch", peers.mlp_torch),
        ):
            if skip(name, module, "scaling"):
                continue
            setups[name], contenders[name] = make(sizes, X, y, p, "tanh", "square")
            setups[name] = med.get(name, setups[name])
        results = interleave(contenders, 3 if quick else 7, sample=0.03)
        for r in results.values():
            r["params"] = n
        record(f"scaling h={h}", results, setups, "symgrad-numpy", notes)
    rows = [
        r for r in ROWS if r["workload"].startswith("scaling") and r["contender"] == "symgrad-numpy"
    ]
    if len(rows) >= 3:
        xs = np.log([r["params"] for r in rows])
        ys = np.log([r["setup"] for r in rows])
        slope = float(np.polyfit(xs, ys, 1)[0])
        claim(
            "scaling: setup time ~ linear in the parameter count (log-log slope)",
            f"{slope:.2f}",
            slope < 1.25,
        )
    big = {r["contender"]: r for r in ROWS if r["workload"] == "scaling h=64"}
    if "symgrad-numpy" in big:
        for peer in ("casadi", "jax jit"):
            if peer in big:
                r = big[peer]["setup"] / big["symgrad-numpy"]["setup"]
                claim(f"setup 2-64-64-1: symgrad no slower than {peer}", f"{r:.2f}x", r >= 1)


def bench_lj(quick: bool) -> None:
    """Lennard-Jones energy of N particles, gradient with respect to all 3N coordinates."""
    n = 8 if quick else 16
    print(f"lj (N={n}) ...")
    energy, coords = wl.lennard_jones(n)
    q = wl.lattice(n)
    contenders, setups = {}, {}
    for backend in ("numpy", "c"):
        if backend == "c" and not c_available():
            continue
        t0 = time.perf_counter()
        f = value_and_grad(energy, coords, backend=backend)
        setups[f"symgrad-{backend}"] = time.perf_counter() - t0
        contenders[f"symgrad-{backend}"] = lambda f=f: f(q)
    t0 = time.perf_counter()
    f_sp = sp.lambdify([coords], [energy, [sp.diff(energy, c) for c in coords]])
    setups["sympy diff+lambdify"] = time.perf_counter() - t0
    contenders["sympy diff+lambdify"] = lambda: f_sp(q)

    def lj_np(xp, r):
        r = r.reshape(-1, 3)
        i, j = np.triu_indices(len(r), 1)
        d = r[i] - r[j]
        inv6 = 1.0 / xp.sum(d * d, axis=1) ** 3
        return xp.sum(4 * (inv6 * inv6 - inv6))

    if not skip("jax jit", "jax", "lj"):
        jax, jnp = peers._jax()
        fj = jax.jit(jax.value_and_grad(lambda r: lj_np(jnp, r)))
        qj = jnp.asarray(q)
        t0 = time.perf_counter()
        jax.block_until_ready(fj(qj))
        setups["jax jit"] = time.perf_counter() - t0
        contenders["jax jit"] = lambda: jax.block_until_ready(fj(qj))
    if not skip("pytorch eager", "torch", "lj"):
        import torch

        def torch_step():
            r = torch.tensor(q, requires_grad=True)
            e = lj_np(torch, r)
            e.backward()
            return e.item(), r.grad

        contenders["pytorch eager"] = torch_step
    results = interleave(contenders, 5 if quick else 9)
    record(f"lj N={n}", results, setups, "symgrad-numpy")


def bench_check_grad(quick: bool) -> None:
    """symgrad.check_grad (symbolic vs finite differences) against the peers' gradient checks."""
    print("check_grad ...")
    syms = sp.symbols("x1 w1 x2 w2 b")
    x1, w1, x2, w2, b = syms
    o = sp.tanh(x1 * w1 + x2 * w2 + b)
    at = dict(zip(syms, peers.NEURON_AT, strict=True))
    contenders = {"symgrad check_grad": lambda: symgrad.check_grad(o, at=at)}
    energy, coords = wl.lennard_jones(4)
    q = wl.lattice(4)
    at_lj = dict(zip(coords, q.tolist(), strict=True))
    contenders["symgrad check_grad (LJ N=4)"] = lambda: symgrad.check_grad(energy, at=at_lj)
    if not skip("torch gradcheck", "torch", "check_grad"):
        import torch

        args = tuple(
            torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in peers.NEURON_AT
        )
        contenders["torch gradcheck"] = lambda: torch.autograd.gradcheck(
            lambda a, b_, c, d, e: torch.tanh(a * b_ + c * d + e), args
        )
    if not skip("jax check_grads", "jax", "check_grad"):
        _, jnp = peers._jax()
        from jax.test_util import check_grads

        contenders["jax check_grads"] = lambda: check_grads(
            lambda a, b_, c, d, e: jnp.tanh(a * b_ + c * d + e),
            peers.NEURON_AT,
            order=1,
            modes=["rev"],
        )
    results = interleave(contenders, 3 if quick else 7)
    record("check_grad", results, {}, "symgrad check_grad")


_BOOKKEEPING = {"_stack", "_batch_mean", "_coerce", "_coerce_vector"}


def _op_count(source: str) -> int:
    """Arithmetic operations and function calls of the NumPy path of a generated function.

    Counts every BinOp/UnaryOp/Call in the function's top-level temporaries (``_t`` names) and
    in its return statement (where expressions read once are inlined); the scalar fast path
    (inside the ``if``) and calls that only assemble outputs are not counted.
    """
    fn = ast.parse(source).body[0]
    count = 0
    for stmt in fn.body:
        temporary = isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id.startswith("_t") for t in stmt.targets
        )
        if not (temporary or isinstance(stmt, ast.Return)):
            continue
        for n in ast.walk(stmt.value):
            if isinstance(n, ast.Call):
                name = n.func.id if isinstance(n.func, ast.Name) else None
                count += name not in _BOOKKEEPING
            else:
                count += isinstance(n, (ast.BinOp, ast.UnaryOp))
    return count


def bench_issue2(quick: bool) -> None:
    """Issue 2: all gradients of the 2-16-16-1 tanh MLP loss vs sympy.diff + sympy.lambdify."""
    print("issue2 ...")
    sizes = [2, 16, 16, 1]
    e, params, ins = wl.mlp_loss(sizes, "tanh", "square")
    t0 = time.perf_counter()
    value_and_grad(e, params, [*ins, params])
    ours = time.perf_counter() - t0
    g = sweep([e], params)[0]
    grads = [g.get(p, sp.S.Zero) for p in params]
    # operations counted on the unfused programs: fusion groups the products into one _dot or
    # _gather call per group (fewer NumPy calls), it does not change how many there are
    fuse_min, codegen_fuse.FUSE_MIN = codegen_fuse.FUSE_MIN, sys.maxsize
    try:
        unfused = lambdify([e, grads], [*ins, params])
        value_only = lambdify(e, [*ins, params])
    finally:
        codegen_fuse.FUSE_MIN = fuse_min
    ops_vg, ops_v = _op_count(unfused.source), _op_count(value_only.source)
    subset = params if not quick else params[:: len(params) // 6][:6]
    t0 = time.perf_counter()
    naive = [sp.diff(e, p) for p in subset]
    t1 = time.perf_counter()
    sp.lambdify([*ins, *params], [e, naive])
    t2 = time.perf_counter()
    scale = len(params) / len(subset)
    naive_total = (t1 - t0) * scale + (t2 - t1) * scale
    label = (
        "measured"
        if len(subset) == len(params)
        else (f"extrapolated linearly from {len(subset)} of {len(params)} parameters")
    )
    label += f": diff {(t1 - t0) * scale:.0f} s + lambdify {(t2 - t1) * scale:.0f} s"
    ROWS.append(
        {
            "workload": "issue2 (2-16-16-1)",
            "contender": "symgrad value_and_grad",
            "setup": ours,
            "median": ours,
            "min": ours,
            "max": ours,
            "n": 1,
            "peak_kib": float("nan"),
            "ratio": 1.0,
            "note": f"value+gradient ops {ops_vg} vs value {ops_v}: {ops_vg / ops_v:.2f}x",
        }
    )
    ROWS.append(
        {
            "workload": "issue2 (2-16-16-1)",
            "contender": "sympy diff per parameter + lambdify",
            "setup": naive_total,
            "median": naive_total,
            "min": naive_total,
            "max": naive_total,
            "n": 1,
            "peak_kib": float("nan"),
            "ratio": naive_total / ours,
            "note": label,
        }
    )
    claim(
        "setup 2-16-16-1: symgrad >= 100x faster than sympy diff + lambdify",
        f"{naive_total / ours:.0f}x ({label})",
        naive_total / ours >= 100,
    )
    claim(
        "compiled value+gradient <= 3x the ops of the value alone",
        f"{ops_vg / ops_v:.2f}x",
        ops_vg / ops_v <= 3,
    )


SETUP_H = (4, 8, 16, 32, 64, 128, 256)


def _nn_setup(sizes, loss="hinge"):
    """(build s, derive+compile s, compiled batch-mean function, expr, params, inputs)."""
    t0 = time.perf_counter()
    e, theta, ins = wl.nn_loss(sizes, loss)
    t1 = time.perf_counter()
    f = value_and_grad(e, theta, [*ins, theta], reduce="mean")
    return t1 - t0, time.perf_counter() - t1, f, e, theta, ins


def _rss_mib(field: str = "VmRSS") -> float:
    # VmHWM is the peak of this process's own memory; getrusage's ru_maxrss is not: Linux
    # carries the parent's high-water mark through fork and exec into a child
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_setup(name: str, h: int) -> None:
    """Run one contender's setup in this (fresh) process; print seconds and peak memory."""
    import json

    X, y = wl.moons(100)
    sizes = [2, h, h, 1] if name != "symgrad-784" else [784, h, 10]
    n = wl.mlp_symbols(sizes)
    p = wl.init_params(len(n))
    if name.startswith("symgrad"):
        import symgrad.nn  # noqa: F401  (imports are not setup)
    elif name == "casadi":
        import casadi  # noqa: F401
    else:
        peers._jax()
    base = _rss_mib()
    t0 = time.perf_counter()
    if name == "symgrad-numpy":
        _nn_setup(sizes)
    elif name == "symgrad-784":
        _nn_setup(sizes, "softmax_cross_entropy")
    elif name == "casadi":
        peers.mlp_casadi(sizes, X, y, p, "relu", "hinge", l2_inside=True)
    else:
        peers.mlp_jax(sizes, X, y, p, "relu", "hinge")
    seconds = time.perf_counter() - t0
    peak = _rss_mib("VmHWM")
    print(json.dumps({"seconds": seconds, "peak_mib": peak - base, "rss_peak_mib": peak}))


def _in_child(name: str, h: int) -> dict:
    import json
    import subprocess

    cmd = [sys.executable, str(Path(__file__)), "--child", f"{name}:{h}", "--threads", str(THREADS)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_setup(quick: bool) -> None:
    """Setup on the peers' own loss: 2-h-h-1 ReLU MLP built by symgrad.nn, hinge + L2 inside.

    symgrad: build the SymPy loss (``MLP.symbolic`` + ``hinge`` + ``l2``) + ``value_and_grad``;
    CasADi: the SX graph with ``ALPHA * sumsqr(p)`` in the per-sample expression + gradient +
    Function + map + first call; JAX: jit of value_and_grad (L2 inside) + first call.
    """
    print("setup ...")
    X, y = wl.moons(100)
    xs = [np.ascontiguousarray(X[:, k]) for k in range(2)]
    for h in (4, 16, 64) if quick else SETUP_H:
        sizes = [2, h, h, 1]
        n = h * h + 5 * h + 1
        p = wl.init_params(n)
        reps = 1 if h >= 128 else 3 if h >= 32 or quick else 5
        times: dict[str, list] = {"symgrad-numpy": [], "build": [], "casadi": [], "jax jit": []}
        for _ in range(reps):
            build, derive, f, e, theta, ins = _nn_setup(sizes)
            times["symgrad-numpy"].append(build + derive)
            times["build"].append(build)
            if peers.have("casadi"):
                times["casadi"].append(
                    peers.mlp_casadi(sizes, X, y, p, "relu", "hinge", l2_inside=True)[0]
                )
            if peers.have("jax"):
                times["jax jit"].append(peers.mlp_jax(sizes, X, y, p, "relu", "hinge")[0])
        med = {k: float(np.median(v)) for k, v in times.items() if v}
        value_only = lambdify(e, [*ins, theta], reduce="mean")

        def step_vg(f=f, p=p):
            return f(*xs, y, p)

        def step_v(value_only=value_only, p=p):
            return value_only(*xs, y, p)

        contenders = {"symgrad value+grad": step_vg, "symgrad value": step_v}
        if "casadi" in med:
            _, cas_step = peers.mlp_casadi(sizes, X, y, p, "relu", "hinge", l2_inside=True)
            value, grad = step_vg()
            new_p, total = cas_step()
            if not (
                np.allclose(new_p, p - peers.LR * grad, rtol=1e-9, atol=1e-12)
                and np.isclose(total, value, rtol=1e-9)
            ):
                NOTES.append(f"setup h={h}: CasADi disagrees with symgrad on the loss or gradient")
        results = interleave(contenders, 3 if quick else 7, sample=0.03)
        setups = {"symgrad value+grad": med["symgrad-numpy"]}
        notes = {
            "symgrad value+grad": f"setup = build {med['build']:.3f} s + derive and compile "
            f"{med['symgrad-numpy'] - med['build']:.3f} s (medians of {reps})"
        }
        for peer in ("casadi", "jax jit"):
            if peer in med:
                ratio = med["symgrad-numpy"] / med[peer]
                results[peer] = {
                    "median": float("nan"),
                    "min": float("nan"),
                    "max": float("nan"),
                    "n": reps,
                    "peak_kib": float("nan"),
                }
                setups[peer] = med[peer]
                notes[peer] = f"setup only; symgrad setup / {peer} setup = {ratio:.2f}x"
        for r in results.values():
            r["params"] = n
        record(f"setup h={h}", results, setups, "symgrad value+grad", notes)
        step_ratio = results["symgrad value+grad"]["median"] / results["symgrad value"]["median"]
        claim(
            f"setup h={h}: step time value+gradient / value (NumPy) <= 3x",
            f"{step_ratio:.2f}x",
            step_ratio <= 3,
        )
        if "casadi" in med:
            ratio = med["symgrad-numpy"] / med["casadi"]
            limit = 1.0 if h <= 64 else 3.0 if h >= 256 else None
            text = f"setup h={h} ({n} params): symgrad {med['symgrad-numpy']:.3f} s, CasADi "
            text += f"{med['casadi']:.3f} s"
            if "jax jit" in med:
                text += f", JAX {med['jax jit']:.3f} s"
            if limit is None:
                print(f"  [info] {text}: {ratio:.2f}x CasADi")
                NOTES.append(f"{text}: symgrad/CasADi {ratio:.2f}x")
            else:
                claim(f"{text}: symgrad/CasADi <= {limit:g}x", f"{ratio:.2f}x", ratio <= limit)
    rows = [
        r
        for r in ROWS
        if r["workload"].startswith("setup h=")
        and r["contender"] == "symgrad value+grad"
        and r["params"] >= 16 * 16 + 5 * 16 + 1
    ]
    if len(rows) >= 3:
        xs_ = np.log([r["params"] for r in rows])
        ys_ = np.log([r["setup"] for r in rows])
        slope = float(np.polyfit(xs_, ys_, 1)[0])
        claim(
            "setup: log-log slope in the parameter count from h=16 up",
            f"{slope:.2f}",
            slope <= 1.05,
        )
    if not quick:
        for name in ("symgrad-numpy", "casadi", "jax"):
            if name != "symgrad-numpy" and not peers.have(name):
                continue
            r = _in_child(name, 256)
            NOTES.append(
                f"setup h=256 in a fresh process, {name}: {r['seconds']:.2f} s, peak RSS "
                f"{r['rss_peak_mib']:.0f} MiB ({r['peak_mib']:.0f} MiB above the process "
                "after its imports)"
            )
            print("  " + NOTES[-1])


WIDTHS = (16, 64, 256, 1024)


def bench_width(quick: bool) -> None:
    """No cliff: value_and_grad of a D-16-10 softmax cross-entropy MLP built by symgrad.nn."""
    print("width ...")
    per = {}
    for d in (16, 256) if quick else WIDTHS:
        sizes = [d, 16, 10]
        # the median of 5 at every width (each run is now milliseconds): one lucky run at a
        # large width would set the smallest time per parameter alone
        runs = [_nn_setup(sizes, "softmax_cross_entropy") for _ in range(5)]
        derive = float(np.median([r[1] for r in runs]))
        n = len(runs[0][4])
        per[d] = derive / n
        NOTES.append(
            f"width D={d} (D-16-10 softmax CE, {n} params): value_and_grad {derive:.3f} s, "
            f"{per[d] * 1e6:.1f} us per parameter (build {runs[0][0]:.3f} s)"
        )
        print("  " + NOTES[-1])
    spread = max(per.values()) / min(per.values())
    claim(
        f"width: value_and_grad time per parameter within 2x for D = {', '.join(map(str, per))}",
        f"{spread:.2f}x",
        spread <= 2,
    )
    if not quick:
        r = _in_child("symgrad-784", 32)
        claim(
            "784-32-10 softmax CE (25,450 params): build + derive + compile < 20 s, < 2 GB",
            f"{r['seconds']:.2f} s, peak RSS {r['rss_peak_mib']:.0f} MiB",
            r["seconds"] < 20 and r["rss_peak_mib"] < 2048,
        )


BENCHES = {
    "neuron": bench_neuron,
    "demo": bench_demo,
    "scaling": bench_scaling,
    "lj": bench_lj,
    "check_grad": bench_check_grad,
    "issue2": bench_issue2,
    "setup": bench_setup,
    "width": bench_width,
}


# -------------------------------------------------------------------------------- report


def _fmt_time(s: float | None) -> str:
    if s is None or s != s:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.3g} us"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mods = ["numpy", "sympy", "symengine", "casadi", "jax", "torch", "micrograd", "numba"]
    versions = ", ".join(f"{m} {peers.version(m)}" for m in mods)
    cc = "C compiler: yes" if c_available() else "C compiler: none"
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, symgrad {symgrad.__version__}; {versions}; {cc}"
    )


def markdown(args: argparse.Namespace, elapsed: float) -> str:
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = "--quick" if args.quick else "full"
    lines = [
        f"Measured {date} ({mode} run, {elapsed:.0f} s) on: {machine()}.",
        "",
        "Times are medians over alternating repetitions (min - max in brackets); *ratio* is the "
        "contender's median over symgrad's (NumPy backend) median in the same run, so > 1 means "
        "symgrad is faster. *setup* is what it takes from the model to a compiled function "
        "that has run once: for symgrad derive + compile of the SymPy loss (building the SymPy "
        "expression is not included: the note gives it), for JAX tracing + XLA compilation + the "
        "first call, for CasADi building the SX graph + gradient + Function + map + the first "
        "call (the note splits it). In the scaling workload setups are medians over alternating "
        "repetitions; the C backend's setup includes compiling with an empty kernel cache. "
        "*peak* is the Python-heap peak of one call (tracemalloc).",
        "",
    ]
    if CLAIMS:
        lines += ["| claim | measured | |", "| --- | --- | --- |"]
        lines += [f"| {t} | {v} | {'pass' if ok else '**fail**'} |" for t, v, ok in CLAIMS]
        lines.append("")
    workload = None
    for r in ROWS:
        if r["workload"] != workload:
            workload = r["workload"]
            lines += ["", f"**{workload}**", ""]
            lines += ["| contender | setup | per call / step [min - max] | ratio | peak | note |"]
            lines += ["| --- | --- | --- | --- | --- | --- |"]
        spread = f"[{_fmt_time(r['min'])} - {_fmt_time(r['max'])}]" if r["n"] > 1 else ""
        ratio = f"{r['ratio']:.3g}" if r["ratio"] is not None else "-"
        peak = f"{r['peak_kib']:.0f} KiB" if r["peak_kib"] == r["peak_kib"] else "-"
        lines.append(
            f"| {r['contender']} | {_fmt_time(r['setup'])} | {_fmt_time(r['median'])} {spread} "
            f"| {ratio} | {peak} | {r['note']} |"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines += ["", f"Peak resident memory of the whole run: {rss:.0f} MiB."]
    if NOTES:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in NOTES]
    return "\n".join(lines) + "\n"


def plot(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in ROWS if r["workload"].startswith("scaling")]
    if not rows:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in dict.fromkeys(r["contender"] for r in rows):
        pts = sorted((r["params"], r["setup"], r["median"]) for r in rows if r["contender"] == name)
        xs = [p[0] for p in pts]
        if any(p[1] for p in pts):
            ax1.loglog(xs, [p[1] for p in pts], "o-", label=name)
        ax2.loglog(xs, [p[2] for p in pts], "o-", label=name)
    ax1.set(xlabel="parameters", ylabel="seconds", title="setup (derive + compile)")
    ax2.set(xlabel="parameters", ylabel="seconds", title="one step, batch 100")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("2-h-h-1 tanh MLP, h = 4 ... 64")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_doc(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, rest = doc.split(START, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{START}\n{text}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and sizes")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHES)}")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    ap.add_argument(
        "--write", action="store_true", help="write docs/ even with --only (replaces the tables)"
    )
    ap.add_argument("--threads", type=int, default=1, help="BLAS/XLA threads (0: defaults)")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)  # NAME:H, one setup
    args = ap.parse_args(argv)
    if args.child:
        name, h = args.child.rsplit(":", 1)
        child_setup(name, int(h))
        return 0
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {', '.join(BENCHES)}")
    # a fresh kernel cache: the C backend's setup times include compiling
    cache = tempfile.TemporaryDirectory(prefix="symgrad-bench-")
    os.environ["XDG_CACHE_HOME"] = cache.name
    if peers.have("torch"):
        import torch

        torch.set_num_threads(1)  # threads only fight the other contenders on a small machine
        NOTES.append("PyTorch runs with torch.set_num_threads(1).")
    pools = str(THREADS) if THREADS else "the libraries' defaults"
    NOTES.append(f"BLAS and XLA thread pools: {pools} (--threads).")
    t0 = time.perf_counter()
    for name in names:
        BENCHES[name](args.quick)
    text = markdown(args, time.perf_counter() - t0)
    print(text)
    if not args.no_write and (args.write or not args.only):
        write_doc(text)
        plot(PLOT)
        print(f"wrote {DOC.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
