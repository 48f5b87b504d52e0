"""Train a 64-h-10 MLP on scikit-learn's digits (1,797 8x8 images, shipped offline) with symgrad.

The loss (softmax cross-entropy) and all its gradients are derived as matrix expressions by
symgrad.matrix and compiled to one NumPy function; Adam updates the weights.

    python examples/digits.py            # full run: >= 95% test accuracy in a few seconds
    python examples/digits.py --quick    # a short run for the test suite
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from symgrad.matrix.nn import MLP, Adam, Trainer, softmax_cross_entropy


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
    X = digits.data / 16.0  # pixel values 0..16 -> 0..1
    y = digits.target
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    onehot = np.eye(10)[y].T  # (10, N): samples are columns
    Xt = X.T  # (64, N)

    epochs = args.epochs or (3 if args.quick else 40)
    t0 = time.perf_counter()
    net = MLP(64, [args.hidden, 10], activation="tanh", seed=args.seed)
    step = Trainer(net, softmax_cross_entropy, Adam(0.01))
    setup = time.perf_counter() - t0
    batch = 64
    t1 = time.perf_counter()
    for _ in range(epochs):
        perm = rng.permutation(train)
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            loss = step(Xt[:, idx], onehot[:, idx])
    train_time = time.perf_counter() - t1
    predict = net.predictor()
    acc = float(np.mean(predict(Xt[:, test]).argmax(axis=0) == y[test]))
    print(f"setup (derive + compile): {setup:.3f} s; training {epochs} epochs: {train_time:.2f} s")
    print(f"final batch loss: {float(loss):.4f}")
    print(f"test accuracy: {acc:.4f} on {len(test)} held-out images")


if __name__ == "__main__":
    main()
