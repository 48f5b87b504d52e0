"""How long drawing the 2-16-16-1 MLP's graph takes: DOT build time and ``dot`` layout time.

Run by hand (needs the Graphviz program ``dot``)::

    python benchmarks/bench_viz.py [--repeat 3]

For the full graph, the collapsed one (``collapse=True``), a depth-limited one (``depth=4``)
and the backward pass through the SymPy expression (full and collapsed), it prints the
number of DOT nodes, the time to build the DOT source (best of ``--repeat``) and the time
``dot`` takes to lay it out and write SVG (best of ``--repeat``).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from symgrad import Value, draw_dot
from symgrad.derivation.dot import render
from symgrad.nn import MLP


def model_loss() -> tuple[Value, list[Value]]:
    model = MLP(2, [16, 16, 1], variant="lecture", rng=random.Random(1337))
    x = [Value(2.0, label="x0"), Value(-1.0, label="x1")]
    out = model(x)
    loss = (out - 1.0) ** 2
    loss.label = "loss"
    loss.backward()
    return loss, model.parameters()


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    loss, params = model_loss()
    cases = {
        "full": dict(params=params),
        "collapsed": dict(params=params, collapse=True),
        "depth=4": dict(params=params, depth=4),
        "backward (SymPy)": dict(params=params, backward=True),
        "backward collapsed": dict(params=params, backward=True, collapse=True),
    }
    print(f"{'graph':<18} {'DOT nodes':>9} {'DOT edges':>9} {'build s':>8} {'dot svg s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in cases.items():
            build, g = best(lambda kw=kw: draw_dot(loss, **kw), args.repeat)
            src = g.source
            nodes = sum(1 for line in src.splitlines() if "[label=" in line and "->" not in line)
            edges = src.count("->")
            path = Path(tmp) / "g.svg"
            layout, _ = best(lambda g=g, path=path: render(g, path), args.repeat)
            print(f"{name:<18} {nodes:>9} {edges:>9} {build:>8.3f} {layout:>9.2f}")


if __name__ == "__main__":
    main()
