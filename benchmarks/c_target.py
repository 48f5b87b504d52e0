"""The C target against the NumPy target and JAX: demo step, and compile/run scaling by width.

Usage::

    python benchmarks/c_target.py demo                  # micrograd demo step, peers in one run
    python benchmarks/c_target.py scaling 16 64 256     # one subprocess per width
    python benchmarks/c_target.py width 256 tanh square # one width (what `scaling` runs)
    python benchmarks/c_target.py width 64 relu hinge none  # reduce=None: every sample's values

``--threads N`` (default 1, as benchmarks/run.py) sizes BLAS's and XLA's thread pools: the C
kernel is single-threaded, and on the shared 2-core machine OpenBLAS's spinning threads made the
NumPy target's step vary 50x between runs.

``demo``: 2-16-16-1 ReLU MLP, batch 100, hinge loss with micrograd's L2 term *inside* the
differentiated loss (per sample: hinge + ALPHA * sum(p**2); its batch mean is the peers' loss),
one training step (value + gradient + update) per call; symgrad's C and NumPy targets, JAX jit
and hand-written NumPy alternate within every repetition; medians.

``width``: builds the batch-mean loss and gradient of a 2-h-h-1 MLP for the C target in a fresh
cache and reports the number of statements, symgrad's time to derive and generate, the C build's
wall time, the compilers' CPU time (``getrusage(RUSAGE_CHILDREN)``) and peak memory (the largest
compiler process, measured by ``/usr/bin/time`` through ``$CC``), the kind of kernel ("packed":
loops over a network's layers, codegen/c_pack.py; "scalar"/"simd": one statement per node), and
the step time of the C and NumPy targets (medians, interleaved).
The machine is shared: compare ratios from one run, not absolute times across runs.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import threads  # noqa: E402  (before NumPy and JAX size their thread pools)

THREADS = threads.pin_from_argv()

import numpy as np  # noqa: E402
import peers  # noqa: E402
import sympy as sp  # noqa: E402
import workloads as wl  # noqa: E402

from symgrad import value_and_grad  # noqa: E402
from symgrad.construct import add, mul  # noqa: E402


def interleaved(contenders: dict, reps: int = 15, budget: float = 0.05) -> dict:
    """Median seconds per call of each contender, alternating within every repetition."""
    numbers = {}
    for name, fn in contenders.items():
        fn()
        t0 = time.perf_counter()
        fn()
        numbers[name] = max(1, int(budget / max(time.perf_counter() - t0, 1e-9)))
    times: dict[str, list] = {name: [] for name in contenders}
    for _ in range(reps):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            for _ in range(numbers[name]):
                fn()
            times[name].append((time.perf_counter() - t0) / numbers[name])
    return {name: statistics.median(ts) for name, ts in times.items()}


def l2_loss(sizes: list[int], act: str, loss: str):
    """Per-sample loss with the L2 term inside: loss + ALPHA * sum(p**2) (mean = the peers')."""
    e, params, ins = wl.mlp_loss(sizes, act, loss)
    l2 = mul(sp.Float(peers.ALPHA), add([sp.Pow(q, 2, evaluate=False) for q in params]))
    return add([e, l2]), params, ins


def symgrad_step(f, X, y, p):
    x0, x1 = np.ascontiguousarray(X[:, 0]), np.ascontiguousarray(X[:, 1])

    def step():
        value, grad = f(x0, x1, y, p)  # batch means of the loss with its L2 term
        return p - peers.LR * grad, value

    return step


def per_sample(f, X, y, p):
    x0, x1 = np.ascontiguousarray(X[:, 0]), np.ascontiguousarray(X[:, 1])
    return lambda: f(x0, x1, y, p)


def demo() -> None:
    sizes = [2, 16, 16, 1]
    X, y = wl.moons(100)
    e, params, ins = l2_loss(sizes, "relu", "hinge")
    p = wl.init_params(len(params))
    contenders, setup = {}, {}
    for backend in ("c", "numpy"):
        t0 = time.perf_counter()
        f = value_and_grad(e, params, [*ins, params], backend=backend, reduce="mean")
        setup[f"symgrad {backend}"] = time.perf_counter() - t0
        contenders[f"symgrad {backend}"] = symgrad_step(f, X, y, p)
    if peers.have("jax"):
        setup["jax jit"], contenders["jax jit"] = peers.mlp_jax(sizes, X, y, p, "relu", "hinge")
    setup["hand numpy"], contenders["hand numpy"] = peers.mlp_hand(sizes, X, y, p, "relu", "hinge")
    ref = contenders["symgrad numpy"]()
    for fn in contenders.values():  # every contender takes the same step
        new_p, value = fn()
        np.testing.assert_allclose(np.asarray(new_p), ref[0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(float(value), float(ref[1]), rtol=1e-9)
    med = interleaved(contenders)
    base = med["symgrad c"]
    print("| contender | step (us, median) | vs symgrad C | setup (s) |")
    print("| --- | ---: | ---: | ---: |")
    for name, t in sorted(med.items(), key=lambda kv: kv[1]):
        s = setup.get(name)
        shown = "-" if s is None else f"{s:.2f}"
        print(f"| {name} | {t * 1e6:.1f} | {t / base:.2f}x | {shown} |")


def width(h: int, act: str, loss: str, reduce: str | None = "mean") -> None:
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="symgrad-bench-")  # a cold build
    # each compiler process's peak memory, from /usr/bin/time (getrusage(RUSAGE_CHILDREN) also
    # counts a fork of this Python process, as large as the NumPy target it holds)
    log = Path(os.environ["XDG_CACHE_HOME"]) / "cc-peak-kb"
    if Path("/usr/bin/time").exists():
        os.environ["CC"] = f"/usr/bin/time -f %M -a -o {log} {os.environ.get('CC', 'cc')}"
    sizes = [2, h, h, 1]
    X, y = wl.moons(100)
    t0 = time.perf_counter()
    e, params, ins = l2_loss(sizes, act, loss) if loss == "hinge" else wl.mlp_loss(sizes, act, loss)
    t1 = time.perf_counter()
    f_np = value_and_grad(e, params, [*ins, params], reduce=reduce)
    t2 = time.perf_counter()
    from symgrad.codegen import c_build

    calls = []
    real = c_build.build_library

    def timed(*args, **kwargs):
        s = time.perf_counter()
        out = real(*args, **kwargs)
        calls.append(time.perf_counter() - s)
        return out

    c_build.build_library = timed
    import symgrad.codegen.c as c_mod

    c_mod.c_build.build_library = timed
    generated = []

    def counting(real):
        def generate(*args, **kwargs):
            program = real(*args, **kwargs)
            if program is not None:  # the packed generator's None: the scalar one runs
                generated.append(program)
            return program

        return generate

    c_mod.generate = counting(c_mod.generate)
    c_mod.generate_packed = counting(c_mod.generate_packed)
    t3 = time.perf_counter()
    f_c = value_and_grad(e, params, [*ins, params], backend="c", reduce=reduce)
    t4 = time.perf_counter()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    program = generated[0]
    levels = c_mod._levels(program.units, c_build.jobs())
    p = wl.init_params(len(params))
    # a training step of the batch means; every sample's value and gradient for reduce=None
    step = symgrad_step if reduce == "mean" else per_sample
    med = interleaved({"c": step(f_c, X, y, p), "numpy": step(f_np, X, y, p)}, reps=7)
    a, b = step(f_c, X, y, p)(), step(f_np, X, y, p)()
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12)
    count = {lv: levels.count(lv) for lv in sorted(set(levels))}
    # one line per compiler run; a failing probe (a flag this compiler lacks) adds a status line
    lines = log.read_text().splitlines() if log.exists() else []
    peaks = [int(v) for v in lines if v.strip().isdigit()]
    peak = f"{max(peaks) / 1024:.0f}" if peaks else f"{ru.ru_maxrss / 1024:.0f} (rusage)"
    print(
        f"| 2-{h}-{h}-1 {act}/{loss} | {len(params)} | {program.n_stmts} | "
        f"{len(program.units)} {count} | {_loop(program)} | "
        f"{t1 - t0:.1f} | {t2 - t1:.1f} | {t4 - t3 - calls[0]:.1f} | {calls[0]:.1f} | "
        f"{ru.ru_utime + ru.ru_stime:.1f} | {peak} | "
        f"{med['c'] * 1e3:.3f} | {med['numpy'] * 1e3:.3f} | {med['numpy'] / med['c']:.2f}x |",
        flush=True,
    )


def _loop(program) -> str:
    kind = program.units[0][1]
    return kind if kind == "packed" else ("simd" if program.simd else "scalar")


HEADER = (
    "| workload | params | statements | units {level: count} | loop | build loss (s) | "
    "NumPy target setup (s) | C generate (s) | C build wall (s) | compiler CPU (s) | "
    "compiler peak RSS (MB) | C step (ms) | NumPy step (ms) | C speed-up |\n"
    "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
    "---: |"
)


def _positional(argv: list[str]) -> list[str]:
    # the arguments without --threads N (read by threads.pin_from_argv)
    out: list[str] = []
    skip = False
    for a in argv:
        if skip or a.startswith("--threads="):
            skip = False
            continue
        skip = a == "--threads"
        if not skip:
            out.append(a)
    return out


def main(argv: list[str]) -> int:
    argv = _positional(argv)
    if not argv or argv[0] == "demo":
        demo()
    elif argv[0] == "width":
        width(int(argv[1]), argv[2], argv[3], None if argv[4:5] == ["none"] else "mean")
    elif argv[0] == "scaling":
        print(HEADER, flush=True)
        for h in [int(a) for a in argv[1:]] or [16, 32, 64, 128, 256]:
            for act, loss in (("tanh", "square"), ("relu", "hinge")):
                cmd = [sys.executable, __file__, "width", str(h), act, loss, "--threads"]
                cmd.append(str(THREADS))
                subprocess.run(cmd, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
