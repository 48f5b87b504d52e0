"""Graph drawings: the lecture's picture rendered by the real ``dot``, DAG sharing in the DOT
source, numbers checked against sympy.diff, the backward pass, size limits and errors."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sympy as sp

import symgrad
from symgrad import Value, derive, draw_dot
from symgrad.derivation.dot import render
from symgrad.errors import (
    BackendUnavailableError,
    FileAccessError,
    GraphTooLargeError,
    InputTypeError,
    MissingSymbolError,
    OptionError,
)
from symgrad.nn import MLP
from tests.dot_renderer import require_dot

ROOT = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"
RECORD = re.compile(r'label="\{ (.*?) \| data (\S+) \| grad (\S+) \}"')


def lecture_l() -> Value:
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


LECTURE_NUMBERS = {  # the lecture's published data and grad of every node
    "a": ("2.0000", "6.0000"),
    "b": ("-3.0000", "-4.0000"),
    "c": ("10.0000", "-2.0000"),
    "e": ("-6.0000", "-2.0000"),
    "d": ("4.0000", "-2.0000"),
    "f": ("-2.0000", "4.0000"),
    "L": ("-8.0000", "1.0000"),
}


def records(source: str) -> dict[str, tuple[str, str]]:
    return {m[1]: (m[2], m[3]) for m in RECORD.finditer(source)}


def svg_records(path: Path) -> dict[str, tuple[str, ...]]:
    """label -> the other texts of its node, read from the SVG that dot wrote."""
    out = {}
    for g in ET.parse(path).getroot().iter(f"{SVG}g"):
        if g.get("class") != "node":
            continue
        texts = [t.text.strip() for t in g.iter(f"{SVG}text") if t.text and t.text.strip()]
        if len(texts) == 3:
            out[texts[0]] = tuple(texts[1:])
    return out


# ---------------------------------------------------------------------- rendering with dot
def test_lecture_l_rendered_by_dot_shows_every_label_data_and_grad(tmp_path):
    require_dot()
    path = render(draw_dot(lecture_l()), tmp_path / "L.svg")
    assert path == tmp_path / "L.svg" and path.exists()
    assert not list(tmp_path.glob("*.gv"))  # the DOT file is cleaned up
    found = svg_records(path)
    for label, (data, grad) in LECTURE_NUMBERS.items():
        assert found[label] == (f"data {data}", f"grad {grad}"), label


@pytest.mark.parametrize("fmt", ["png", "pdf"])
def test_render_other_formats(tmp_path, fmt):
    require_dot()
    path = render(draw_dot(lecture_l(), backward=True), tmp_path / f"L.{fmt}")
    magic = {"png": b"\x89PNG", "pdf": b"%PDF"}[fmt]
    assert path.read_bytes().startswith(magic)


def test_digraph_render_and_notebook_display(tmp_path):
    require_dot()
    g = draw_dot(sp.Symbol("x") * 2)
    svg = g._repr_image_svg_xml()  # what Jupyter shows inline
    assert svg.lstrip().startswith("<?xml") or "<svg" in svg
    out = g.render(outfile=tmp_path / "g.svg", cleanup=True)
    assert Path(out).exists()


def test_mlp_graph_renders(tmp_path):
    require_dot()
    model = MLP(2, [16, 16, 1], variant="lecture", rng=random.Random(1337))
    out = model([Value(2.0, label="x0"), Value(-1.0, label="x1")])
    out.backward()
    g = draw_dot(out, params=model.parameters(), collapse=True)
    assert render(g, tmp_path / "mlp.svg").stat().st_size > 10_000


def test_example_script_writes_svg_and_png(tmp_path):
    require_dot()
    proc = subprocess.run(
        [sys.executable, "examples/draw_graphs.py", "--out", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "o = 0.7071, do/dw1 = 1.0000" in proc.stdout
    for name in ["L", "L_backward", "neuron", "neuron_backward"]:
        assert (tmp_path / f"{name}.svg").exists() and (tmp_path / f"{name}.png").exists()
    neuron = svg_records(tmp_path / "neuron.svg")
    assert neuron["w1"] == ("data -3.0000", "grad 1.0000")  # the lecture's numbers
    assert neuron["x2"] == ("data 0.0000", "grad 0.5000")


def test_docs_image_is_the_neuron_picture():
    found = svg_records(ROOT / "docs" / "images" / "neuron.svg")
    assert found["o"] == ("data 0.7071", "grad 1.0000")
    assert found["n"] == ("data 0.8814", "grad 0.5000")


# ---------------------------------------------------------------------- the DOT source
def test_value_records_match_the_lecture_without_dot():
    g = draw_dot(lecture_l())
    assert records(g.source) == LECTURE_NUMBERS
    assert g.source.count("->") == 9  # 3 ops: 2 operands + 1 result each
    assert g.format == "svg" and "rankdir=LR" in g.source


def test_shared_subexpression_is_drawn_once_with_one_edge_per_use():
    x, y = sp.symbols("x y")
    u = sp.sin(x * y)
    g = draw_dot(u + u**2 + sp.exp(u))
    ops = re.findall(r"(n\d+)_op \[label=(\w+)", g.source)
    assert [op for _, op in ops].count("sin") == 1
    (sin_id,) = [nid for nid, op in ops if op == "sin"]
    uses = re.findall(rf"\t{sin_id} -> (n\d+)_op", g.source)
    assert len(uses) == 3  # in the sum, the power and the exp
    # an argument used twice by one node gets two edges
    a = sp.Symbol("a")
    twice = draw_dot(sp.Mul(a, a, evaluate=False)).source
    assert twice.count("n0 -> n1_op") == 2


def test_sympy_values_and_gradients_agree_with_sympy_diff():
    x, y = sp.symbols("x y")
    expr = sp.tanh(x * y) + x**2 * y
    point = {x: 0.7, y: -1.3}
    found = records(draw_dot(expr, at=point).source)
    for s in (x, y):
        want = float(sp.diff(expr, s).subs(point))
        assert float(found[s.name][1]) == pytest.approx(want, abs=1e-4)
        assert float(found[s.name][0]) == point[s]
    assert float(found["f"][0]) == pytest.approx(float(expr.subs(point)), abs=1e-4)


def test_derivation_drawing_uses_the_derivation_names_and_local_partials():
    a, b, c, f = sp.symbols("a b c f")
    target = (a * b + c) * f
    d = derive(target, at={a: 2, b: -3, c: 10, f: -2})
    src = draw_dot(d).source
    found = records(src)
    assert set(found) == {d.names[s.node] for s in d.steps}
    for s in d.steps:
        assert float(found[d.names[s.node]][1]) == d.adjoint_values[s.node]
    # the local derivatives on the edges, against sympy.diff of the node by its argument
    e_name = d.names[a * b + c]
    assert f'label="d{d.names[target]}/d{e_name} = f = -2.0000"' in src
    assert f'label="d{d.names[target]}/df = {e_name} = 4.0000"' in src
    assert float(sp.diff(target, f).subs({a: 2, b: -3, c: 10})) == 4.0
    assert "legend" in src  # the backward colours are explained


def test_backward_of_a_value_uses_derive_names():
    L = lecture_l()
    src = draw_dot(L, backward=True).source
    assert records(src) == LECTURE_NUMBERS
    names = set(derive(L).names.values())
    assert set(records(src)) <= names
    assert 'label="de/da = b = -3.0000"' in src and 'label="dd/dc = 1"' in src


def test_kinds_are_coloured_and_parameters_marked():
    o = (Value(2.0, label="x") * Value(-3.0, label="w") + 1).tanh()
    w = next(c for c in o._children[0]._children[0]._children if c.label == "w")
    src = draw_dot(o, params=[w]).source
    assert re.search(r'w \| data -3.0000 \| grad \S+ \}" fillcolor="#fde68a"', src)
    assert re.search(r'x \| data 2.0000 \| grad \S+ \}" fillcolor="#dbeafe"', src)
    assert 'fillcolor="#bbf7d0" penwidth=2' in src  # the output
    assert "parameter</td>" in src and "constant</td>" in src  # legend
    assert "legend" not in draw_dot(o).source  # no legend for a plain picture
    x = sp.Symbol("x")
    sym = draw_dot(3 * x + sp.Symbol("w"), params=["w"], legend=True).source
    assert re.search(r'\{ w \}" fillcolor="#fde68a"', sym)
    assert re.search(r'label=3 shape=box fillcolor="#e5e7eb"', sym)  # the constant 3


# ---------------------------------------------------------------------- big graphs
def chain(n: int) -> Value:
    v = Value(0.5, label="x")
    for _ in range(n):
        v = v * 1.0001 + 0.001
    return v


def test_too_big_raises_with_the_options_that_help():
    with pytest.raises(GraphTooLargeError, match=r"has \d+ nodes .*collapse=True.*depth="):
        draw_dot(chain(200), max_nodes=100)
    x = sp.Symbol("x")
    big = sum(sp.sin(k * x) for k in range(1, 60))
    with pytest.raises(GraphTooLargeError, match="max_nodes=50"):
        draw_dot(big, max_nodes=50)


def test_deep_graphs_build_without_recursion():
    v = chain(3000)  # 12000 drawn nodes: beyond the default limit, fine with max_nodes=None
    with pytest.raises(GraphTooLargeError):
        draw_dot(v)
    src = draw_dot(v, max_nodes=None).source
    assert src.count("[label=") > 12_000


def test_depth_limit_counts_the_hidden_nodes():
    v = chain(10)  # v = u * 1.0001 + 0.001, ten times over
    src = draw_dot(v, depth=2).source
    # v; u * 1.0001 and 0.001; u and 1.0001
    assert len(RECORD.findall(src)) == 5
    total = len(RECORD.findall(draw_dot(v).source))
    (hidden,) = re.findall(r"\.\.\. (\d+) nodes below", src)
    assert int(hidden) == total - 5
    x = sp.Symbol("x")
    shallow = draw_dot(sp.exp(sp.sin(sp.cos(x))), depth=1).source
    assert "... 2 nodes below" in shallow  # cos(x) and x


def test_collapse_merges_sum_chains():
    xs = [Value(float(i), label=f"x{i}") for i in range(10)]
    total = Value.sum(xs)
    total.label = "s"
    full = draw_dot(total).source
    collapsed = draw_dot(total, collapse=True).source
    assert full.count('_op [label="+"') == 9
    assert collapsed.count('_op [label="+"') == 1
    assert len(re.findall(r"\tn\d+ -> n\d+_op", collapsed)) == 10
    # labelled intermediate results are kept; unlabelled ones are drawn in their op's node
    a, b, c = Value(0.1, label="a"), Value(0.2, label="b"), Value(0.3, label="c")
    ab = a + b
    ab.label = "ab"
    out = (ab * c).tanh()
    out.label = "out"
    out.backward()
    src = draw_dot(out, collapse=True).source
    assert "{ ab | data 0.3000 |" in src and "n3_op" not in src
    # d out/d(ab*c) = 1 - tanh(0.09)**2, independent of symgrad
    want = 1 - float(sp.tanh(0.09)) ** 2
    assert f"{{ * | data 0.0900 | grad {want:.4f} }}" in src
    assert "{ out | data" in src and "_op [label=tanh" in src


def test_collapse_writes_sympy_operations_into_the_nodes():
    x, y = sp.symbols("x y")
    src = draw_dot(sp.tanh(x * y) + 2 * x, at={x: 1, y: 2}, collapse=True).source
    assert "_op" not in src
    want = float(sp.diff(sp.tanh(x * y) + 2 * x, x).subs({x: 1, y: 2}))
    assert f"{{ x | data 1.0000 | grad {want:.4f} }}" in src
    assert "{ u_3 = tanh | data 0.9640 | grad 1.0000 }" in src


# ---------------------------------------------------------------------- errors
def test_missing_graphviz_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(BackendUnavailableError, match=r"pip install graphviz"):
        draw_dot(sp.Symbol("x"))


def test_missing_dot_program_names_the_system_package(monkeypatch, tmp_path):
    g = draw_dot(lecture_l())
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on this PATH
    assert "data 2.0000" in g.source  # the DOT text needs no dot
    for call in (
        lambda: render(g, tmp_path / "L.svg"),
        lambda: g.pipe(format="svg"),
        lambda: g.render(outfile=tmp_path / "x.svg"),
        lambda: g._repr_mimebundle_(),
    ):
        with pytest.raises(BackendUnavailableError, match=r"apt-get install graphviz.*brew"):
            call()


def test_bad_input_gives_typed_errors(tmp_path):
    x = sp.Symbol("x")
    with pytest.raises(InputTypeError):
        draw_dot("x + 1")
    with pytest.raises(InputTypeError):
        draw_dot([x])
    with pytest.raises(OptionError, match="format"):
        draw_dot(x, format="jpgg")
    with pytest.raises(OptionError, match="rankdir"):
        draw_dot(x, rankdir="up")
    with pytest.raises(OptionError, match="depth"):
        draw_dot(x, depth=-1)
    with pytest.raises(OptionError, match="max_nodes"):
        draw_dot(x, max_nodes=True)
    with pytest.raises(OptionError, match="legend"):
        draw_dot(x, legend="yes")
    with pytest.raises(OptionError, match="collapse"):
        draw_dot(x, collapse=1)
    with pytest.raises(InputTypeError, match="at must be a dict"):
        draw_dot(x, at=[1.0])
    with pytest.raises(MissingSymbolError, match="no value for y"):
        draw_dot(x * sp.Symbol("y"), at={x: 1})
    # a value for a symbol the expression lacks is ignored (SymPy's subs convention)
    assert draw_dot(x, at={x: 1, "z": 2}).source == draw_dot(x, at={x: 1}).source
    with pytest.raises(InputTypeError, match="real number"):
        draw_dot(x, at={x: "1"})
    with pytest.raises(OptionError, match="Value carries its own numbers"):
        draw_dot(Value(1.0), at={x: 1})
    with pytest.raises(OptionError, match="give at=/wrt=/labels= to derive"):
        draw_dot(derive(x**2), at={x: 1})
    with pytest.raises(InputTypeError, match="labels must be a dict"):
        draw_dot(x + 1, labels=["y"])
    g = draw_dot(x)
    with pytest.raises(OptionError, match="suffix"):
        render(g, tmp_path / "noext")
    with pytest.raises(InputTypeError, match="Digraph"):
        render("digraph {}", tmp_path / "a.svg")


def test_facade_exports_draw_dot():
    assert symgrad.draw_dot is draw_dot and "draw_dot" in symgrad.__all__


def test_require_dot_skips_or_fails_by_the_environment(monkeypatch):
    import tests.dot_renderer as dr

    monkeypatch.setattr(dr.shutil, "which", lambda name: None)
    monkeypatch.delenv("SYMGRAD_REQUIRE_RENDERERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install-graphviz"):
        dr.require_dot()
    monkeypatch.setenv("SYMGRAD_REQUIRE_RENDERERS", "1")
    with pytest.raises(pytest.fail.Exception, match="SYMGRAD_REQUIRE_RENDERERS=1"):
        dr.require_dot()


class MicrogradValue:
    """The attributes of Karpathy's micrograd Value that draw_dot reads (no symgrad code)."""

    def __init__(self, data, _children=(), _op="", label=""):
        self.data, self.grad, self.label = data, 0.0, label
        self._prev, self._op = set(_children), _op


