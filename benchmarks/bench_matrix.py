"""One training step (forward + backward + SGD update) through symgrad's compiled matrix path vs
hand-written NumPy, the step's five matrix products alone, PyTorch eager and JAX jit. By hand:

    PYTHONPATH=. python benchmarks/bench_matrix.py [--reps 300] [--threads 1] [--only 784]
        [--alone ROUNDS] [--no-peers]

``--threads`` sizes the thread pools of BLAS (NumPy), PyTorch and XLA alike (default 1: on a
small shared machine, competing thread pools make multi-threaded timings meaningless).

The network's loss is built from ``symgrad.matrix`` expressions and compiled once (the batch
size is a symbol): ``value_and_grad`` for the value-and-gradient contenders; ``symgrad step`` is
:func:`symgrad.matrix.sgd_step` (the update compiled in: in place, each weight gradient into its
weights through BLAS ``gemm`` with ``beta = 1``); ``symgrad grads, -=`` compiles the gradients
times a learning-rate symbol and subtracts them outside, ``p -= g`` (the hand-written step
scales its fresh gradients in place and subtracts them). What ``symgrad.nn.Trainer`` adds to a
step is measured by ``bench_trainer.py``. All contenders get the same data, float64 everywhere.
``5 matmuls`` is the step's five matrix products alone on ready operands, each into a fresh
array as in every other contender (no ``out=``): the floor of any implementation that leaves
the products to BLAS.

Phase 0 (``--alone ROUNDS``) runs each NumPy-side contender in a process of its own (what a
user running only that step sees: nothing else shapes the allocator or the caches). Phase 1
times symgrad, hand-written NumPy and the five products interleaved in one process; phase 2
adds PyTorch eager and JAX jit. Within a phase every repetition runs each contender once in a
fresh random order; medians of wall and CPU time per step (:mod:`timing`), and ratios as
medians of per-repetition ratios. On a shared machine the CPU-time ratios are the ones to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import threads

THREADS = threads.pin_from_argv()  # before NumPy / PyTorch / JAX are imported

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402
import timing  # noqa: E402

from symgrad import matrix as mx  # noqa: E402

LR = 0.01
BATCH = sp.Symbol("B", integer=True, positive=True)


def init(sizes, seed=0):
    """Weights uniform in +-1/sqrt(fan-in), zero biases (biases are columns)."""
    rng = np.random.default_rng(seed)
    ws = [
        rng.uniform(-1, 1, (sizes[i + 1], sizes[i])) / np.sqrt(sizes[i])
        for i in range(len(sizes) - 1)
    ]
    return ws, [np.zeros((w.shape[0], 1)) for w in ws]


def symgrad_value_and_grad(sizes, loss, scaled=False, step=False):
    """The compiled ``(loss, [dW1, db1, dW2, ...])`` of a tanh MLP, samples as columns.

    With ``scaled``, the gradients come times a learning rate ``lr`` passed as the last
    argument: the compiler applies ``lr / B`` to the smallest operand (the 256 x 10 ``W_2^T``
    here), so the SGD update is one pass ``p -= g`` over the weights instead of two. With
    ``step``, :func:`symgrad.matrix.sgd_step`: the update compiled in (each weight gradient
    goes into its weights through BLAS ``gemm`` with ``beta = 1``).
    """
    params = []
    h = X = sp.MatrixSymbol("X", sizes[0], BATCH)
    for i in range(len(sizes) - 1):
        W = sp.MatrixSymbol(f"W_{i + 1}", sizes[i + 1], sizes[i])
        b = sp.MatrixSymbol(f"b_{i + 1}", sizes[i + 1], 1)
        params += [W, b]
        h = mx.add(mx.matmul(W, h), mx.broadcast(b, (sizes[i + 1], BATCH)))
        if i < len(sizes) - 2:
            h = mx.tanh(h)
    Y = sp.MatrixSymbol("Y", sizes[-1], BATCH)
    if loss == "mse":
        f = mx.sumsq(mx.sub(h, Y)) / BATCH
    else:
        f = (mx.sum(mx.logsumexp(h, axis=0)) - mx.sum(mx.hadamard(Y, h))) / BATCH
    if step:
        return mx.sgd_step(f, params, [*params, X, Y])
    if not scaled:
        return mx.value_and_grad(f, params, [*params, X, Y])
    lr = sp.Symbol("lr", positive=True)
    grads = [mx.scale(lr, g) for g in mx.grad(f, params)]
    return mx.compile_matrix([f, grads], [*params, X, Y, lr])


def sgd(params, grads):
    """The in-place SGD update both NumPy-side steps use.

    The gradients are fresh arrays owned by the step, so they are scaled in place: ``p -= LR * g``
    would allocate a third weight-sized array while the gradients are alive, which the allocator
    returns to the system and faults back in on every step (~900 page faults, ~20% of the
    784-256-10 step measured here).
    """
    for p, g in zip(params, grads, strict=True):
        g *= LR
        p -= g


def numpy_value_and_grad(ws, bs, X, Y, loss):
    """Hand-written NumPy backprop for a tanh MLP (samples as columns): ``(loss, grads)``."""
    hs, h = [X], X
    last = len(ws) - 1
    for i in range(len(ws)):
        z = ws[i] @ h + bs[i]
        h = np.tanh(z) if i < last else z
        hs.append(h)
    B = X.shape[1]
    if loss == "mse":
        r = h - Y
        value = np.sum(r * r) / B
        d = (2.0 / B) * r
    else:
        m = h.max(axis=0, keepdims=True)
        e = np.exp(h - m)
        se = e.sum(axis=0, keepdims=True)
        value = (np.sum(np.log(se) + m) - np.sum(Y * h)) / B
        d = (e / se - Y) / B
    grads = [None] * (2 * len(ws))
    for i in range(last, -1, -1):
        grads[2 * i] = d @ hs[i].T
        grads[2 * i + 1] = d.sum(axis=1, keepdims=True)
        if i:
            d = (1.0 - hs[i] * hs[i]) * (ws[i].T @ d)
    return value, grads


def make_torch(sizes, loss, seed):
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(seed)
    if THREADS:
        torch.set_num_threads(THREADS)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]).double())
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    lossf = torch.nn.MSELoss() if loss == "mse" else torch.nn.CrossEntropyLoss()

    def step(X, Y):  # torch wants samples as rows
        opt.zero_grad()
        out = net(X)
        value = lossf(out, Y)
        value.backward()
        opt.step()
        return value

    return step, torch


def make_jax(sizes, loss, seed):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(seed)
    params = [
        (
            jnp.asarray(rng.uniform(-1, 1, (sizes[i + 1], sizes[i])) / np.sqrt(sizes[i])),
            jnp.zeros((sizes[i + 1], 1)),
        )
        for i in range(len(sizes) - 1)
    ]

    def lossf(params, X, Y):
        h = X
        for i, (W, b) in enumerate(params):
            h = W @ h + b
            if i < len(params) - 1:
                h = jnp.tanh(h)
        if loss == "mse":
            return jnp.sum((h - Y) ** 2) / X.shape[1]
        return jnp.sum(jax.nn.logsumexp(h, axis=0) - jnp.sum(Y * h, axis=0)) / X.shape[1]

    @jax.jit
    def step(params, X, Y):
        value, g = jax.value_and_grad(lossf)(params, X, Y)
        return value, jax.tree_util.tree_map(lambda p, q: p - LR * q, params, g)

    state = {"p": params}

    def run(X, Y):
        value, state["p"] = step(state["p"], X, Y)
        value.block_until_ready()
        return value

    return run


def _data(sizes, loss, batch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(sizes[0], batch))
    if loss == "mse":
        Y = rng.normal(size=(sizes[-1], batch))
    else:
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)].T.copy()
    return X, Y


def _five_matmuls(ws, X, Y):
    """The floor of a one-hidden-layer step: its five matrix products alone, operands ready."""
    W1, W2 = ws
    h = np.tanh(W1 @ X)
    d2 = W2 @ h - Y
    d1 = (1 - h * h) * (W2.T @ d2)
    return lambda: (W1 @ X, W2 @ h, W2.T @ d2, d1 @ X.T, d2 @ h.T)


def _contenders(sizes, loss, batch, peers, only=None):
    """``(setup seconds, {name: step})``; ``only``: build just that contender, no cross-check
    (a process of its own: whatever else ran would change the allocator's state)."""
    X, Y = _data(sizes, loss, batch)
    t0 = time.perf_counter()
    fn = symgrad_value_and_grad(sizes, loss)
    setup = time.perf_counter() - t0
    fn_lr = symgrad_value_and_grad(sizes, loss, scaled=True)
    fn_step = symgrad_value_and_grad(sizes, loss, step=True)
    ws, bs = init(sizes)
    mine = [a.copy() for pair in zip(ws, bs, strict=True) for a in pair]  # W1, b1, W2, ...
    hand_ws, hand_bs = [w.copy() for w in ws], [b.copy() for b in bs]
    hand = [a for pair in zip(hand_ws, hand_bs, strict=True) for a in pair]
    if only is None:
        v_mine, g_mine = fn(*mine, X, Y)
        v_hand, g_hand = numpy_value_and_grad(hand_ws, hand_bs, X, Y, loss)
        assert np.isclose(v_mine, v_hand, rtol=1e-12), (v_mine, v_hand)
        stepped = [a.copy() for a in mine]
        assert np.isclose(fn_step(*stepped, X, Y, LR)[0], v_hand, rtol=1e-12)
        for a, b, c, d, p in zip(
            g_mine, g_hand, fn_lr(*mine, X, Y, LR)[1], stepped, mine, strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(c, LR * b, rtol=1e-9, atol=1e-14)
            np.testing.assert_allclose(d, p - LR * b, rtol=1e-9, atol=1e-14)

    def symgrad_step():
        return fn_step(*mine, X, Y, LR)[0]

    def symgrad_update_outside():
        value, steps = fn_lr(*mine, X, Y, LR)
        for p, g in zip(mine, steps, strict=True):
            p -= g
        return value

    def numpy_step():
        value, grads = numpy_value_and_grad(hand_ws, hand_bs, X, Y, loss)
        sgd(hand, grads)
        return value

    contenders = {
        "symgrad step": symgrad_step,
        "numpy step": numpy_step,
        "symgrad grads, -= ": symgrad_update_outside,
        "symgrad value+grad": lambda: fn(*mine, X, Y),
        "numpy value+grad": lambda: numpy_value_and_grad(hand_ws, hand_bs, X, Y, loss),
    }
    if len(sizes) == 3 and only in (None, "5 matmuls"):
        contenders["5 matmuls"] = _five_matmuls(ws, X, Y)
    if only is not None and only.endswith(", minibatches"):
        # a training loop: each step first gathers a random minibatch of a larger data set
        rng = np.random.default_rng(1)
        X_all, Y_all = _data(sizes, loss, 20000)
        X_rows, Y_rows = X_all.T.copy(), Y_all.T.copy()  # samples as rows, as data sets come

        step = contenders[only.removesuffix(", minibatches")]

        def minibatch_step():
            idx = rng.choice(len(X_rows), batch, replace=False)
            X[...], Y[...] = X_rows[idx].T, Y_rows[idx].T  # a fresh gathered array, freed
            return step()

        return setup, {only: minibatch_step}
    if only is not None:
        return setup, {only: contenders[only]}
    if peers:
        made = make_torch(sizes, loss, 0)
        if made:
            tstep, torch = made
            Xt = torch.from_numpy(X.T.copy())
            Yt = torch.from_numpy(Y.T.copy()) if loss == "mse" else torch.from_numpy(Y.argmax(0))
            contenders["torch eager step"] = lambda: tstep(Xt, Yt)
        jrun = make_jax(sizes, loss, 0)
        if jrun:
            import jax.numpy as jnp

            Xj, Yj = jnp.asarray(X), jnp.asarray(Y)  # on the device once, as a JAX user keeps them
            contenders["jax jit step"] = lambda: jrun(Xj, Yj)
    return setup, contenders


def bench(name, sizes, loss, batch, reps, peers):
    setup, contenders = _contenders(sizes, loss, batch, peers)
    t = timing.interleave(contenders, reps, sample=0.002, warmup=5)
    print(f"\n{name} (batch {batch}), {'with' if peers else 'without'} peers in the process")
    print(f"  symgrad setup (derive + compile): {setup * 1e3:.0f} ms; {reps} repetitions")
    print(
        f"  {'contender':20s} {'CPU median':>11s} {'wall median':>12s} faults  ratios (CPU; wall)"
    )
    for k in contenders:
        cpu, wall = timing.median(t, k) * 1e6, timing.median(t, k, "wall") * 1e6
        faults = timing.median(t, k, "faults")
        line = f"  {k:20s} {cpu:9.1f} us {wall:9.1f} us {faults:6.0f}"
        base = "symgrad value+grad" if k in ("5 matmuls", "numpy value+grad") else "symgrad step"
        if k not in ("symgrad step", "symgrad value+grad"):
            line += (
                f"  {base}/this = {timing.ratio(t, base, k):.3f}x; "
                f"{timing.ratio(t, base, k, 'wall'):.3f}x"
            )
        print(line)
    if "5 matmuls" in contenders:
        print(
            "  symgrad step/5 matmuls = "
            f"{timing.ratio(t, 'symgrad step', '5 matmuls'):.3f}x CPU; "
            f"{timing.ratio(t, 'symgrad step', '5 matmuls', 'wall'):.3f}x wall"
        )
    return setup, t


ALONE = (
    "symgrad step",
    "numpy step",
    "symgrad grads, -= ",
    "symgrad value+grad",
    "5 matmuls",
    "symgrad step, minibatches",
    "numpy step, minibatches",
)


def _child(case, name, reps):
    """Run one contender alone in this process; print its medians as JSON."""
    _, sizes, loss, batch, _ = CASES[case]
    _, contenders = _contenders(sizes, loss, batch, False, only=name)
    t = timing.interleave(contenders, reps, sample=0.002, warmup=5)
    print(json.dumps({c: timing.median(t, name, c) for c in ("cpu", "wall", "faults")}))


def alone(case, rounds, reps, threads_arg):
    """Each contender in a process of its own, ``rounds`` times in a fresh random order.

    In one process the contenders share the allocator and the caches: a contender that frees a
    large array raises glibc's thresholds for all the others (so nobody page-faults), and each
    finds the caches as the previous one left them. Alone, each shows what its user sees. The
    ratio is the median over rounds of the per-round ratio of medians (min-max over rounds).
    """
    name, sizes, _, batch, _ = CASES[case]
    names = [n for n in ALONE if n != "5 matmuls" or len(sizes) == 3]
    results = {n: [] for n in names}
    order = np.random.default_rng(1)
    for _ in range(rounds):
        for n in order.permutation(names):
            cmd = [sys.executable, __file__, "--child", str(case), n, str(reps)]
            out = subprocess.run(
                [*cmd, "--threads", str(threads_arg)], capture_output=True, text=True, check=True
            )
            results[n].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"\n{name} (batch {batch}), each contender alone in its own process, {rounds} rounds")
    print(f"  {'contender':20s} {'CPU median':>11s} {'wall median':>12s} faults  ratios (CPU)")

    def ratio(a, b):
        r = [x["cpu"] / y["cpu"] for x, y in zip(results[a], results[b], strict=True)]
        return f"{statistics.median(r):.3f}x ({min(r):.3f}-{max(r):.3f})"

    for n in names:
        cpu = statistics.median(r["cpu"] for r in results[n]) * 1e6
        wall = statistics.median(r["wall"] for r in results[n]) * 1e6
        faults = statistics.median(r["faults"] for r in results[n])
        line = f"  {n:20s} {cpu:9.1f} us {wall:9.1f} us {faults:6.0f}"
        base = "symgrad step, minibatches" if n.endswith("minibatches") else "symgrad step"
        if n != base:
            line += f"  {base}/this = {ratio(base, n)}"
        print(line)


CASES = (
    ("2-16-16-1 tanh MLP, MSE", (2, 16, 16, 1), "mse", 100, 1.0),
    ("784-256-10 tanh MLP, softmax CE", (784, 256, 10), "ce", 256, 0.25),
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument(
        "--threads", type=int, default=1, help="threads for BLAS, PyTorch and XLA (0: defaults)"
    )
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    parser.add_argument("--no-peers", action="store_true", help="skip phase 2 (PyTorch, JAX)")
    parser.add_argument(
        "--alone",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="phase 0: each NumPy-side contender in a process of its own, ROUNDS times",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # case, contender, reps
    args = parser.parse_args()
    if args.child:
        _child(int(args.child[0]), args.child[1], int(args.child[2]))
        return
    cases = [c for c in CASES if args.only in c[0]]
    print(f"threads per library: {args.threads or 'library defaults'}")
    for name, _, _, _, frac in cases if args.alone else ():
        alone(CASES.index(next(c for c in CASES if c[0] == name)), args.alone,
              max(20, int(args.reps * frac)), args.threads)  # fmt: skip
    # Phase 1: symgrad vs hand-written NumPy alone (PyTorch's and XLA's thread pools, once
    # loaded, slow down whatever runs next in this process on a small machine).
    for name, sizes, loss, batch, frac in cases:
        bench(name, sizes, loss, batch, max(20, int(args.reps * frac)), peers=False)
    if not args.no_peers:  # Phase 2: all contenders interleaved in one process.
        for name, sizes, loss, batch, frac in cases:
            bench(name, sizes, loss, batch, max(20, int(args.reps * frac)), peers=True)
    print("\nsetup (derive + compile) for other widths and depths:")
    for sizes in ((2, 1024, 1024, 1), (784, 2048, 2048, 10), (10, *(64,) * 8, 1)):
        t0 = time.perf_counter()
        symgrad_value_and_grad(sizes, "mse")
        print(f"  {'-'.join(map(str, sizes))}: {(time.perf_counter() - t0) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
