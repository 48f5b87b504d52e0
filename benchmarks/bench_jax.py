"""symgrad's JAX target against hand-written ``jax.jit`` on the same training steps.

    python benchmarks/bench_jax.py           # all workloads, printed
    python benchmarks/bench_jax.py --only demo --rounds 7 --reps 600
    python benchmarks/bench_jax.py --write   # also appends a dated section to
                                             # benchmarks/bench_jax_results.md

Workloads (float64, JAX's 64-bit mode on, as in peers.py):

* ``demo``: micrograd's demo step (2-16-16-1 ReLU MLP, hinge loss with the L2 term inside the
  loss, batch 100, SGD). Hand-written: ``peers.mlp_jax``. symgrad: the scalar path,
  ``value_and_grad(loss + ALPHA * sum(p^2), params, [x1, x2, y, params], backend="jax",
  reduce="mean")`` called inside the user's own ``jax.jit`` step.
* ``demo``, matrix path: the same network as ``symgrad.nn.Dense`` layers (the L2 term in the
  loss), three symgrad contenders: ``matrix.value_and_grad(..., backend="jax")`` inside the
  user's own ``jax.jit`` step (``symgrad jax``); ``matrix.sgd_step(..., backend="jax")``,
  symgrad's own step, one jitted function with the update inside, parameters as separate
  arrays (``symgrad sgd_step``); the same with ``flat=True``, the parameters as one vector
  like the hand-written step's (``symgrad sgd_step flat``).
* ``784``: the 784-256-10 tanh MLP with softmax cross-entropy, batch 256, SGD. Hand-written:
  ``bench_matrix.make_jax`` (parameters as separate arrays; its inputs on the device once, as
  for symgrad; it used to get NumPy arrays, converted on every call). symgrad: the matrix
  path, the same three contenders.

Setup is split into symgrad's derive + compile (Python) and the first call of the jitted step
(tracing + XLA compilation), which both sides pay. Steps are timed in ``--rounds`` rounds of
interleaved repetitions (:mod:`timing`: a fresh random order per repetition, CPU and wall
time); each round gives the median of the paired per-repetition CPU-time ratios, and the table
shows the median over rounds with its min-max spread. One thread for BLAS and XLA
(``--threads``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import threads  # noqa: E402

threads.pin_from_argv()  # before NumPy and JAX size their thread pools (default: 1 thread)

import bench_matrix  # noqa: E402
import numpy as np  # noqa: E402
import peers  # noqa: E402
import timing  # noqa: E402
import workloads as wl  # noqa: E402

RESULTS = HERE / "bench_jax_results.md"
TARGET = 1.1  # symgrad's step within this factor of hand-written jax.jit


def _first_call(step, *args):
    t0 = time.perf_counter()
    out = step(*args)
    peers._jax()[0].block_until_ready(out)
    return time.perf_counter() - t0, out


def _setup(derive: float, first: float, hand_first: float) -> dict[str, float]:
    return {
        "symgrad derive+compile": derive,
        "symgrad first call (trace+XLA)": first,
        "hand first call (trace+XLA)": hand_first,
    }


def demo():
    jax, jnp = peers._jax()
    import sympy as sp

    from symgrad import value_and_grad
    from symgrad.construct import add, mul, power

    sizes = [2, 16, 16, 1]
    X, y = wl.moons(100)
    p = wl.init_params(337)
    t0 = time.perf_counter()
    e, params, ins = wl.mlp_loss(sizes, "relu", "hinge")
    l2 = add([power(s, 2) for s in params])
    total = add([e, mul(sp.Float(peers.ALPHA), l2)])
    f = value_and_grad(total, params, [*ins, params], backend="jax", reduce="mean")
    derive = time.perf_counter() - t0

    @jax.jit
    def train(p, x0, x1, y):
        value, g = f(x0, x1, y, p)
        return p - peers.LR * g, value

    args = (jnp.asarray(p), jnp.asarray(X[:, 0]), jnp.asarray(X[:, 1]), jnp.asarray(y))
    first, out = _first_call(train, *args)

    def mine():
        return jax.block_until_ready(train(*args))

    hand_first, hand = peers.mlp_jax(sizes, X, y, p, "relu", "hinge")
    ref = hand()
    ok = np.allclose(np.asarray(out[0]), np.asarray(ref[0]), rtol=1e-9, atol=1e-12)
    ok = ok and abs(float(out[1]) - float(ref[1])) < 1e-9
    return (
        {"symgrad jax": mine, "hand jax.jit": hand},
        {
            "symgrad derive+compile": derive,
            "symgrad first call (trace+XLA)": first,
            "hand first call (trace+XLA)": hand_first,
        },
        ok,
    )


def demo_matrix():
    """The demo step through the matrix path (layers as matrices), the L2 term in the loss."""
    jax, jnp = peers._jax()
    import sympy as sp

    from symgrad.matrix import expr as mx
    from symgrad.matrix import sgd_step
    from symgrad.matrix.codegen import value_and_grad
    from symgrad.nn.dense import Dense, loss_expression

    sizes = [2, 16, 16, 1]
    X, y = wl.moons(100)
    p = wl.init_params(337)
    t0 = time.perf_counter()
    net = Dense(2, sizes[1:], activation="relu", seed=0)
    hinge, Xs, Ys = loss_expression(net, "hinge")
    params = net.parameter_symbols()
    l2 = sum((mx.sumsq(q) for q in params), sp.S.Zero)
    loss = hinge + sp.Float(peers.ALPHA) * l2
    f = value_and_grad(loss, params, [*params, Xs, Ys], backend="jax")
    derive = time.perf_counter() - t0
    step = sgd_step(loss, params, [*params, Xs, Ys], backend="jax")
    flat_step = sgd_step(loss, params, [*params, Xs, Ys], flat=True, backend="jax")

    @jax.jit
    def train(ps, X, Y):
        value, grads = f(*ps, X, Y)
        return [q - peers.LR * g for q, g in zip(ps, grads, strict=True)], value

    # micrograd's parameter vector (per neuron: weights, then bias) as the layers' W and b
    ps = []
    for W, b in peers._unflatten(p, sizes, np):
        ps += [jnp.asarray(W), jnp.asarray(b[:, None])]
    args = (ps, jnp.asarray(X.T), jnp.asarray(y[None, :]))
    first, out = _first_call(train, *args)

    def mine():
        return jax.block_until_ready(train(*args))

    # symgrad's own step: one jitted function, the update inside, parameter buffers donated
    state = {"p": [jnp.array(q) for q in ps]}
    step_first, (v1, new) = _first_call(step, *state["p"], args[1], args[2], peers.LR)
    state["p"] = list(new)
    state["theta"] = jnp.concatenate([jnp.ravel(q) for q in ps])
    flat_first, (v2, theta) = _first_call(flat_step, state["theta"], args[1], args[2], peers.LR)

    def mine_step():
        value, state["p"] = step(*state["p"], args[1], args[2], peers.LR)
        return jax.block_until_ready(value)

    def mine_flat():
        value, state["theta"] = flat_step(state["theta"], args[1], args[2], peers.LR)
        return jax.block_until_ready(value)

    hand_first, hand = peers.mlp_jax(sizes, X, y, p, "relu", "hinge")
    ref = hand()
    ok = True
    sizes_flat = [int(np.prod(q.shape)) for q in ps]
    unflat = np.split(np.asarray(theta), np.cumsum(sizes_flat)[:-1])
    unflat = [u.reshape(q.shape) for u, q in zip(unflat, ps, strict=True)]
    for params_out, value in ((out[0], out[1]), (new, v1), (unflat, v2)):
        flat = np.concatenate(
            [
                np.hstack([np.asarray(W), np.asarray(b)]).ravel()
                for W, b in zip(params_out[0::2], params_out[1::2], strict=True)
            ]
        )
        ok = ok and np.allclose(flat, np.asarray(ref[0]), rtol=1e-9, atol=1e-12)
        ok = ok and abs(float(value) - float(ref[1])) < 1e-9
    return (
        {
            "symgrad jax": mine,
            "symgrad sgd_step": mine_step,
            "symgrad sgd_step flat": mine_flat,
            "hand jax.jit": hand,
        },
        {
            "symgrad derive+compile": derive,
            "symgrad first call (trace+XLA)": first,
            "sgd_step first call": step_first,
            "sgd_step flat first call": flat_first,
            "hand first call (trace+XLA)": hand_first,
        },
        ok,
    )


def mlp784():
    jax, jnp = peers._jax()

    from symgrad.matrix.codegen import value_and_grad
    from symgrad.nn.dense import Dense, loss_expression

    sizes, batch = (784, 256, 10), 256
    X, Y = bench_matrix._data(sizes, "ce", batch)
    t0 = time.perf_counter()
    net = Dense(sizes[0], list(sizes[1:]), activation="tanh", seed=0)
    loss, Xs, Ys = loss_expression(net, "softmax_cross_entropy")
    params = net.parameter_symbols()
    f = value_and_grad(loss, params, [*params, Xs, Ys], backend="jax")
    derive = time.perf_counter() - t0
    lr = bench_matrix.LR
    from symgrad.matrix import sgd_step

    step = sgd_step(loss, params, [*params, Xs, Ys], backend="jax")
    flat_step = sgd_step(loss, params, [*params, Xs, Ys], flat=True, backend="jax")

    @jax.jit
    def train(ps, X, Y):
        value, grads = f(*ps, X, Y)
        return value, [p - lr * g for p, g in zip(ps, grads, strict=True)]

    # the hand-written version starts from its own initialisation: copy it, so both compute
    # the same numbers (checked below)
    rng = np.random.default_rng(0)
    init = []
    for i in range(len(sizes) - 1):
        init.append(rng.uniform(-1, 1, (sizes[i + 1], sizes[i])) / np.sqrt(sizes[i]))
        init.append(np.zeros((sizes[i + 1], 1)))
    state = {"p": [jnp.asarray(a) for a in init]}
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
    first, (v0, _) = _first_call(train, state["p"], Xj, Yj)

    def mine():
        value, state["p"] = train(state["p"], Xj, Yj)
        return jax.block_until_ready(value)

    state["s"] = [jnp.asarray(a) for a in init]
    step_first, (v1, state["s"]) = _first_call(step, *state["s"], Xj, Yj, lr)

    def mine_step():
        value, state["s"] = step(*state["s"], Xj, Yj, lr)
        return jax.block_until_ready(value)

    state["theta"] = jnp.concatenate([jnp.ravel(jnp.asarray(a)) for a in init])
    flat_first, (v2, state["theta"]) = _first_call(flat_step, state["theta"], Xj, Yj, lr)

    def mine_flat():
        value, state["theta"] = flat_step(state["theta"], Xj, Yj, lr)
        return jax.block_until_ready(value)

    t0 = time.perf_counter()
    hand = bench_matrix.make_jax(sizes, "ce", 0)
    h0 = hand(Xj, Yj)
    hand_first = time.perf_counter() - t0
    ok = all(abs(float(v) - float(h0)) < 1e-9 * max(1.0, abs(float(h0))) for v in (v0, v1, v2))
    return (
        {
            "symgrad jax": mine,
            "symgrad sgd_step": mine_step,
            "symgrad sgd_step flat": mine_flat,
            "hand jax.jit": lambda: hand(Xj, Yj),
        },
        {
            "symgrad derive+compile": derive,
            "symgrad first call (trace+XLA)": first,
            "sgd_step first call": step_first,
            "sgd_step flat first call": flat_first,
            "hand first call (trace+XLA)": hand_first,
        },
        ok,
    )


def measure(contenders, reps, rounds):
    """Per round, :func:`timing.interleave` (every repetition runs each contender once, in a
    fresh random order, each measurement a batch of calls of about 3 ms); ``(times, ratios)``
    with, per clock (``wall``, ``cpu``), each contender's median time per round and each
    symgrad contender's median of its per-repetition ratios to the hand-written step (paired,
    so drift between repetitions cancels).

    Wall time is the one to quote for JAX: XLA runs parts of a step on a second thread, so the
    process's CPU time adds both cores' work (it can exceed the wall time).
    """
    clocks = ("wall", "cpu")
    times = {c: {k: [] for k in contenders} for c in clocks}
    ratios = {c: {k: [] for k in contenders if k != "hand jax.jit"} for c in clocks}
    for _ in range(rounds):
        t = timing.interleave(contenders, reps, sample=0.003, warmup=5)
        for c in clocks:
            for k in contenders:
                times[c][k].append(timing.median(t, k, c))
            for k in ratios[c]:
                ratios[c][k].append(timing.ratio(t, k, "hand jax.jit", c))
    return times, ratios


def _spread(values):
    return f"{statistics.median(values):.3f}x ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200, help="repetitions per round (demo)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="threads for BLAS and XLA")
    ap.add_argument("--only", default="", help="run only the workloads whose name has this")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    jax, _ = peers._jax()
    devices = ", ".join(sorted({d.platform for d in jax.devices()}))
    gpu = any(d.platform == "gpu" for d in jax.devices())
    lines = [
        f"jax {peers.version('jax')} on {devices} ({len(jax.devices())} device(s)); "
        f"GPU: {'yes' if gpu else 'none on this machine'}; {peers.JAX_NOTE}; "
        f"{a.rounds} rounds of interleaved repetitions; medians; a ratio is the median over "
        "rounds of each round's median of paired per-repetition ratios (min-max over rounds)",
        "",
        "| workload | contender | step (wall) | ratio (wall) | step (CPU) | ratio (CPU) | "
        "same numbers | setup |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    claims = []
    workloads = (
        ("demo 2-16-16-1, scalar path", demo, a.reps),
        ("demo 2-16-16-1, matrix path", demo_matrix, a.reps),
        ("784-256-10, matrix path", mlp784, max(10, a.reps // 10)),
    )
    for name, make, reps in workloads:
        if a.only not in name:
            continue
        contenders, setup, ok = make()
        times, ratios = measure(contenders, reps, a.rounds)
        shown = "; ".join(f"{k} {v * 1e3:.0f} ms" for k, v in setup.items())
        for k in contenders:
            cells = []
            for c in ("wall", "cpu"):
                cells.append(f"{statistics.median(times[c][k]) * 1e6:.1f} us")
                cells.append(_spread(ratios[c][k]) if k in ratios[c] else "")
            lines.append(
                f"| {name} | {k} | {' | '.join(cells)} | {'yes' if ok else 'NO'} | "
                f"{shown if k == 'hand jax.jit' else ''} |"
            )
        for k, r in ratios["wall"].items():
            r = statistics.median(r)
            verdict = "PASS" if r <= TARGET and ok else "FAIL"
            claims.append(
                f"claim: {name}, {k}: step within {TARGET}x of hand jax.jit (wall): "
                f"{r:.3f}x {verdict}"
            )
    text = "\n".join([*lines, "", *claims]) + "\n"
    print(text, end="")
    if a.write:  # a new dated section after the earlier ones
        old = (
            RESULTS.read_text()
            if RESULTS.exists()
            else ("# symgrad's JAX target vs hand-written jax.jit (measured by bench_jax.py)\n")
        )
        day = time.strftime("%Y-%m-%d", time.gmtime())
        cmd = " ".join(["python benchmarks/bench_jax.py", *sys.argv[1:]])
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(f"{old.rstrip()}\n\n## {day}: `{cmd}`\n\n{text}")
        tmp.replace(RESULTS)  # atomic


if __name__ == "__main__":
    main()