def test_a_micrograd_value_is_drawn_by_duck_typing():
    a, b = MicrogradValue(2.0, label="a"), MicrogradValue(-3.0, label="b")
    c = MicrogradValue(-6.0, (a, b), "*", label="c")
    c.grad, a.grad, b.grad = 1.0, -3.0, 2.0  # as micrograd's backward() leaves them
    found = records(draw_dot(c).source)
    assert found == {
        "a": ("2.0000", "-3.0000"),
        "b": ("-3.0000", "2.0000"),
        "c": ("-6.0000", "1.0000"),
    }
    with pytest.raises(OptionError, match="no _symgrad_graph"):
        draw_dot(c, backward=True)


def test_wrt_limits_the_gradients_shown():
    x, y = sp.symbols("x y")
    src = draw_dot(x * y + y, at={x: 2, y: 3}, wrt=[x]).source
    assert "{ x | data 2.0000 | grad 3.0000 }" in src
    assert "{ y | data 3.0000 }" in src  # no gradient asked for y


def test_only_the_dot_module_imports_graphviz():
    import ast

    importers = set()
    for path in (ROOT / "symgrad").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            if any(n.split(".")[0] == "graphviz" for n in names):
                importers.add(path.relative_to(ROOT / "symgrad").as_posix())
    # the CLI only probes for the package to give its own message
    assert importers <= {"derivation/dot.py", "cli.py"}, importers


