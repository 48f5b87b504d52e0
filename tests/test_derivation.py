"""Derivations: steps as data, the lecture's numbers, and views rendered by real renderers.

References are independent of symgrad: micrograd's published numbers (Karpathy's lecture),
``sympy.diff`` and finite differences from :mod:`symgrad.numerical`.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from latex_renderers import katex_renderer, pdflatex_renderer

import symgrad
from symgrad import numerical
from symgrad.derivation import Derivation, derive, node_names
from symgrad.errors import InputTypeError, MissingSymbolError, OptionError
from symgrad.graph import depends_on, topo_order

# ---------------------------------------------------------------------------------------------
# a stand-in for symgrad.Value: only the _symgrad_graph contract
# ---------------------------------------------------------------------------------------------


class FakeValue:
    """The part of the Value contract that derive uses: (expr, labels, values)."""

    def __init__(self, expr, labels, values):
        self.expr, self.labels, self.values = expr, labels, values

    def _symgrad_graph(self):
        return self.expr, dict(self.labels), dict(self.values)

    def _sympy_(self):
        return self.expr


def lecture():
    """L = (a*b + c) * f with micrograd's labels and values."""
    a, b, c, f = sp.symbols("a b c f")
    e = sp.Mul(a, b, evaluate=False)
    d = sp.Add(e, c, evaluate=False)
    L = sp.Mul(d, f, evaluate=False)
    values = {a: 2.0, b: -3.0, c: 10.0, f: -2.0}
    return FakeValue(L, {e: "e", d: "d", L: "L"}, values), (a, b, c, d, e, f, L)


def neuron():
    """o = tanh(x1*w1 + x2*w2 + b) with the lecture's numbers."""
    x1, x2, w1, w2, b = sp.symbols("x1 x2 w1 w2 b")
    x1w1 = sp.Mul(x1, w1, evaluate=False)
    x2w2 = sp.Mul(x2, w2, evaluate=False)
    s = sp.Add(x1w1, x2w2, evaluate=False)
    n = sp.Add(s, b, evaluate=False)
    o = sp.tanh(n, evaluate=False)
    labels = {x1w1: "x1*w1", x2w2: "x2*w2", s: "x1*w1 + x2*w2", n: "n", o: "o"}
    values = {x1: 2.0, x2: 0.0, w1: -3.0, w2: 1.0, b: 6.8813735870195432}
    return FakeValue(o, labels, values), (x1, x2, w1, w2, b, n, o)


def used_twice():
    """f = (a*b) * (a+b): a and b each feed two nodes."""
    a, b = sp.symbols("a b")
    d = sp.Mul(a, b, evaluate=False)
    e = sp.Add(a, b, evaluate=False)
    f = sp.Mul(d, e, evaluate=False)
    return FakeValue(f, {d: "d", e: "e", f: "f"}, {a: -2.0, b: 3.0}), (a, b)


def mlp_loss(sizes=(2, 16, 16, 1)):
    """Squared-error loss of a tanh MLP on one sample, as SymPy expressions, and its params."""
    xs = list(sp.symbols(f"x1:{sizes[0] + 1}"))
    y = sp.Symbol("y")
    params = []
    acts = xs
    for layer, (nin, nout) in enumerate(itertools.pairwise(sizes), start=1):
        out = []
        for j in range(nout):
            ws = [sp.Symbol(f"w{layer}_{j}_{i}") for i in range(nin)]
            bj = sp.Symbol(f"b{layer}_{j}")
            params += [*ws, bj]
            pre = sp.Add(*[w * a for w, a in zip(ws, acts, strict=True)], bj)
            out.append(sp.tanh(pre) if layer < len(sizes) - 1 else pre)
        acts = out
    return (acts[0] - y) ** 2, params, xs, y


def corpus():
    """Derivations whose every output goes through the renderers."""
    x, y = sp.symbols("x y")
    lec, _ = lecture()
    neu, _ = neuron()
    twice, _ = used_twice()
    a = sp.Symbol("a")
    loss, params, _, _ = mlp_loss((2, 3, 1))
    odd = sp.Symbol("lambda")
    return [
        derive(lec),
        derive(neu),
        derive(twice),
        derive(sp.Add(a, a, evaluate=False), at={a: 3}),
        derive(sp.sin(x * y) / (1 + x**2), at={x: 0.5, y: 2}),
        derive(sp.exp(odd) * sp.log(x) + sp.sqrt(x) - x / y, wrt=[x]),
        derive(loss, wrt=params[:2]),
        derive(loss),  # summarised
        derive(FakeValue(x * y, {x * y: "100% a_b & #c"}, {x: 1.0, y: 2.0})),
    ]


