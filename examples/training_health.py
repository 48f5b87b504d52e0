"""Training health: what symgrad's diagnostics report when training goes wrong.

Two classic failures, each next to its fix:

1. a learning rate that is too large: the updates dwarf the weights, the loss explodes to
   NaN; symgrad warns, stops, and keeps the last parameters whose loss was finite;
2. a saturated tanh network: every first-layer tanh sits at +-1, so 1 - tanh^2 underflows and
   that layer's gradient vanishes; symgrad names the layer. Xavier initialisation fixes it.

Run: python examples/training_health.py
"""

from __future__ import annotations

import random
import warnings

import numpy as np

from symgrad.nn import MLP, SGD, Trainer, TrainingWarning


def data():
    r = np.random.default_rng(0)
    X = r.normal(size=(64, 2))
    y = np.sin(2 * X[:, 0]) * X[:, 1]  # a smooth regression target
    return X, y


def fit_and_report(title: str, trainer: Trainer, X, y, steps: int) -> None:
    print(f"\n--- {title} ---")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrainingWarning)
        history = trainer.fit(X, y, steps=steps)
    shown = [0, len(history.loss) // 2, len(history.loss) - 1] if history.loss else []
    for k in sorted(set(shown)):
        stats = "; ".join(
            f"{s.layer}: |grad| {s.grad_norm:.2e}, update/weight {s.update_ratio:.1e}"
            for s in history.health[k]
        )
        print(f"step {k:3d} loss {history.loss[k]:.4g}  [{stats}]")
    for w in caught:
        print(f"WARNING ({w.category.__name__}): {w.message}")
    if history.stopped:
        print(f"stopped: {history.stopped}")
        finite = np.all(np.isfinite(trainer.parameter_vector()))
        print(f"the model kept finite parameters: {finite}")
    if not caught:
        print("no warnings: training is healthy")


def main() -> None:
    X, y = data()

    model = MLP(2, [16, 16, 1], rng=random.Random(0))
    start = [p.data for p in model.parameters()]
    fit_and_report(
        "learning rate 5.0 (too large)",
        Trainer(model, loss="mse", optimizer=SGD(lr=5.0)),
        X,
        y,
        steps=100,
    )
    for p, v in zip(model.parameters(), start, strict=True):
        p.data = v
    fit_and_report(
        "learning rate 0.05 (fine)",
        Trainer(model, loss="mse", optimizer=SGD(lr=0.05)),
        X,
        y,
        steps=100,
    )

    model = MLP(2, [32, 32, 1], activation="tanh", rng=random.Random(0))
    for neuron in model.layers[0].neurons:
        neuron.b.data = 25.0  # a badly scaled first layer: every tanh saturates at +1
    fit_and_report(
        "tanh network with a saturated first layer",
        Trainer(model, loss="mse", optimizer=SGD(lr=0.01)),
        X,
        y,
        steps=50,
    )
    model = MLP(2, [32, 32, 1], activation="tanh", init="xavier", rng=random.Random(0))
    fit_and_report(
        "the same network with Xavier initialisation",
        Trainer(model, loss="mse", optimizer=SGD(lr=0.05)),
        X,
        y,
        steps=50,
    )


if __name__ == "__main__":
    main()