def test_render_writes_only_the_file_named(tmp_path):
    require_dot()
    mine = {"pic.gv": "my own DOT file", "pic": "a file named like the stem"}
    for name, text in mine.items():
        (tmp_path / name).write_text(text)
    g = draw_dot(lecture_l())
    render(g, tmp_path / "pic.svg")
    g.render(outfile=tmp_path / "pic.png")  # the Digraph's own render goes the same way
    for name, text in mine.items():
        assert (tmp_path / name).read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pic", "pic.gv", "pic.png", "pic.svg"]
    # an existing output keeps its permissions, and a symlink keeps pointing at its target
    target = tmp_path / "real.svg"
    target.write_text("old")
    target.chmod(0o644)
    (tmp_path / "link.svg").symlink_to(target)
    render(g, tmp_path / "link.svg")
    assert (tmp_path / "link.svg").is_symlink() and "<svg" in target.read_text()
    assert target.stat().st_mode & 0o777 == 0o644
    with pytest.raises(FileAccessError, match="is a folder"):
        render(g, tmp_path, format="svg")


def test_graph_fits_a_notebook_column(tmp_path):
    require_dot()
    # the lecture's 7-value graph was ~1,550 px wide; DEFAULT_SIZE scales it to 9 inches
    svg = ET.fromstring(draw_dot(lecture_l(), backward=True).pipe(format="svg"))
    width = float(svg.get("width").removesuffix("pt"))
    assert width <= 9 * 72 + 1
    natural = ET.fromstring(draw_dot(lecture_l(), backward=True, size=None).pipe(format="svg"))
    assert float(natural.get("width").removesuffix("pt")) > width