@pytest.fixture(scope="module")
def katex():
    return katex_renderer()


@pytest.fixture(scope="module")
def pdflatex():
    return pdflatex_renderer()


# ---------------------------------------------------------------------------------------------
# must show 1: the lecture's L = (a*b + c) * f
# ---------------------------------------------------------------------------------------------


def test_lecture_numbers_match_micrograd():
    value, (a, b, c, d, e, f, L) = lecture()
    der = derive(value)
    assert der.values[L] == -8.0
    published = {a: 6.0, b: -4.0, c: -2.0, d: -2.0, e: -2.0, f: 4.0, L: 1.0}
    assert {n: der.adjoint_values[n] for n in published} == published
    assert [der.names[n] for n in (a, b, c, d, e, f, L)] == list("abcdefL")


def test_lecture_text_shows_the_chain_rule():
    value, _ = lecture()
    out = derive(value).text()
    for line in [
        "L = d*f    (product rule)    value -8",
        "local partials: dL/dd = f = -2; dL/df = d = 4",
        "dL/dd = f = -2",
        "dL/df = d = 4",
        "d = e + c    (sum rule)",
        "dL/de = dL/dd * 1 = f = -2",
        "dL/da = dL/de * b = b*f = 6",
        "dL/db = dL/de * a = a*f = -4",
        "dL/dc = dL/dd * 1 = f = -2",
    ]:
        assert line in out, line


def test_lecture_latex_golden():
    value, _ = lecture()
    golden = (Path(__file__).parent / "golden" / "lecture.tex").read_text(encoding="utf-8")
    assert derive(value).latex() == golden.rstrip("\n")


# ---------------------------------------------------------------------------------------------
# must show 2: the neuron
# ---------------------------------------------------------------------------------------------


def test_neuron_numbers_match_micrograd():
    value, (x1, x2, w1, w2, b, n, o) = neuron()
    der = derive(value)
    assert der.values[o] == pytest.approx(0.7071, abs=1e-4)
    got = {s: der.adjoint_values[s] for s in (x1, w1, x2, w2, b, n)}
    want = {x1: -1.5, w1: 1.0, x2: 0.5, w2: 0.0, b: 0.5, n: 0.5}
    assert got == pytest.approx(want, abs=1e-12)


def test_neuron_steps_are_visible():
    value, _ = neuron()
    der = derive(value)
    out = der.text()
    assert "o = tanh(n)    (derivative of tanh)    value 0.707107" in out
    assert "local partials: do/dn = 1 - o**2 = 0.5" in out
    assert "do/dn = 1 - o**2 = 0.5" in out.split("[2]")[1]
    assert "do/dw1 = do/d(x1*w1) * x1 = x1*(1 - o**2) = 1" in out
    assert "do/dx1 = do/d(x1*w1) * w1 = w1*(1 - o**2) = -1.5" in out
    assert "do/d(x1*w1) = do/d(x1*w1 + x2*w2) * 1 = 1 - o**2 = 0.5" in out
    assert r"\frac{\partial o}{\partial n} &= 1 - o^{2} = 0.5" in der.latex()
    # every node of the graph has its own step: 5 leaves, 3 sums/products... and o
    assert {s.node for s in der.steps} == set(sp.preorder_traversal(value.expr))


# ---------------------------------------------------------------------------------------------
# must show 3: a variable used twice
# ---------------------------------------------------------------------------------------------


def test_b_equals_a_plus_a_adds_two_contributions():
    a = sp.Symbol("a")
    der = derive(FakeValue(sp.Add(a, a, evaluate=False), {}, {a: 3.0}))
    leaf = der.steps[-1]
    assert leaf.node == a and len(leaf.incoming) == 2
    assert der.adjoint_values[a] == 2.0
    out = der.text()
    assert "a (leaf, used by 2 nodes)" in out
    assert out.count("df/da += 1") == 2
    assert "(contributions added) df/da = 1 + 1 = 2" in out


def test_used_twice_accumulates_explicitly():
    value, (a, b) = used_twice()
    der = derive(value)
    assert (der.adjoint_values[a], der.adjoint_values[b]) == (-3.0, -8.0)
    out = der.text()
    assert "df/da += df/de * 1 = -6" in out
    assert "df/da += df/dd * b = 3" in out
    assert "(contributions added) df/da = df/de * 1 + df/dd * b = b*e + d = -3" in out
    assert "(contributions added) df/db = df/de * 1 + df/dd * a = a*e + d = -8" in out
    tex = der.latex()
    assert (
        r"\frac{\partial f}{\partial a} &\mathrel{+}= \frac{\partial f}{\partial d} \cdot b" in tex
    )
    assert r"\text{5. leaf, 2 contributions added}" in tex


