"""Golden ``.source`` of the benchmark workloads: a guard on the code generator's output.

The files in ``tests/golden/codegen/`` were written by the code generator before the move to
``Program`` + emitters; every later difference is reviewed (``SYMGRAD_UPDATE_GOLDEN=1`` rewrites
them, and the diff is committed with its reason). The numbers these sources compute are tested
against independent references elsewhere (``test_codegen.py``, ``test_targets_differential.py``).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
import sympy as sp

from symgrad.codegen import lambdify, lift, value_and_grad

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import workloads as wl

GOLDEN = Path(__file__).parent / "golden" / "codegen"


def _lecture():
    a, b, c, f = sp.symbols("a b c f")
    return value_and_grad((a * b + c) * f, [a, b, c, f], [a, b, c, f])


def _neuron():
    syms = sp.symbols("x1 w1 x2 w2 b")
    x1, w1, x2, w2, b = syms
    return value_and_grad(sp.tanh(x1 * w1 + x2 * w2 + b), list(syms), list(syms))


def _demo_small():
    # the demo's step (ReLU MLP, hinge loss, L2 inside the differentiated loss), 2-4-4-1, as
    # the scalar program (lift.py would run its layers as matrix products)
    e, params, ins = wl.mlp_loss([2, 4, 4, 1], "relu", "hinge")
    total = e + sp.Rational(1, 10000) * sp.Add(*[p**2 for p in params])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lift, "LIFT_MIN", math.inf)
        return value_and_grad(total, params, [*ins, params], reduce="mean")


def _tanh_mlp():
    e, params, ins = wl.mlp_loss([2, 3, 3, 1], "tanh", "square")
    return value_and_grad(e, params, [*ins, params])


def _lj():
    energy, coords = wl.lennard_jones(3)
    return value_and_grad(energy, coords)


def _mixed():
    x, y = sp.symbols("x y")
    out = [
        sp.Piecewise((x, x > 0), (y, True)) + sp.Max(x, y),
        [sp.erf(x) * sp.sqrt(y), sp.pi * x],
        sp.Matrix([[x, 1], [y**3, sp.exp(-x)]]),
    ]
    return lambdify(out, [x, y])


WORKLOADS = {
    "lecture": _lecture,
    "neuron": _neuron,
    "demo_small": _demo_small,
    "tanh_mlp": _tanh_mlp,
    "lennard_jones": _lj,
    "mixed": _mixed,
}


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_source_matches_the_golden_file(name):
    source = WORKLOADS[name]().source
    path = GOLDEN / f"{name}.py.txt"
    if os.environ.get("SYMGRAD_UPDATE_GOLDEN"):
        path.write_text(source, encoding="utf-8")
    assert source == path.read_text(encoding="utf-8")
