"""symgrad.matrix.parse: matrixcalculus.org notation, safety, bounds, fuzzing; CLI ``--matrix``.

Expected expressions are built with the constructors of symgrad.matrix by hand; the CLI's
numbers come from hand-written NumPy.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symgrad.cli import main
from symgrad.errors import InputTypeError, ParseError, SymgradError
from symgrad.matrix import expr as mx
from symgrad.matrix.parse import MATRIX_FUNCTIONS, parse

n, m = (sp.Symbol(s, integer=True, positive=True) for s in "nm")
A, S = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("S", n, n)
x, w = sp.MatrixSymbol("x", n, 1), sp.MatrixSymbol("w", n, 1)
X, y = sp.MatrixSymbol("X", m, n), sp.MatrixSymbol("y", m, 1)
c = sp.Symbol("c")
SHAPES = {"A": ("n", "n"), "S": ("n", "n"), "x": ("n",), "w": ("n",), "X": ("m", "n"), "y": ("m",)}
ONES_M = sp.OneMatrix(m, 1)

CORRECT = [
    ("x'*A*x", mx.matmul(mx.transpose(x), A, x)),
    ("x.T*A*x", mx.matmul(mx.transpose(x), A, x)),
    ("(X*w - y)'", mx.transpose(mx.sub(mx.matmul(X, w), y))),
    ("y .* (X*w)", mx.hadamard(y, mx.matmul(X, w))),
    ("y ⊙ (X*w)", mx.hadamard(y, mx.matmul(X, w))),
    ("y ./ (X*w)", mx.hadamard(y, mx.elementwise(lambda u: 1 / u, mx.matmul(X, w)))),
    ("y.^3", mx.elementwise(lambda u: u**3, y)),
    ("tr(S) + det(S) + logdet(S)", mx.trace(S) + mx.det(S) + mx.logdet(S)),
    ("inv(S)", mx.inverse(S)),
    ("S^(-1)", mx.inverse(S)),
    ("S^2", mx.matmul(S, S)),
    ("norm2(y)", sp.sqrt(mx.sumsq(y))),
    ("norm2(y)^2", mx.sumsq(y)),
    ("sum(exp(y))", mx.sum(mx.exp(y))),
    ("log(y + vector(1))", mx.log(mx.add(y, ONES_M))),
    ("vector(2) - y", mx.sub(mx.scale(2, ONES_M), y)),
    ("S + matrix(1)", mx.add(S, sp.OneMatrix(n, n))),
    ("X*vector(1)", mx.matmul(X, sp.OneMatrix(n, 1))),
    ("c*x - x/2", mx.sub(mx.scale(c, x), mx.scale(sp.Rational(1, 2), x))),
    ("-2*x", mx.scale(-2, x)),
    ("tanh(X*w)", mx.tanh(mx.matmul(X, w))),
    ("sigmoid(y) .* relu(y)", mx.hadamard(mx.sigmoid(y), mx.relu(y))),
    ("(x'*x)^2", mx.sum(mx.matmul(mx.transpose(x), x)) ** 2),
    ("c^2 + 1", c**2 + 1),
]


@pytest.mark.parametrize(("text", "expected"), CORRECT, ids=[t for t, _ in CORRECT])
def test_parses_like_the_constructors(text, expected):
    assert parse(text, SHAPES) == expected


def test_shapes_with_ints_and_scalars():
    f = parse("a*B*v", {"a": (), "B": (2, 3), "v": ("3",)})
    assert f.shape == (2, 1)
    assert parse("B'", {"B": (2, 3)}).shape == (3, 2)


@pytest.mark.parametrize(
    "shapes",
    [
        {"A": ("n", "n", "n")},
        {"A": "n"},
        {"A": ("n x",)},
        {"A": (0,)},
        {"_A": ("n",)},
        {"tr": ("n",)},
        {"A B": ("n",)},
        ["A"],
    ],
)
def test_bad_shapes(shapes):
    with pytest.raises(InputTypeError):
        parse("A", shapes)


ERRORS = [
    ("x'*A*y", 4, "inner dimensions"),  # (1, n) times (m, 1)
    ("x + y", 2, "add"),
    ("x .* y", 2, "hadamard"),
    ("tr(X)", 0, "square"),
    ("x + 1", 2, "cannot combine a scalar with a matrix"),
    ("foo(x)", 0, "unknown function"),
    ("x ./ ", 5, "expected a number"),
    ("(x", 2, "expected ')'"),
    ("x)", 1, "unexpected"),
    ("sum(vector(1))", 4, "cannot be inferred"),
    ("A^c", 1, "integer exponent"),
    ("A^x", 1, "exponents must be scalars"),
    ("x/y", 1, "'/' divides by a scalar"),
    ("S + vector(1)", 4, "use matrix"),
    ("vector(x)", 0, "needs a number"),
    ("tr", 0, "is a function"),
    ("", 0, "empty"),
    ("x @ y", 2, "not allowed"),
]


@pytest.mark.parametrize(("text", "position", "reason"), ERRORS, ids=[t for t, *_ in ERRORS])
def test_error_positions(text, position, reason):
    with pytest.raises(ParseError, match=re.escape(reason)) as info:
        parse(text, SHAPES)
    assert info.value.position == position
    assert "^" in str(info.value) or not text


ATTACKS = [
    "__import__('os').system('touch SENTINEL')",
    "().__class__.__base__.__subclasses__()",
    "x.__class__",
    "x.T.__class__",
    "lambda: 1",
    "[i for i in x]",
    "{}",
    "eval('1')",
    "exec('1')",
    "getattr(x, 'y')",
    'f"{x}"',
    "x[0]",
    "sum(x=1)",
    "sum(*x)",
    "x if y else z",
    "(y := 1)",
    "x == y",
    "1j",
    "_x",
    "x; y",
    "x # comment",
    "x\x00",
    "Ｘ",
    "open('/etc/passwd')",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_attacks_are_rejected(text):
    with pytest.raises(ParseError) as info:
        parse(text, SHAPES)
    assert info.value.position is not None and 0 <= info.value.position <= len(text)


def test_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParseError):
        parse("__import__('pathlib').Path('SENTINEL').touch()", SHAPES)
    assert not (tmp_path / "SENTINEL").exists()


def test_parse_module_never_evaluates_text():
    source = (Path(__file__).parents[1] / "symgrad" / "matrix" / "parse.py").read_text()
    banned = {"eval", "exec", "compile", "sympify", "parse_expr", "S", "__import__", "lambdify"}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = {a.name for a in node.names} | {getattr(node, "module", "") or ""}
            assert not any(n.startswith("sympy.parsing") or n in banned for n in names), names
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "compile" and isinstance(func, ast.Attribute):
                assert func.value.id == "re" and isinstance(node.args[0], ast.Constant)
                continue
            assert name not in banned, f"line {node.lineno}: call of {name}"


BOMBS = [
    "9^9^9",
    "(2^999)^999",
    "c^(10^10)",
    "(" * 10_000 + "x" + ")" * 10_000,
    "x+" * 20_000 + "x",
    "-" * 9_000 + "x",
    "x" + "'" * 9_000,
    "S^100",
    "sum(" * 99 + "x" + ")" * 99,
    "*".join(["S"] * 5000),
    "c^" * 5000 + "c",
]


@pytest.mark.parametrize("text", BOMBS, ids=lambda t: t[:24])
def test_bombs_fail_fast(text):
    start = time.perf_counter()
    with pytest.raises(ParseError):
        parse(text, SHAPES)
    assert time.perf_counter() - start < 2.0


def test_long_but_allowed_formula():
    text = " + ".join(["x"] * 500)
    assert parse(text, SHAPES) == mx.scale(500, x)


def _safe(text):
    with contextlib.suppress(ParseError, SymgradError):  # every failure is a typed error
        parse(text, SHAPES)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_fuzz_random_text(text):
    _safe(text)


TOKENS = ["x", "A", "S", "X", "w", "y", "c", "1", "2.5", "'", ".T", "*", ".*", "./", ".^", "^",
          "+", "-", "/", "(", ")", ",", "⊙", "tr(", "det(", "inv(", "sum(", "exp(", "norm2(",
          "vector(1)", "matrix(1)", "logdet("]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=16), st.sampled_from(["", " "]))
def test_fuzz_token_soup(tokens, sep):
    _safe(sep.join(tokens))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(MATRIX_FUNCTIONS)), st.sampled_from(["x", "S", "c", "1", "X*w"]))
def test_fuzz_calls(name, arg):
    _safe(f"{name}({arg})")


# ------------------------------------------------------------------------------- CLI
def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


SH = ["--shape", "A=n,n", "--shape", "x=n"]


def test_cli_diff_matrix_text_latex_json(capsys):
    assert run(capsys, "diff", "--matrix", "x'*A*x", *SH, "--wrt", "x") == (0, "(A + A')*x\n", "")
    code, out, _ = run(capsys, "diff", "--matrix", "x'*A*x", *SH, "--wrt", "x", "--format", "latex")
    assert (code, out) == (0, "\\left(A + A^{T}\\right) x\n")
    code, out, _ = run(capsys, "diff", "--matrix", "x'*A*x", *SH, "--format", "json")
    data = json.loads(out)
    assert data["gradient"] == {"A": "x*x'", "x": "(A + A')*x"}
    assert data["latex"]["A"] == "x x^{T}" and data["wrt"] == ["A", "x"]
    code, out, _ = run(capsys, "diff", "--matrix", "x'*A*x", *SH, "--format", "markdown")
    assert code == 0 and "$$ \\frac{\\partial f}{\\partial x} = " in out


def test_cli_derive_matrix_shows_the_chain_rule(capsys):
    args = ["--shape", "X=m,n", "--shape", "w=n", "--shape", "y=m", "--wrt", "w"]
    code, out, _ = run(capsys, "derive", "--matrix", "norm2(X*w - y)^2", *args)
    assert code == 0
    assert out.splitlines() == [
        "forward:",
        "  v1 = X*w",
        "  v2 = v1 - y",
        "  v3 = v2 .* v2",
        "  f = sum(v3)",
        "backward:",
        "  vbar3 = vector(1)",
        "  vbar2 = 2*(v2 .* vbar3)",
        "  vbar1 = vbar2",
        "  wbar = X'*vbar1",
        "gradient:",
        "  df/dw = 2*X'*(X*w - y)",
    ]
    code, out, _ = run(capsys, "derive", "--matrix", "norm2(X*w - y)^2", *args, "--format", "latex")
    assert out.startswith("\\begin{align*}") and "\\bar{w} &= X^{T} \\bar{v}_{1}" in out


def test_cli_compile_matrix_is_a_standalone_module(capsys, tmp_path):
    args = ["--shape", "X=m,n", "--shape", "w=n", "--shape", "y=m", "--wrt", "w"]
    formula = "sum(log(exp(-y.*(X*w)) + vector(1)))"
    code, out, _ = run(capsys, "compile", "--matrix", formula, *args)
    assert code == 0 and "import symgrad" not in out
    (tmp_path / "logreg.py").write_text(out)
    script = (
        "import sys; sys.path.insert(0, '.')\n"
        "import numpy as np, logreg\n"
        "r = np.random.default_rng(0)\n"
        "X = r.normal(size=(7, 3)); w = r.normal(size=(3, 1)); y = r.choice([-1.0, 1.0], (7, 1))\n"
        "f, (g,) = logreg.value_and_grad(w, X, y)\n"
        "s = 1 / (1 + np.exp(y * (X @ w)))\n"
        "assert abs(f - np.sum(np.log1p(np.exp(-y * (X @ w))))) < 1e-12\n"
        "assert np.allclose(g, -X.T @ (y * s), rtol=1e-12)\n"
        "try:\n    logreg.value_and_grad(w, X, y[:3])\nexcept ValueError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ShapeError argument y has shape (3, 1), expected (m, 1)\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["diff", "--matrix", "x'*A*y", *SH, "--shape", "y=m"], "inner dimensions"),
        (["diff", "--matrix", "x'*A*x", "--shape", "A=n,n,n"], "--shape"),
        (["diff", "--matrix", "x'*A*x", *SH, "--wrt", "z"], "--wrt"),
        (["diff", "x**2", "--shape", "A=n,n"], "--shape needs --matrix"),
        (["diff", "--matrix", "__import__('os')", *SH], "unknown function"),
        (["derive", "--matrix", "x'*A*x", *SH, "--at", "x=1"], "--at"),
    ],
)
def test_cli_matrix_bad_input(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("symgrad: error: ") and message in err


def test_cli_numbers_of_the_gradient(capsys):
    code, out, _ = run(capsys, "compile", "--matrix", "x'*A*x", *SH, "--wrt", "x")
    assert code == 0
    namespace: dict = {}
    exec(compile(out, "<cli>", "exec"), namespace)  # generated code, written by symgrad
    rng = np.random.default_rng(3)
    A0, x0 = rng.normal(size=(4, 4)), rng.normal(size=(4, 1))
    f, (g,) = namespace["value_and_grad"](x0, A0)
    np.testing.assert_allclose(g, (A0 + A0.T) @ x0, rtol=1e-12)
    assert abs(f - (x0.T @ A0 @ x0).item()) < 1e-12