# ---------------------------------------------------------------------------------------------
# data model against independent references
# ---------------------------------------------------------------------------------------------


def test_gradients_match_sympy_diff_and_finite_differences():
    x, y, z = sp.symbols("x y z")
    expr = sp.sin(x * y) * sp.exp(z) / (1 + x**2) + sp.log(y) * x
    at = {x: 0.3, y: 1.7, z: -0.4}
    der = derive(expr, at=at)
    for s in (x, y, z):
        assert sp.simplify(der.simplified(s) - sp.diff(expr, s)) == 0
        assert sp.simplify(sp.diff(expr, s) - der.gradients[s]) == 0
    f = sp.lambdify([(x, y, z)], expr, "math")
    fd = numerical.gradient(lambda v: f(v), np.array([0.3, 1.7, -0.4]))
    got = [der.adjoint_values[s] for s in (x, y, z)]
    assert np.allclose(got, fd, rtol=1e-6, atol=1e-8)


_X, _Y, _Z = sp.symbols("x y z")
_R, _S = sp.symbols("r s", real=True)  # sympy.diff of Abs needs real symbols
NUMERIC_CASES = [
    (_X * _Y + _X, {_X: 0.7, _Y: -1.3}),
    (sp.exp(_X) * sp.sin(_Y) / (1 + _Z**2), {_X: 0.2, _Y: 1.1, _Z: -0.5}),
    (sp.tanh(_X * _Y + _Z) ** 2, {_X: 0.3, _Y: -0.8, _Z: 0.1}),
    (sp.log(_X**2 + 1) * sp.sqrt(_Y), {_X: 1.5, _Y: 2.0}),
    (_X**_Y, {_X: 1.7, _Y: 2.3}),
    (sp.atan(_S / _R) + sp.Abs(_R - _S), {_R: 0.4, _S: 1.9}),
]


@pytest.mark.parametrize(("expr", "at"), NUMERIC_CASES, ids=str)
def test_numeric_gradients_match_finite_differences(expr, at):
    der = derive(expr, at=at)
    syms = list(at)
    f = sp.lambdify([syms], expr, "math")
    fd = numerical.gradient(lambda v: f(list(v)), np.array([at[s] for s in syms]))
    assert np.allclose([der.adjoint_values[s] for s in syms], fd, rtol=1e-6, atol=1e-9)
    for s in syms:  # the shown simplified gradient is sympy.diff's, numerically
        diff_value = float(sp.diff(expr, s).subs(at))
        assert float(der.simplified(s).subs(at)) == pytest.approx(diff_value, rel=1e-9)


def test_steps_are_the_sweeps_steps_and_adjoints_add_up():
    x, y = sp.symbols("x y")
    der = derive(x * sp.sin(x) + y**2)
    assert isinstance(der, Derivation) and der.steps[0].node == der.target
    for step in der.steps:
        assert sp.simplify(sp.Add(*[c for _, c in step.incoming]) - step.adjoint) == 0
        for parent, local, contribution in der.contributions(step):
            if parent is not None:
                assert (
                    sp.simplify(
                        contribution
                        - local * next(s for s in der.steps if s.node == parent).adjoint
                    )
                    == 0
                )


def test_wrt_restricts_to_the_path():
    x, y, z = sp.symbols("x y z")
    der = derive(sp.sin(x) * sp.cos(y) + z**3, wrt=[y])
    assert all(y in s.node.free_symbols for s in der.steps)
    assert der.wrt == (y,) and set(der.gradients) == {y}
    assert sp.diff(der.simplified(y) - sp.diff(sp.sin(x) * sp.cos(y), y), y) == 0


def test_node_names_labels_generated_and_no_clash():
    x, u_1 = sp.symbols("x u_1")
    names = node_names(sp.exp(x * u_1) + 1)
    assert names[x * u_1] == "u_2" and names[sp.exp(x * u_1)] == "u_3"
    assert names[sp.exp(x * u_1) + 1] == "f"
    f = sp.Symbol("f")
    assert node_names(f * x)[f * x] == "g"
    assert node_names(f * x, {f * x: "out"})[f * x] == "out"


