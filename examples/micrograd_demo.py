"""micrograd's demo (demo.ipynb) through symgrad's compiled training path.

Same data, same network, same initial weights, same loss and learning-rate schedule as
Karpathy's micrograd demo; the difference is that the loss and its gradient with respect to all
337 parameters are derived once symbolically and compiled into one vectorised NumPy function,
so each of the 100 full-batch steps is a single call. micrograd's published losses are step 0:
0.8958441028683222 and step 99: 0.010978370135492717.

Run: python examples/micrograd_demo.py [--out DIR] [--quick]
Needs the examples extra (scikit-learn, matplotlib): pip install -e ".[examples]" (from a clone).
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from symgrad.nn import MLP, SGD, Trainer


def make_data():
    from sklearn.datasets import make_moons

    np.random.seed(1337)
    random.seed(1337)
    X, y = make_moons(n_samples=100, noise=0.1)
    return X, y * 2 - 1  # labels -1 / +1


def plot_boundary(trainer: Trainer, X: np.ndarray, y: np.ndarray, path: Path, h: float) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x_min, x_max = X[:, 0].min() - 1, X[:, 0].max() + 1
    y_min, y_max = X[:, 1].min() - 1, X[:, 1].max() + 1
    xx, yy = np.meshgrid(np.arange(x_min, x_max, h), np.arange(y_min, y_max, h))
    grid = np.c_[xx.ravel(), yy.ravel()]
    z = (trainer.predict(grid) > 0).reshape(xx.shape)  # the whole grid in one call
    fig = Figure(figsize=(6, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.contourf(xx, yy, z, cmap="Spectral", alpha=0.8)
    ax.scatter(X[:, 0], X[:, 1], c=y, s=40, cmap="Spectral")
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    ax.set_title("MLP(2, [16, 16, 1]) decision boundary (symgrad, compiled)")
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="directory for the plot (default: .)")
    parser.add_argument("--quick", action="store_true", help="coarser plot grid (for tests)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    X, y = make_data()
    model = MLP(2, [16, 16, 1])  # micrograd's initial weights: random.seed(1337) above
    print(model)
    print("number of parameters", len(model.parameters()))
    trainer = Trainer(
        model,
        loss="hinge",  # mean over samples of relu(1 - y_i * score_i)
        l2=1e-4,  # + 1e-4 * sum of squared parameters
        optimizer=SGD(lr=lambda k: 1.0 - 0.9 * k / 100),
    )
    print(f"derived and compiled the loss gradient in {trainer.compile_seconds:.2f} s")

    def report(k: int, loss: float, acc: float | None) -> None:
        print(f"step {k} loss {loss}, accuracy {acc * 100}%")

    history = trainer.fit(X, y, steps=100, callback=report)
    total = time.perf_counter() - start
    print(f"100 steps in {history.seconds:.3f} s; whole run (compile included) {total:.2f} s")

    path = out / "micrograd_demo_boundary.png"
    plot_boundary(trainer, X, y, path, h=0.25 if args.quick else 0.05)
    history.plot(out / "micrograd_demo_loss.png", title="micrograd demo: loss")
    print(f"saved {path}")
    return {"loss": history.loss, "accuracy": history.accuracy, "seconds": total}


if __name__ == "__main__":
    main()
