"""Draw the lecture's graphs with symgrad.draw_dot: the L example and the tanh neuron.

Writes SVG and PNG files to ``--out`` (default ``out/``): the forward graphs with every node's
data and grad after ``backward()`` (micrograd's picture), and the backward pass of each (the
local derivative on every edge, as in ``symgrad.derive``). ``--docs`` also writes the neuron
picture the README shows, ``docs/images/neuron.svg``. Rendering needs the Graphviz program
``dot`` (``apt-get install graphviz`` or ``brew install graphviz``).

    python examples/draw_graphs.py [--out out] [--docs]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from symgrad import Value, draw_dot
from symgrad.derivation.dot import render

DOCS_IMAGE = Path(__file__).resolve().parents[1] / "docs" / "images" / "neuron.svg"


def lecture_l() -> Value:
    """L = (a*b + c) * f with the lecture's numbers, after backward()."""
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = Value(10.0, label="c")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    f = Value(-2.0, label="f")
    L = d * f
    L.label = "L"
    L.backward()
    return L


def neuron() -> tuple[Value, list[Value]]:
    """The lecture's neuron o = tanh(x1*w1 + x2*w2 + b), after backward(); and its parameters."""
    x1 = Value(2.0, label="x1")
    x2 = Value(0.0, label="x2")
    w1 = Value(-3.0, label="w1")
    w2 = Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    x1w1 = x1 * w1
    x1w1.label = "x1*w1"
    x2w2 = x2 * w2
    x2w2.label = "x2*w2"
    x1w1x2w2 = x1w1 + x2w2
    x1w1x2w2.label = "x1*w1 + x2*w2"
    n = x1w1x2w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    o.backward()
    return o, [w1, w2, b]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out", help="output directory (default: out/)")
    ap.add_argument("--docs", action="store_true", help=f"also write {DOCS_IMAGE.name} for docs")
    args = ap.parse_args()
    out = Path(args.out)
    L = lecture_l()
    o, params = neuron()
    pictures = {
        "L": draw_dot(L),
        "L_backward": draw_dot(L, backward=True),
        "neuron": draw_dot(o, params=params),
        "neuron_backward": draw_dot(o, params=params, backward=True),
    }
    for name, graph in pictures.items():
        for fmt in ("svg", "png"):
            print("wrote", render(graph, out / f"{name}.{fmt}"))
    if args.docs:
        print("wrote", render(pictures["neuron"], DOCS_IMAGE))
    print(f"L = {L.data:.4f}; o = {o.data:.4f}, do/dw1 = {params[0].grad:.4f}")


if __name__ == "__main__":
    main()
