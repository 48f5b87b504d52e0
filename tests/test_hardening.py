"""Hostile sizes: deep and long graphs never hit a recursion limit of symgrad's own, and the
default simplification is bounded (the hang cases run as subprocesses with a generous limit)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

from symgrad import Value, derive
from symgrad.graph import node_names

ROOT = Path(__file__).resolve().parents[1]


def _value_chain(n: int) -> tuple[Value, Value]:
    a = Value(0.5, label="a")
    v = a
    for i in range(n):
        v = (v + 0.1).tanh() if i % 7 == 0 else v * 0.999 + 0.001 if i % 2 else v * 1.0001
    return a, v


def _deep_expr(n: int) -> sp.Expr:
    # unevaluated, so building it needs no SymPy assumption queries (which recurse)
    x = sp.Symbol("x")
    e = x
    for i in range(n):
        e = sp.sin(e, evaluate=False) if i % 2 else sp.Add(e, sp.Integer(i), evaluate=False)
    return e


def test_derive_on_a_5000_op_value_chain_matches_backward():
    a, out = _value_chain(5000)
    d = derive(out)
    out.backward()  # reference: micrograd's numeric backward pass over the same Values
    (leaf,) = [s for s in d.values if isinstance(s, sp.Symbol)]
    assert d.adjoint_values[leaf] == pytest.approx(a.grad, rel=1e-9)


def test_derive_and_node_names_on_a_20000_deep_expression():
    e = _deep_expr(20000)
    names = node_names(e)
    assert names[e] == "f"
    assert len(names) == 20000 + 1  # every operation once, plus x (numbers are not named)
    d = derive(e)
    assert len(d.steps) >= 20000
