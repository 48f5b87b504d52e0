"""The backward passes of Karpathy's micrograd lecture, derived step by step by symgrad.

Prints each derivation in the terminal, and writes them all as one Markdown file
(``derivations.md``: GitHub, GitLab and Jupyter render its ``$$`` maths) and one LaTeX document
(``derivations.tex``: compile with ``pdflatex``).

Usage::

    python examples/derivations.py [--out DIR]

``DIR`` defaults to ``out/`` (ignored by git). Runs in about a second.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import sympy as sp

from symgrad import derive


def lecture_expression():
    """L = (a*b + c) * f with a=2, b=-3, c=10, f=-2 (the first example of the lecture)."""
    a, b, c, f = sp.symbols("a b c f")
    # evaluate=False keeps the graph as the lecture builds it: e = a*b, d = e + c, L = d*f
    e = sp.Mul(a, b, evaluate=False)
    d = sp.Add(e, c, evaluate=False)
    L = sp.Mul(d, f, evaluate=False)
    return derive(L, at={a: 2, b: -3, c: 10, f: -2}, labels={e: "e", d: "d", L: "L"})


def neuron():
    """o = tanh(x1*w1 + x2*w2 + b): the lecture's neuron, with its numbers."""
    x1, x2, w1, w2, b = sp.symbols("x1 x2 w1 w2 b")
    x1w1 = sp.Mul(x1, w1, evaluate=False)
    x2w2 = sp.Mul(x2, w2, evaluate=False)
    s = sp.Add(x1w1, x2w2, evaluate=False)
    n = sp.Add(s, b, evaluate=False)
    o = sp.tanh(n, evaluate=False)
    at = {x1: 2, x2: 0, w1: -3, w2: 1, b: 6.8813735870195432}
    labels = {x1w1: "x1*w1", x2w2: "x2*w2", s: "x1*w1 + x2*w2", n: "n", o: "o"}
    return derive(o, at=at, labels=labels)


def used_twice():
    """f = (a*b) * (a+b) at a=-2, b=3: each variable feeds two nodes, so gradients add up."""
    a, b = sp.symbols("a b")
    d = sp.Mul(a, b, evaluate=False)
    e = sp.Add(a, b, evaluate=False)
    f = sp.Mul(d, e, evaluate=False)
    return derive(f, at={a: -2, b: 3}, labels={d: "d", e: "e", f: "f"})


def examples():
    """(title, derivation) pairs in the lecture's order."""
    return [
        ("L = (a*b + c) * f", lecture_expression()),
        ("A neuron: o = tanh(x1*w1 + x2*w2 + b)", neuron()),
        ("A variable used twice: f = (a*b) * (a+b)", used_twice()),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="output directory")
    args = parser.parse_args(argv)
    items = examples()
    for title, der in items:
        print(f"=== {title} ===\n{der.text()}\n")

    args.out.mkdir(parents=True, exist_ok=True)
    md = ["# Derivations from the micrograd lecture", ""]
    for title, der in items:
        md += [f"## {title}", "", der.markdown(), ""]
    (args.out / "derivations.md").write_text("\n".join(md), encoding="utf-8")

    # one document: the preamble of a standalone derivation, then one section per example
    doc = items[0][1].latex(standalone=True)
    preamble = doc[: doc.index("\\section*")]
    body = [f"\\section*{{{title}}}\n{der.latex()}" for title, der in items]
    tex = preamble + "\n".join(body) + "\n\\end{document}\n"
    (args.out / "derivations.tex").write_text(tex, encoding="utf-8")
    print(f"wrote {args.out / 'derivations.md'} and {args.out / 'derivations.tex'}")


if __name__ == "__main__":
    main()
