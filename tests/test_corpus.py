"""The corpus differential test (see tests/corpus.py): grad and hessian against sympy.diff.

The bounded run (CI) draws 60 expressions (about 300 comparisons of gradient and Hessian
entries at complex points, branch cuts and kinks); the full run draws 2,000 and is marked slow
and switched on by ``SYMGRAD_CORPUS_FULL=1`` (it takes tens of minutes). Zero wrong answers are
allowed; a typed error is allowed only where SymPy has no derivative either.
"""

from __future__ import annotations

import io
import os

import pytest
import sympy as sp

from tests import corpus


def _run(n: int, seed: int, budget: float):
    out = io.StringIO()
    per_expr, per_cmp = corpus.table(n, seed=seed, out=out, progress=False, budget=budget)
    return per_expr, per_cmp, out.getvalue()


def test_bounded_corpus_has_no_wrong_answer() -> None:
    _per_expr, per_cmp, text = _run(60, seed=14, budget=8.0)
    assert per_cmp["wrong"] == 0, text
    assert per_cmp["typed error (SymPy has an answer)"] == 0, text
    assert per_cmp["pass"] >= 200, text  # the run compares something
    assert per_cmp["kink"] >= 1, text  # and reaches the kinks


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("SYMGRAD_CORPUS_FULL") != "1", reason="set SYMGRAD_CORPUS_FULL=1 (long)"
)
def test_full_corpus_of_2000_expressions_has_no_wrong_answer() -> None:
    per_expr, per_cmp, text = _run(2000, seed=14, budget=10.0)
    print(text)
    assert per_cmp["wrong"] == 0, text
    assert sum(per_expr.values()) == 2000


def test_the_classifier_catches_a_wrong_rule() -> None:
    # a deliberately wrong derivative must be classified "wrong", never pass or kink
    z = corpus.Z[0]
    at = {z: sp.Rational(-2)}
    wrong = 1 / sp.sqrt(z**2 - 1)  # acosh's derivative on the wrong branch at z = -2
    assert corpus.classify(wrong, sp.diff(sp.acosh(z), z), sp.acosh(z), at, z, False)[0] == (
        "wrong"
    )
    x = corpus.X[0]
    # at a kink, a value that is neither side nor their mean is wrong too
    d = sp.diff(sp.Abs(x), x)
    assert corpus.classify(sp.Integer(3), d, sp.Abs(x), {x: sp.S.Zero}, x, True)[0] == "wrong"
    assert corpus.classify(sp.S.Zero, d, sp.Abs(x), {x: sp.S.Zero}, x, True)[0] in ("pass", "kink")
