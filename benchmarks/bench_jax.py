"""symgrad's JAX target against hand-written ``jax.jit`` on the same training steps.

    python benchmarks/bench_jax.py           # both workloads, printed
    python benchmarks/bench_jax.py --write   # also saves benchmarks/bench_jax_results.md

Workloads (float64, JAX's 64-bit mode on, as in peers.py):

* ``demo``: micrograd's demo step (2-16-16-1 ReLU MLP, hinge loss with the L2 term inside the
  loss, batch 100, SGD). Hand-written: ``peers.mlp_jax``. symgrad: the scalar path,
  ``value_and_grad(loss + ALPHA * sum(p^2), params, [x1, x2, y, params], backend="jax",
  reduce="mean")`` called inside the user's own ``jax.jit`` step.
* ``784``: the 784-256-10 tanh MLP with softmax cross-entropy, batch 256, SGD. Hand-written:
  ``bench_matrix.make_jax``. symgrad: the matrix path, ``matrix.codegen.value_and_grad(...,
  backend="jax")`` inside the user's ``jax.jit`` step.

Setup is split into symgrad's derive + compile (Python) and the first call of the jitted step
(tracing + XLA compilation), which both sides pay. Steps are timed interleaved, medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import bench_matrix  # noqa: E402
import peers  # noqa: E402
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

    hand_first, hand = peers.mlp_jax(sizes, X, y, p, "relu", "hinge")
    ref = hand()
    flat = np.concatenate(
        [
            np.hstack([np.asarray(W), np.asarray(b)]).ravel()
            for W, b in zip(out[0][0::2], out[0][1::2], strict=True)
        ]
    )
    ok = np.allclose(flat, np.asarray(ref[0]), rtol=1e-9, atol=1e-12)
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

    t0 = time.perf_counter()
    hand = bench_matrix.make_jax(sizes, "ce", 0)
    h0 = hand(X, Y)
    hand_first = time.perf_counter() - t0
    ok = abs(float(v0) - float(h0)) < 1e-9 * max(1.0, abs(float(h0)))
    return (
        {"symgrad jax": mine, "hand jax.jit": lambda: hand(X, Y)},
        {
            "symgrad derive+compile": derive,
            "symgrad first call (trace+XLA)": first,
            "hand first call (trace+XLA)": hand_first,
        },
        ok,
    )


def interleave(contenders, reps):
    for fn in contenders.values():
        for _ in range(5):
            fn()
    times = {k: [] for k in contenders}
    order = np.random.default_rng(0)
    for _ in range(reps):
        for k in order.permutation(list(contenders)):
            t = time.perf_counter()
            contenders[k]()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=201)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    jax, _ = peers._jax()
    devices = ", ".join(sorted({d.platform for d in jax.devices()}))
    gpu = any(d.platform == "gpu" for d in jax.devices())
    lines = [
        f"jax {peers.version('jax')} on {devices} ({len(jax.devices())} device(s)); "
        f"GPU: {'yes' if gpu else 'none on this machine'}; {peers.JAX_NOTE}",
        "",
        "| workload | symgrad jax step | hand jax.jit step | ratio | same numbers | setup |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    claims = []
    workloads = (
        ("demo 2-16-16-1, scalar path", demo, a.reps),
        ("demo 2-16-16-1, matrix path", demo_matrix, a.reps),
        ("784-256-10, matrix path", mlp784, a.reps // 4),
    )
    for name, make, reps in workloads:
        contenders, setup, ok = make()
        t = interleave(contenders, reps)
        ratio = t["symgrad jax"] / t["hand jax.jit"]
        shown = "; ".join(f"{k} {v * 1e3:.0f} ms" for k, v in setup.items())
        lines.append(
            f"| {name} | {t['symgrad jax'] * 1e6:.1f} us | {t['hand jax.jit'] * 1e6:.1f} us | "
            f"{ratio:.2f}x | {'yes' if ok else 'NO'} | {shown} |"
        )
        verdict = "PASS" if ratio <= TARGET and ok else "FAIL"
        claims.append(
            f"claim: {name}: step within {TARGET}x of hand jax.jit: {ratio:.2f}x {verdict}"
        )
    text = "\n".join([*lines, "", *claims]) + "\n"
    print(text, end="")
    if a.write:
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(
            "# symgrad's JAX target vs hand-written jax.jit (measured by bench_jax.py)\n\n"
            "Medians of interleaved steps on a shared 2-core machine.\n\n" + text
        )
        tmp.replace(RESULTS)  # atomic


if __name__ == "__main__":
    main()