def test_names_are_consistent_across_formats():
    x, y = sp.symbols("x y")
    der = derive(sp.tanh(x * y) ** 2)
    assert der.names[x * y] == "u_1" and der.names[sp.tanh(x * y)] == "u_2"
    assert "u_2 = tanh(u_1)" in der.text()
    assert r"u_{2} &= \tanh{\left(u_{1} \right)}" in der.latex()
    assert "`u_2 = tanh(u_1)`" in der.markdown()


def test_labels_argument_names_nodes():
    a, b = sp.symbols("a b")
    e = a * b
    der = derive(sp.sin(e), labels={e: "e"})
    assert der.names[e] == "e" and "f = sin(e)" in der.text()
    with pytest.raises(InputTypeError, match="labels"):
        derive(e, labels=["e"])
    with pytest.raises(InputTypeError, match="non-empty names"):
        derive(e, labels={e: ""})


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """Runs examples/derivations.py once: (stdout, output directory)."""
    out = tmp_path_factory.mktemp("derivations")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "examples/derivations.py", "--out", str(out)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, out


def test_example_script_runs_and_writes_files(example_run):
    stdout, out = example_run
    assert "dL/da = dL/de * b = b*f = 6" in stdout
    assert "do/dx1 = do/d(x1*w1) * w1 = w1*(1 - o**2) = -1.5" in stdout
    assert "(contributions added) df/da = df/de * 1 + df/dd * b = b*e + d = -3" in stdout
    md = (out / "derivations.md").read_text(encoding="utf-8")
    tex = (out / "derivations.tex").read_text(encoding="utf-8")
    assert md.count("$$") % 2 == 0 and "## A neuron" in md
    assert tex.startswith("\\documentclass") and tex.count("\\begin{align*}") == 3


def test_example_outputs_render(example_run, katex, pdflatex):
    _, out = example_run
    katex(_markdown_blocks((out / "derivations.md").read_text(encoding="utf-8")))
    pdflatex((out / "derivations.tex").read_text(encoding="utf-8"))


def test_value_data_can_be_overridden_by_at():
    value, (a, *_, L) = lecture()
    der = derive(value, at={"f": 1.0})
    assert der.values[L] == 4.0 and der.adjoint_values[a] == -3.0


def test_leaf_target_and_piecewise_heads():
    x, y = sp.symbols("x y")
    der = derive(x, at={x: 2})
    assert der.text().startswith("Derivation of x with respect to x (1 step, output first)")
    assert "dx/dx = 1" in der.text()
    expr = symgrad.relu(x) * y + sp.Piecewise((x, x > 0), (0, True))
    der = derive(expr, at={x: 0.5, y: 2})
    assert (der.adjoint_values[x], der.adjoint_values[y]) == (3.0, 0.5)
    assert "u_1 = Max(0, x)    (derivative of max)    value 0.5" in der.text()


def test_missing_renderer_skips_or_fails(monkeypatch):
    import latex_renderers

    monkeypatch.delenv("SYMGRAD_REQUIRE_RENDERERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install-latex"):
        latex_renderers._missing("KaTeX is not installed")
    monkeypatch.setenv("SYMGRAD_REQUIRE_RENDERERS", "1")
    with pytest.raises(pytest.fail.Exception, match="SYMGRAD_REQUIRE_RENDERERS=1"):
        latex_renderers._missing("KaTeX is not installed")


def test_quotient_rule_is_named():
    x, y = sp.symbols("x y")
    assert "(quotient rule)" in derive(sp.sin(x) / y).text()


def test_constant_target_and_absent_symbol():
    x = sp.Symbol("x")
    der = derive(sp.Integer(3), wrt=[x])
    assert der.steps == () and der.gradients == {x: 0}
    assert "df/dx = 0" in der.text()


def test_repr_hooks_for_notebooks():
    value, _ = lecture()
    der = derive(value)
    assert der._repr_latex_().startswith("$$\n\\begin{aligned}")
    assert der._repr_markdown_() == der.markdown()
    assert repr(der) == "<Derivation of L wrt a, b, c, f: 7 steps>"


