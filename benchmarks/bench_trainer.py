"""What ``Trainer.fit`` adds to a dense network's compiled step. By hand:

    PYTHONPATH=. python benchmarks/bench_trainer.py [--reps 30] [--threads 1]

Contenders, on the same data and network:

- ``compiled step``: the trainer's own compiled function (loss, gradients, scores) plus an
  in-place SGD update of the parameter matrices, nothing else: the floor of a training step;
- ``fit``: ``Trainer.fit`` per step (monitor off): checks, the gradient as one vector, the
  optimiser's update, the non-finite guard, loss/accuracy/learning-rate history;
- ``fit + monitor``: the same with the health monitor (per-layer norms and update ratios).

Each repetition runs every contender for 10 steps in a fresh random order; medians of CPU time
per step and the median of per-repetition ratios to the compiled step.
"""

from __future__ import annotations

import argparse
import os
import sys


def _threads() -> int:
    for i, arg in enumerate(sys.argv):  # thread pools are sized before NumPy is imported
        if arg == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
    return 1


THREADS = _threads()
for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[var] = str(THREADS)

import time  # noqa: E402

import numpy as np  # noqa: E402

from symgrad.nn import SGD, Dense, Trainer  # noqa: E402

WORKLOADS = {
    "784-256-10, batch 256": ((784, 256, 10), 256),
    "64-64-10, batch 64 (digits)": ((64, 64, 10), 64),
}
STEPS = 10


def contenders(sizes, batch):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(batch, sizes[0])), rng.integers(0, sizes[-1], batch)
    fits = {}
    for name, monitor in (("fit", False), ("fit + monitor", True)):
        net = Dense(sizes[0], list(sizes[1:]), activation="tanh", seed=0)
        trainer = Trainer(net, "softmax_cross_entropy", optimizer=SGD(lr=0.01), monitor=monitor)
        fits[name] = lambda t=trainer: t.fit(X, y, steps=STEPS)
    net = Dense(sizes[0], list(sizes[1:]), activation="tanh", seed=0)
    fn = Trainer(net, "softmax_cross_entropy", monitor=False).fn
    mats = net.matrices(net.parameters()[0].base)  # views of the network's own buffer
    xt, onehot = X.T, np.eye(sizes[-1])[y].T.copy()

    def compiled():
        for _ in range(STEPS):
            _, grads, _ = fn(*mats, xt, onehot)
            for p, g in zip(mats, grads, strict=True):
                g *= 0.01
                p -= g

    return {"compiled step": compiled, **fits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"BLAS threads: {THREADS}; CPU time per step, medians of {args.reps} repetitions")
    for title, (sizes, batch) in WORKLOADS.items():
        runs = contenders(sizes, batch)
        for run in runs.values():
            run()  # warm up
        times = {k: [] for k in runs}
        order = np.random.default_rng(1)
        for _ in range(args.reps):
            for k in order.permutation(list(runs)):
                t0 = time.process_time()
                runs[k]()
                times[k].append((time.process_time() - t0) / STEPS)
        base = np.array(times["compiled step"])
        print(f"\n{title}")
        for k, ts in times.items():
            ratio = np.median(np.array(ts) / base)
            print(f"  {k:15s} {np.median(ts) * 1e3:8.3f} ms   {ratio:5.2f}x")


if __name__ == "__main__":
    main()
