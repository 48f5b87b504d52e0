"""symgrad's own SymPy functions."""

from __future__ import annotations

import math
import time

import sympy as sp

from symgrad import sigmoid


def test_sigmoid_evaluates_its_argument_first() -> None:
    # reference: the logistic function of the double, computed by hand
    assert complex(sigmoid(sp.sin(1)).evalf()) == complex(1 / (1 + math.exp(-math.sin(1))), 0)
    nested = sp.sin(1)
    expected = math.sin(1)
    for _ in range(12):  # rewriting into exp form made this exponential (~47 s)
        nested = sigmoid(nested)
        expected = 1 / (1 + math.exp(-expected))
    start = time.perf_counter()
    value = float(nested.evalf())
    assert time.perf_counter() - start < 5  # generous; was ~47 s before the fix
    assert math.isclose(value, expected, rel_tol=1e-14)
    assert sigmoid(sp.Symbol("x")).evalf().has(sigmoid)  # nothing to evaluate
