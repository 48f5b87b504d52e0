"""One training step (forward + backward + SGD update) through symgrad's compiled matrix path vs
hand-written NumPy, PyTorch eager and JAX jit (when installed). Run by hand:

    PYTHONPATH=. python benchmarks/bench_matrix.py [--reps 300] [--threads 1]

``--threads`` sizes the thread pools of BLAS (NumPy), PyTorch and XLA alike (default 1: on a
small shared machine, competing thread pools make multi-threaded timings meaningless).

Phase 1 times symgrad against hand-written NumPy alone; phase 2 adds PyTorch eager and JAX jit
(if installed) in the same process, interleaved in every repetition (random order); medians of
single steps are reported. Also reports symgrad's setup time (derive + compile) for several widths.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _threads_from_argv() -> int:
    # Thread pools must be sized before NumPy / PyTorch / JAX are imported.
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return 1


THREADS = _threads_from_argv()
if THREADS > 0:
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(THREADS)
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_cpu_multi_thread_eigen={'true' if THREADS > 1 else 'false'}"
    )

import numpy as np  # noqa: E402

from symgrad.matrix.nn import MLP, SGD, Trainer, mse, softmax_cross_entropy  # noqa: E402

LR = 0.01


def numpy_step(ws, bs, X, Y, loss):
    """Hand-written NumPy backprop for a tanh MLP (samples as columns)."""
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
    for i in range(last, -1, -1):
        gW = d @ hs[i].T
        gb = d.sum(axis=1, keepdims=True)
        if i:
            d = (1.0 - hs[i] * hs[i]) * (ws[i].T @ d)
        ws[i] -= LR * gW
        bs[i] -= LR * gb
    return value


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


def _contenders(sizes, loss, batch, peers):
    X, Y = _data(sizes, loss, batch)
    t0 = time.perf_counter()
    net = MLP(sizes[0], list(sizes[1:]), seed=0)
    trainer = Trainer(net, mse if loss == "mse" else softmax_cross_entropy, SGD(LR))
    setup = time.perf_counter() - t0
    ws = [net.values[p].copy() for p in trainer.params[0::2]]
    bs = [net.values[p].copy() for p in trainer.params[1::2]]
    contenders = {
        "symgrad": lambda: trainer(X, Y),
        "numpy": lambda: numpy_step(ws, bs, X, Y, loss),
    }
    if len(sizes) == 3:
        contenders["5 matmuls"] = _five_matmuls(ws, X, Y)
    if peers:
        made = make_torch(sizes, loss, 0)
        if made:
            tstep, torch = made
            Xt = torch.from_numpy(X.T.copy())
            Yt = torch.from_numpy(Y.T.copy()) if loss == "mse" else torch.from_numpy(Y.argmax(0))
            contenders["torch eager"] = lambda: tstep(Xt, Yt)
        jrun = make_jax(sizes, loss, 0)
        if jrun:
            contenders["jax jit"] = lambda: jrun(X, Y)
    return setup, contenders


def _time(contenders, reps):
    for fn in contenders.values():  # warm up (JIT compilation, caches)
        for _ in range(5):
            fn()
    times = {k: [] for k in contenders}
    names = list(contenders)
    order = np.random.default_rng(0)
    for _ in range(reps):
        # interleaved in a fresh random order each repetition: a contender that runs right after
        # PyTorch or XLA finds cold caches, so no contender may always follow the same one
        for k in order.permutation(names):
            fn = contenders[k]
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def bench(name, sizes, loss, batch, reps, peers):
    setup, contenders = _contenders(sizes, loss, batch, peers)
    med = _time(contenders, reps)
    print(f"\n{name} (batch {batch}), {'with' if peers else 'without'} peers in the process")
    print(f"  symgrad setup (derive + compile): {setup * 1e3:.0f} ms")
    for k, v in med.items():
        print(f"  {k:12s} {v * 1e6:9.1f} us   symgrad/this = {med['symgrad'] / v:5.2f}x")
    return setup, med


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
    args = parser.parse_args()
    cases = [c for c in CASES if args.only in c[0]]
    print(f"threads per library: {args.threads or 'library defaults'}")
    # Phase 1: symgrad vs hand-written NumPy alone (PyTorch's and XLA's thread pools, once
    # loaded, slow down whatever runs next in this process on a small machine).
    for name, sizes, loss, batch, frac in cases:
        bench(name, sizes, loss, batch, max(20, int(args.reps * frac)), peers=False)
    # Phase 2: all contenders interleaved in one process.
    for name, sizes, loss, batch, frac in cases:
        bench(name, sizes, loss, batch, max(20, int(args.reps * frac)), peers=True)
    print("\nsetup (derive + compile) for other widths and depths:")
    for sizes in ((2, 1024, 1024, 1), (784, 2048, 2048, 10), (10, *(64,) * 8, 1)):
        t0 = time.perf_counter()
        Trainer(MLP(sizes[0], list(sizes[1:]), seed=0), mse, SGD(LR))
        print(f"  {'-'.join(map(str, sizes))}: {(time.perf_counter() - t0) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
