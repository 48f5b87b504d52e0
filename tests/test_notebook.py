"""The lecture notebook runs top to bottom in a real Jupyter kernel and shows itself.

``examples/lecture.ipynb`` is executed with nbclient (kernel ``python3`` from ipykernel); its
outputs must contain a PNG (the loss plot, without importing pyplot), an SVG (a graph),
LaTeX or Markdown maths written with the lecture's node names (no internal matrix nodes, no
SymPy dummies), HTML tables for the check and the history, and the progress bar with the loss.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "lecture.ipynb"


def _missing(reason: str):
    if os.environ.get("SYMGRAD_REQUIRE_RENDERERS") == "1":
        pytest.fail(f"{reason} (SYMGRAD_REQUIRE_RENDERERS=1: CI must install it)")
    pytest.skip(f"{reason}; pip install -e '.[test]'")


RAW = re.compile(r"Map\(|Lambda|Broadcast|SumAxis|SumAll|Dummy|_symgrad|u0\b|\\operatorname\{Map")


@pytest.fixture(scope="module")
def executed():
    try:
        import ipykernel  # noqa: F401
        import nbclient
        import nbformat
    except ImportError as exc:
        _missing(f"running the notebook needs nbclient, nbformat and ipykernel ({exc})")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit the notebook without outputs"
    )
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    return nb


def outputs(nb, kind: str) -> list:
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind in out.get("data", {}):
                found.append(out["data"][kind])
    return found


def test_notebook_shows_plots_graphs_and_maths(executed):
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    pngs = outputs(executed, "image/png")
    assert len(pngs) == 1 and len(pngs[0]) > 1000  # the loss plot, base64
    svgs = outputs(executed, "image/svg+xml")
    assert len(svgs) == 2 and all("<svg" in s for s in svgs)
    assert "data 2.0000" in svgs[0] and "grad 6.0000" in svgs[0]  # the lecture's a
    maths = outputs(executed, "text/latex") + outputs(executed, "text/markdown")
    assert len(maths) >= 3
    for text in maths:
        assert not RAW.search(text), RAW.search(text)
    derivation = outputs(executed, "text/latex")[0]
    assert r"\frac{\partial L}{\partial e}" in derivation and "local partial" in derivation
    assert " -8" in derivation and "-8.0" not in derivation  # one number format
    markdown = outputs(executed, "text/markdown")[0]
    assert "local partial" in markdown
    matrix = outputs(executed, "text/latex")[-1]
    assert r"\tanh" in matrix and "x^{T}" in matrix


def test_notebook_tables_reprs_and_progress(executed):
    html = outputs(executed, "text/html")
    check = next(h for h in html if "gradient check" in h)
    assert "<table>" in check and "<td>w1</td>" in check
    history = next(h for h in html if "history.plot()" in h)
    assert "last loss" in history and len(history) < 2000
    plain = outputs(executed, "text/plain")
    assert any(p.startswith("<History: 100 steps") for p in plain)
    assert any(p.startswith("<GradCheckReport passed") for p in plain)
    assert all(len(p) < 400 for p in plain)  # no page of losses, no dataclass dump
    explorer = next(h for h in html if h.startswith("<iframe"))
    assert 'sandbox="allow-scripts"' in explorer
    streams = "".join(
        o.get("text", "") for c in executed.cells for o in c.get("outputs", []) if "text" in o
    )
    assert re.search(r"training: 100%.*loss=", streams)  # the bar stays, with the loss


# ---------------------------------------------------------------------- without a kernel
def test_history_and_report_show_themselves_briefly():
    import sys

    import sympy as sp

    from symgrad import check_grad
    from symgrad.nn.train import History

    pytest.importorskip("matplotlib")
    h = History(loss=[float(k) for k in range(5000, 0, -1)], accuracy=[None] * 5000, seconds=2.0)
    assert repr(h) == "<History: 5000 steps, loss 5000 -> 1 (min 1), 2.00 s>"
    assert "<td>last loss</td><td>1</td>" in h._repr_html_()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    assert h.plot()._repr_png_().startswith(b"\x89PNG")
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot  # plotting needs no pyplot
    x, y = sp.symbols("x y")
    report = check_grad(x**2 * y, at={x: 1.5, y: -2.0})
    assert repr(report).startswith("<GradCheckReport passed: 2 variables, central, max rel error")
    cells = re.findall(r"<td>(.*?)</td>", report._repr_html_())
    assert cells[0] == "x" and float(cells[1]) == 2 * 1.5 * -2.0  # d(x^2 y)/dx = 2xy
    assert float(cells[2]) == pytest.approx(-6.0)
    named = check_grad(sp.Symbol("<b>") ** 2, at={"<b>": 1.0})
    assert "<td>&lt;b&gt;</td>" in named._repr_html_()


def test_matrix_results_display_as_textbook_latex():
    import sympy as sp

    from symgrad import matrix as mx
    from symgrad.matrix import expr as mxe

    W, x, y = sp.MatrixSymbol("W", 4, 3), sp.MatrixSymbol("x", 3, 1), sp.MatrixSymbol("y", 4, 1)
    h = mxe.tanh(mxe.matmul(W, x))
    g = mx.grad(mxe.sumsq(h - y), W)
    shown = g._repr_latex_()  # SymPy's own display of the result
    assert not RAW.search(shown) and r"\tanh{\left(W x \right)}" in shown
    eqs = mx.backprop_equations(mxe.sumsq(h - y), [W], {})
    deltas, grads = eqs  # still a (deltas, gradients) pair
    assert deltas == [] and len(grads) == 1
    text = eqs._repr_latex_()
    assert text.startswith("$$\\begin{aligned}") and r"\frac{\partial L}{\partial W} &=" in text
    assert not RAW.search(text)
