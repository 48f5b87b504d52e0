"""Train a 64-h-10 network on scikit-learn's digits (1,797 8x8 images, shipped offline).

A :class:`symgrad.nn.Dense` network: the loss (softmax cross-entropy) and all its gradients are
derived as matrix expressions and compiled to one NumPy function; the same ``Trainer``,
optimisers and ``History`` as micrograd-style models train it, Adam on minibatches.

    python examples/digits.py            # full run: >= 95% test accuracy in a few seconds
    python examples/digits.py --quick    # a short run for the test suite
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from symgrad.nn import Adam, Dense, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only (for tests)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise SystemExit(
            "this example needs scikit-learn: pip install scikit-learn "
            '(or, from a clone, pip install -e ".[examples]")'
        ) from err

    digits = load_digits()
    X = digits.data / 16.0  # pixel values 0..16 -> 0..1; samples are rows
    y = digits.target
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]

    epochs = args.epochs or (3 if args.quick else 40)
    batch = 64
    steps = epochs * -(-len(train) // batch)  # about `epochs` passes over the training set
    t0 = time.perf_counter()
    net = Dense(64, [args.hidden, 10], activation="tanh", seed=args.seed)
    trainer = Trainer(net, "softmax_cross_entropy", optimizer=Adam(lr=0.01))
    setup = time.perf_counter() - t0
    history = trainer.fit(X[train], y[train], steps=steps, batch_size=batch, rng=rng)
    acc = float(np.mean(trainer.predict(X[test]).argmax(axis=1) == y[test]))
    print(
        f"setup (derive + compile): {setup:.3f} s; training {steps} minibatch steps "
        f"({epochs} epochs): {history.seconds:.2f} s"
    )
    print(f"final batch loss: {history.loss[-1]:.4f}")
    print(f"test accuracy: {acc:.4f} on {len(test)} held-out images")


if __name__ == "__main__":
    main()
