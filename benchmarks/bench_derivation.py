"""Time derivations of a 2-16-16-1 tanh MLP's squared-error loss (337 parameters).

Target: the derivation with respect to one weight, with numbers, in under 2 s (recording and
rendering all three views). Run by hand::

    python benchmarks/bench_derivation.py
"""

from __future__ import annotations

import itertools
import time

import sympy as sp

from symgrad import derive


def mlp_loss(sizes=(2, 16, 16, 1)):
    """(o - y)**2 for a tanh MLP (linear output) on one symbolic sample, and its parameters."""
    acts = list(sp.symbols(f"x1:{sizes[0] + 1}"))
    y = sp.Symbol("y")
    params = []
    for layer, (nin, nout) in enumerate(itertools.pairwise(sizes), start=1):
        out = []
        for j in range(nout):
            ws = [sp.Symbol(f"w{layer}_{j}_{i}") for i in range(nin)]
            bj = sp.Symbol(f"b{layer}_{j}")
            params += [*ws, bj]
            pre = sp.Add(*[w * a for w, a in zip(ws, acts, strict=True)], bj)
            out.append(sp.tanh(pre) if layer < len(sizes) - 1 else pre)
        acts = out
    leaves = [*sp.symbols(f"x1:{sizes[0] + 1}"), y]
    return (acts[0] - y) ** 2, params, leaves


def timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    print(f"{label:<52} {time.perf_counter() - start:7.3f} s")
    return result


def main() -> None:
    loss, params, leaves = timed("build the MLP loss (SymPy)", mlp_loss)
    at = {s: 0.1 * ((i % 7) - 3) for i, s in enumerate([*params, *leaves])}
    w = sp.Symbol("w1_0_0")

    def one_weight():
        der = derive(loss, wrt=[w], at=at)
        return der, der.text(), der.latex(), der.markdown()

    der, text, _tex, _md = timed("derive wrt w1_0_0 with numbers + text/latex/md", one_weight)
    print(f"    {len(der.steps)} steps, text {len(text.splitlines())} lines")
    der = timed("derive wrt all 337 parameters (symbolic)", lambda: derive(loss, wrt=params))
    text = timed("  its summarised text view", der.text)
    print(f"    {len(der.steps)} steps, text {len(text.splitlines())} lines")
    der = timed("derive wrt all 337 parameters with numbers", lambda: derive(loss, params, at))
    timed("  its summarised LaTeX view", der.latex)


if __name__ == "__main__":
    main()