def test_facade_exports():
    assert symgrad.derive is derive and symgrad.Derivation is Derivation
    assert {"derive", "Derivation"} <= set(symgrad.__all__)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def test_bad_input_raises_typed_errors():
    x, y = sp.symbols("x y")
    with pytest.raises(InputTypeError, match=r"symgrad\.parse"):
        derive("x**2")
    with pytest.raises(InputTypeError):
        derive([x, y])
    with pytest.raises(InputTypeError, match="wrt is empty"):
        derive(x, wrt=[])
    with pytest.raises(InputTypeError, match="at must be a dict"):
        derive(x, at=[1.0])
    with pytest.raises(InputTypeError, match="real number"):
        derive(x, at={x: "1"})
    with pytest.raises(MissingSymbolError, match="no value for y"):
        derive(x * y, at={x: 1})
    # a value for a symbol the target lacks is ignored (SymPy's subs convention)
    assert derive(x, at={x: 1, y: 2}).values == derive(x, at={x: 1}).values
    with pytest.raises(InputTypeError, match=r"_symgrad_graph\(\)"):
        derive(type("Bad", (), {"_symgrad_graph": lambda self: x})())
    der = derive(x * y)
    with pytest.raises(OptionError, match="max_steps"):
        der.text(max_steps=0)
    with pytest.raises(OptionError, match="summarize"):
        der.latex(summarize="yes")
    with pytest.raises(OptionError, match="not among"):
        derive(x * y, wrt=[x]).simplified(y)


# ---------------------------------------------------------------------------------------------
# must show 6: large targets stay readable
# ---------------------------------------------------------------------------------------------


def test_mlp_one_weight_shows_only_its_path():
    loss, params, xs, y = mlp_loss()
    assert len(params) == 337
    w = sp.Symbol("w1_0_0")
    at = dict.fromkeys([*params, *xs, y], 0.1)
    start = time.perf_counter()
    der = derive(loss, wrt=[w], at=at)
    elapsed = time.perf_counter() - start
    assert elapsed < 30  # timing proper is in benchmarks/bench_derivation.py
    on_path = depends_on(topo_order([loss]), [w])
    assert {s.node for s in der.steps} == on_path
    # the loss (o - y)**2, the flat sum o - y, per layer-2 neuron k: w3_0_k*h2_k, h2_k,
    # its sum and w2_k_0*h1_0; then h1_0 = tanh(sum), the sum, w*x1 and w itself
    assert len(der.steps) == 1 + 1 + 16 * 4 + 4
    rest = {s: sp.Float(v) for s, v in at.items() if s != w}
    part = loss.xreplace(rest)
    fd = numerical.derivative(lambda t: float(part.xreplace({w: sp.Float(t)})), 0.1)
    assert der.adjoint_values[w] == pytest.approx(float(fd), rel=1e-6)
    assert len(der.text(summarize=False).splitlines()) < 400


def test_mlp_all_parameters_is_summarised():
    loss, params, _, _ = mlp_loss()
    der = derive(loss, wrt=params)
    assert len(der.steps) == 707
    out = der.text()
    assert len(out.splitlines()) < 150
    hidden = re.findall(r"^\.\.\. (\d+) more steps like \S+ \((.*?)\) not shown", out, re.M)
    shown = re.findall(r"^\[\d+\] ", out, re.M)
    assert len(shown) + sum(int(n) for n, _ in hidden) == 707
    assert {"product rule", "sum rule", "derivative of tanh", "leaf"} <= {k for _, k in hidden}
    assert "325 more gradients not shown" in out
    assert len(der.text(max_steps=5).split("\n[")) == 6
    assert len(der.latex().splitlines()) < 250


# ---------------------------------------------------------------------------------------------
# must show 4: every LaTeX output renders in real renderers
# ---------------------------------------------------------------------------------------------


def _markdown_blocks(md: str) -> list[str]:
    return re.findall(r"^\$\$\n(.*?)\n\$\$$", md, flags=re.S | re.M)


def test_every_latex_output_renders_in_katex(katex):
    snippets = []
    for der in corpus():
        snippets.append(der.latex())
        snippets.append(der._repr_latex_().strip("$\n"))
        blocks = _markdown_blocks(der.markdown())
        assert blocks and der.markdown().count("$$") == 2 * len(blocks)
        snippets += blocks
    katex(snippets)


def test_every_latex_output_compiles_with_pdflatex(pdflatex):
    ders = corpus()
    body = "\n".join(d.latex() for d in ders)
    blocks = "\n".join(f"\\[\n{b}\n\\]" for d in ders for b in _markdown_blocks(d.markdown()))
    pdflatex(
        "\\documentclass{article}\n\\usepackage{amsmath}\n\\allowdisplaybreaks\n"
        f"\\begin{{document}}\n{body}\n{blocks}\n\\end{{document}}\n"
    )
    for der in ders[:3]:
        pdflatex(der.latex(standalone=True))


def test_renderers_catch_broken_latex(katex, pdflatex):
    with pytest.raises(AssertionError):
        katex([r"\frac{a}{"])
    with pytest.raises(AssertionError):
        pdflatex("\\documentclass{article}\\begin{document}$\\frac{a}$\\end{document}")
