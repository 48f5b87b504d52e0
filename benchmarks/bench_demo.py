"""Timing of micrograd's demo: symgrad's compiled path vs the micrograd-style Value path.

Run by hand (not part of the test suite): python benchmarks/bench_demo.py [--value-steps N]

Reports: the time to derive and compile the loss gradient (337 parameters), the time of 100
full-batch steps, the whole run (data, model, compile, training), the final loss against
micrograd's published 0.010978370135492717, and the time per step of the scalar Value path
(micrograd's algorithm: a fresh graph of the batch each step and a backward pass over it).
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

import numpy as np
from sklearn.datasets import make_moons

from symgrad import Value
from symgrad.nn import MLP, SGD, Trainer

PUBLISHED_STEP99 = 0.010978370135492717


def data():
    np.random.seed(1337)
    random.seed(1337)
    X, y = make_moons(n_samples=100, noise=0.1)
    return X, y * 2 - 1


def compiled_run() -> dict:
    start = time.perf_counter()
    X, y = data()
    model = MLP(2, [16, 16, 1])
    trainer = Trainer(model, loss="hinge", l2=1e-4, optimizer=SGD(lr=lambda k: 1.0 - 0.9 * k / 100))
    history = trainer.fit(X, y, steps=100)
    total = time.perf_counter() - start
    return {
        "compile": trainer.compile_seconds,
        "train": history.seconds,
        "total": total,
        "loss99": history.loss[-1],
        "acc99": history.accuracy[-1],
    }


def value_step_seconds(steps: int) -> float:
    X, y = data()
    model = MLP(2, [16, 16, 1])
    times = []
    for k in range(steps):
        t0 = time.perf_counter()
        inputs = [list(map(Value, row)) for row in X.tolist()]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * si).relu() for yi, si in zip(y.tolist(), scores, strict=True)]
        loss = sum(losses) * (1.0 / len(losses)) + 1e-4 * sum(p * p for p in model.parameters())
        model.zero_grad()
        loss.backward()
        lr = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= lr * p.grad
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3, help="compiled runs (fresh process state)")
    parser.add_argument("--value-steps", type=int, default=3, help="Value-path steps to time")
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, {platform.machine()}")
    runs = [compiled_run() for _ in range(args.repeat)]
    for i, r in enumerate(runs):
        print(
            f"compiled run {i}: derive+compile {r['compile']:.3f} s, 100 steps {r['train']:.3f} s, "
            f"whole run {r['total']:.3f} s, step-99 loss {r['loss99']!r} "
            f"(rel. diff {abs(r['loss99'] / PUBLISHED_STEP99 - 1):.1e}), accuracy {r['acc99']:.0%}"
        )
    step = value_step_seconds(args.value_steps)
    per_step = runs[-1]["train"] / 100
    print(f"Value path (micrograd's algorithm): {step:.3f} s per step, ~{100 * step:.1f} s per run")
    print(
        f"compiled path: {per_step * 1e3:.2f} ms per step ({step / per_step:.0f}x faster per step)"
    )


if __name__ == "__main__":
    main()
