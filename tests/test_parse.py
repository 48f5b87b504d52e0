"""Tests of symgrad.parse: correct results, no code execution, bounded work, exact positions."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symgrad.errors import DomainError, InputTypeError, ParseError
from symgrad.functions import sigmoid
from symgrad.parse import FUNCTION_NAMES, parse

x, y, z, r, b = sp.symbols("x y z r b")
w1, w2, x1, x2 = sp.symbols("w1 w2 x1 x2")


# ------------------------------------------------------------------ correct parses
# Expected values are built with SymPy directly, never with parse.
CORRECT = [
    ("3*x**2 - 4*x + 5", 3 * x**2 - 4 * x + 5),
    ("x^2", x**2),
    ("-x", -x),
    ("sin(x)*exp(-y)/2", sp.sin(x) * sp.exp(-y) / 2),
    ("log(x, 2)", sp.log(x, 2)),
    ("tanh(w1*x1 + w2*x2 + b)", sp.tanh(w1 * x1 + w2 * x2 + b)),
    ("sigmoid(z)", sigmoid(z)),
    ("relu(z)", sp.Max(0, z)),
    ("max(x, y)", sp.Max(x, y)),
    ("pi*r**2", sp.pi * r**2),
    ("e**x", sp.exp(x)),
    ("E**x", sp.exp(x)),
    ("x/2", sp.Mul(sp.Rational(1, 2), x)),
    ("x - y - z", x - y - z),
    ("x/y/z", x / y / z),
    ("-x**2", -(x**2)),
    ("-x^2", -(x**2)),
    ("2**-1", sp.Rational(1, 2)),
    ("2**3**2", sp.Integer(512)),
    ("x^y^z", x ** (y**z)),
    ("+x", x),
    ("- - x", x),
    ("1/10", sp.Rational(1, 10)),
    ("0.1", sp.Float(0.1)),
    ("1e-3", sp.Float(0.001)),
    (".5 + 2.", sp.Float(2.5)),
    ("ln(x) + abs(y)", sp.log(x) + sp.Abs(y)),
    ("atan2(y, x)", sp.atan2(y, x)),
    ("heaviside(x) + Heaviside(y, 1)", sp.Heaviside(x) + sp.Heaviside(y, 1)),
    ("sqrt(x) + cbrt(y)", sp.sqrt(x) + sp.cbrt(y)),
    (
        "floor(x) + ceiling(y) + erf(z) + sign(x)",
        sp.floor(x) + sp.ceiling(y) + sp.erf(z) + sp.sign(x),
    ),
    ("min(x, y, z)", sp.Min(x, y, z)),
    ("re(x) + im(y)", sp.re(x) + sp.im(y)),  # SymPy prints these, e.g. for Abs(exp(x))
    ("Max(x, Min(y, z))", sp.Max(x, sp.Min(y, z))),
    ("acsch(x) + asech(y) + acoth(z)", sp.acsch(x) + sp.asech(y) + sp.acoth(z)),
    ("  (x +\n y)\t ", x + y),
    ("sqrt(8)", 2 * sp.sqrt(2)),
    ("cos(0)", sp.Integer(1)),
]


@pytest.mark.parametrize(("text", "expected"), CORRECT)
def test_parses_like_sympy(text: str, expected: sp.Expr) -> None:
    result = parse(text)
    assert result == expected
    assert sp.srepr(result) == sp.srepr(expected)  # same tree, not just equal


def test_float_policy_is_ieee_double() -> None:
    value = parse("0.1")
    assert isinstance(value, sp.Float) and value._prec == 53
    assert float(value) == 0.1


def test_long_sum_is_flat_and_not_limited_by_recursion() -> None:
    text = " + ".join(f"x{i}" for i in range(3000))  # Python's ast.parse fails on this
    assert parse(text, max_nodes=10_000) == sp.Add(*sp.symbols("x0:3000"))


def test_deep_but_allowed_nesting() -> None:
    assert parse("sigmoid(" * 99 + "x" + ")" * 99).args[0].func is sigmoid
    assert parse("-" * 99 + "x") == -x


def test_constants() -> None:
    assert parse("sqrt(2)/2 + log(2*pi) + 1/(1 + exp(-1))") == (
        sp.sqrt(2) / 2 + sp.log(2 * sp.pi) + 1 / (1 + sp.exp(-1))
    )
    # sigmoid of a symbolic constant is read as a double (see parse's docstring)
    value = parse("sigmoid(sigmoid(sin(1)))")
    assert isinstance(value, sp.Float)
    assert abs(float(value) - 1 / (1 + sp.exp(-1 / (1 + sp.exp(-sp.sin(1)))))) < 1e-14
    assert parse("sigmoid(1/2)") == sigmoid(sp.Rational(1, 2))  # exact numbers stay exact


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("acsc(1/2)", "complex"),  # SymPy cannot tell it is complex; evaluation does
        ("(-1)**e", "complex"),
        # found by test_fuzz_grammar: a complex value of magnitude 1e-943 was taken for real
        ("-(-1e300)**(-pi)", "complex"),
        ("log(0) + x", "undefined or infinite"),
        ("tan(pi/2)", "undefined or infinite"),
        ("1e308*10.0", "overflow"),
        ("sin(" * 10 + "1" + ")" * 10, "constant subexpression"),
        ("+".join(f"sin({i})" for i in range(1, 40)), "constant subexpression"),
        ("floor(exp(pi*sqrt(163)))", "close to an integer"),  # 262537412640768743.99999999999925
    ],
)
def test_refused_constants(text: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(text)


def test_symbols_mapping_keeps_assumptions() -> None:
    t = sp.Symbol("t", positive=True)
    assert parse("sqrt(t**2)", {"t": t}) == t
    assert parse("sqrt(t**2)", [t]) == t
    assert parse("t + u", [t], strict=False) == t + sp.Symbol("u")


def test_strict_names() -> None:
    with pytest.raises(ParseError, match="unknown name 'u'") as info:
        parse("t + u", [sp.Symbol("t")])  # strict by default when symbols are given
    assert info.value.position == 4
    with pytest.raises(ParseError, match="unknown name"):
        parse("x", strict=True)
    assert parse("pi*t", [sp.Symbol("t")]) == sp.pi * sp.Symbol("t")


@pytest.mark.parametrize(
    "symbols",
    [{"__x": sp.Symbol("__x")}, [sp.Symbol("x y")], {"sin": sp.Symbol("sin")}, [sp.Symbol("e")]],
)
def test_invalid_symbol_names(symbols: object) -> None:
    with pytest.raises(ParseError, match="invalid symbol name"):
        parse("1", symbols)


@pytest.mark.parametrize("symbols", ["x y", sp.Symbol("x"), {"x": "x"}, [1]])
def test_symbols_of_wrong_type(symbols: object) -> None:
    with pytest.raises(InputTypeError):
        parse("x", symbols)


def test_bad_arguments() -> None:
    with pytest.raises(InputTypeError):
        parse(b"x")  # type: ignore[arg-type]
    with pytest.raises(DomainError):
        parse("x", max_depth=0)


# ------------------------------------------------------------------ security
ATTACKS = [
    "__import__('os').system('touch SENTINEL')",
    "().__class__.__base__.__subclasses__()",
    "x.__class__",
    "lambda: 1",
    "[i for i in x]",
    "{}",
    "eval('1')",
    "exec('1')",
    "compile('1', '', 'eval')",
    "getattr(x, 'y')",
    "__builtins__",
    'f"{x}"',
    "'a'",
    "b'a'",
    "x[0]",
    "sin(x=1)",
    "sin(*x)",
    "(x)(y)",
    "x if y else z",
    "(y := 1)",
    "x == y",
    "x and y",
    "not x",
    "1j",
    "sin + 1",
    "open",
    "_x",
    "x; y",
    "x # comment",
    "\\\nx",
    "x\x00",
    "Ｘ",  # fullwidth X, which Python itself would NFKC-normalise to X
]


@pytest.mark.parametrize("text", ATTACKS)
def test_attacks_are_rejected(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.position is not None and 0 <= info.value.position <= len(text)


def test_nothing_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sentinel = tmp_path / "SENTINEL"
    payloads = [
        "__import__('os').system('touch SENTINEL')",
        f"__import__('pathlib').Path({str(sentinel)!r}).touch()",
        f"open({str(sentinel)!r}, 'w')",
        "().__class__.__base__.__subclasses__()[0]",
    ]
    for payload in payloads:
        with pytest.raises(ParseError):
            parse(payload)
    assert not sentinel.exists()


def test_control_sympify_would_run_the_payload(tmp_path: Path) -> None:
    """The sentinel check is meaningful: SymPy's own sympify does execute the payload."""
    sentinel = tmp_path / "SENTINEL"
    sp.sympify(f"__import__('pathlib').Path({str(sentinel)!r}).touch()")
    assert sentinel.exists()


def test_parse_module_never_evaluates_text() -> None:
    source = (Path(__file__).parents[1] / "symgrad" / "parse.py").read_text()
    tree = ast.parse(source)
    banned = {"eval", "exec", "compile", "sympify", "parse_expr", "S", "__import__", "lambdify"}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = {alias.name for alias in node.names} | {getattr(node, "module", "") or ""}
            assert not any(n.startswith("sympy.parsing") or n in banned for n in names), names
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name == "compile" and isinstance(func, ast.Attribute):
            # re.compile of a constant pattern compiles a regex, not code
            assert isinstance(func.value, ast.Name) and func.value.id == "re"
            assert isinstance(node.args[0], ast.Constant)
            continue
        assert name not in banned, f"line {node.lineno}: call of {name}"


# ------------------------------------------------------------------ resource bounds
BOMBS = [
    "9**9**9",
    "x**(10**10)",
    "(" * 10_000 + "x" + ")" * 10_000,
    "x+" * 500_000 + "x",  # 1 MB
    "-" * 99_000 + "x",
    "x**" * 30_000 + "x",
    "1e999999",
    "9" * 5000,
    "2**9999*2**9999",
    "+".join(f"1/{p}" for p in sp.primerange(10**5, 10**6))[:99_000].rpartition("+")[0],
    "*".join(["99999999999"] * 8000),
    "exp(exp(exp(100)))",
    "floor(exp(9**9))",
    "2**exp(100)",
    "pi**(10**400)",  # no exact number in the base, but a huge exponent
    "(pi**1000 + 1)**1000",
    "sqrt(10**4000 + 1)",
    "sin(10**400)",
    "x**1000 * x**1000",
    "max(" + ", ".join(f"x{i}" for i in range(1000)) + ")",
    "max(max(a, b, c), max(d, e))",
    "+".join(f"x{i}" for i in range(10_000)),
    "+".join(f"max(x{i}*y{i} + 1, x{i} + 2, y{i}*z{i}, z{i} - 1)" for i in range(1000)),
    "cosh(csc(sech(acsc(1/2))))",  # 4 s in SymPy, as acsc(1/2) is complex
    "floor(acsch(csch(1/2)) + 11/2)",  # exactly 6, so SymPy's floor exhausts its precision
    "sin(" * 99 + "1" + ")" * 99,
]


@pytest.mark.parametrize("text", BOMBS, ids=lambda text: text[:30])
def test_bombs_fail_fast(text: str) -> None:
    # CPU time of this process, not wall time: a loaded machine must not fail the test; the
    # bound only catches a bomb that SymPy would expand (minutes), the real time is ~1 s at most
    start = time.process_time()
    with pytest.raises(ParseError):
        parse(text)
    assert time.process_time() - start < 10.0


def test_powers_of_sums_are_not_charged_as_numbers() -> None:
    # SymPy keeps (x + 2)**1000 unexpanded, so it costs nothing of the exact-number budget
    text = " + ".join(f"(x{i} + 2)**1000" for i in range(30))
    assert parse(text) == sp.Add(*[(s + 2) ** 1000 for s in sp.symbols("x0:30")])
    with pytest.raises(ParseError, match="exact numbers are limited"):
        parse(" + ".join(f"(2*x{i})**1000" for i in range(30)))  # these are multiplied out


@pytest.mark.parametrize(
    "text",
    [
        "sigmoid(" * 12 + "sin(1)" + ")" * 12,  # 50 s if built as nested SymPy sigmoids
        "sigmoid(" * 99 + "x" + ")" * 99,
        "+".join(f"relu(w{i}*x{i} + b{i})" for i in range(300)),
    ],
    ids=lambda text: text[:30],
)
def test_accepted_inputs_are_fast(text: str) -> None:
    start = time.perf_counter()
    parse(text)
    assert time.perf_counter() - start < 2.0


def test_limits_are_adjustable() -> None:
    assert parse("x**2000", max_exponent=2000) == x**2000
    assert parse("+".join(f"x{i}" for i in range(10_000)), max_nodes=20_000).is_Add
    with pytest.raises(ParseError, match="nested more than 3"):
        parse("((((x))))", max_depth=3)
    with pytest.raises(ParseError, match="characters long"):
        parse("x + y", max_length=4)


# ------------------------------------------------------------------ error positions
POSITIONS = [
    ("x + __y", 4, "names may not start with '__'"),
    ("sin(x, y)", 7, "sin takes 1 argument, got 2"),
    ("atan2(x)", 0, "atan2 takes 2 arguments, got 1"),
    ("log(x, 2, 3)", 10, "log takes 1 to 2 arguments, got 3"),
    ("x.y", 1, "attribute access"),
    ("(x", 2, "expected ')' to close the '(' at position 0"),
    ("x)", 1, "unmatched ')'"),
    ("2x", 0, "invalid number '2x'"),
    ("x % 2", 2, "'%'"),
    ("x // 2", 2, "floor division"),
    ("1/0", 1, "division by zero"),
    ("x + sqrt(-1)", 4, "complex"),
    ("x + acos(2)", 4, "complex"),  # complex without an I in it
    ("2*(-8)**(1/3)", 6, "complex"),  # SymPy's principal root
    ("y * foo(x)", 4, "'foo' is not an allowed function"),
    ("(x +\n y.z)", 7, "attribute access"),
    ("x**(10**10)", 1, "exponent too large"),
    ("", 0, "empty expression"),
]


@pytest.mark.parametrize(("text", "position", "reason"), POSITIONS)
def test_error_positions(text: str, position: int, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    err = info.value
    assert err.position == position
    assert reason in err.reason
    if text:
        line_start = text.rfind("\n", 0, position) + 1
        column = position - line_start
        assert str(err).splitlines()[-1] == "    " + " " * column + "^"


# ------------------------------------------------------------------ fuzzing
TOKENS = [
    *"xyz", "1", "2", "0.5", "1e3", "+", "-", "*", "/", "**", "^", "(", ")", ",", ".", "__",
    "[", "]", "'", "=", ":", "sin", "exp", "log", "sqrt", "max", "relu", "sigmoid", "pi", "e",
    "lambda", "_", "x1", " ", "\n", "abs", "floor", "atan2", "heaviside",
]  # fmt: skip


def _floats_as_printed(expr: sp.Basic) -> sp.Basic:
    """``expr`` with every Float replaced by the double its 15-digit printed form reads back as."""
    return expr.xreplace({f: sp.Float(float(str(f))) for f in expr.atoms(sp.Float)})


def _settled(expr: sp.Basic) -> sp.Basic:
    """``expr`` evaluated once more, bottom-up, as parsing its printed form evaluates it."""
    return expr.func(*map(_settled, expr.args)) if expr.args else expr


def _check_parse(text: str) -> None:
    try:
        expr = parse(text)
    except ParseError as err:
        assert err.position is None or 0 <= err.position <= len(text)
        return
    printed = str(expr)
    again = parse(printed)
    # str() prints Floats with 15 significant digits, which need not read back to the same
    # double: compare with the Floats the printed form denotes; everything else is exact.
    # SymPy's evaluation is not idempotent (Abs(-Abs(x)) gives Abs(Abs(x)), which evaluates
    # to Abs(x)), so the printed form may legitimately settle one step further.
    expected = _floats_as_printed(expr)
    if again in (expected, _settled(expected)):
        return
    # Nor is SymPy's printed form always read back as the same tree: -(x + y)/x is stored as
    # Mul(-1, 1/x, x + y) but reads as (-x - y)/x. Then parse must read it exactly as SymPy's
    # own reader does (safe here: the text is SymPy's printing of an accepted expression).
    names = {s.name: s for s in expr.free_symbols} | {"sigmoid": sigmoid}
    assert again == sp.sympify(printed, locals=names), f"{text!r} -> {printed} -> {again}"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_fuzz_random_text(text: str) -> None:
    _check_parse(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=20), st.sampled_from(["", " "]))
def test_fuzz_token_soup(tokens: list[str], sep: str) -> None:
    _check_parse(sep.join(tokens))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(FUNCTION_NAMES)), st.lists(st.sampled_from("xy12"), max_size=3))
def test_fuzz_calls(name: str, args: list[str]) -> None:
    _check_parse(f"{name}({', '.join(args)})")


LEAVES = ["x", "y", "0", "1", "2", "0.5", "1e300", "pi", "e", "(1/3)", "(-8)", "(10**400)"]


def _compound(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(parts, st.sampled_from(["+", "-", "*", "/", "**", "^"]), parts)
    calls = st.tuples(
        st.sampled_from(sorted(FUNCTION_NAMES)), st.lists(parts, min_size=1, max_size=3)
    )
    return st.one_of(
        binary.map(lambda t: f"({t[0]}){t[1]}({t[2]})"),
        parts.map(lambda p: f"-{p}"),
        calls.map(lambda t: f"{t[0]}({', '.join(t[1])})"),
    )


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.sampled_from(LEAVES), _compound, max_leaves=10))
def test_fuzz_grammar(text: str) -> None:
    start = time.perf_counter()
    _check_parse(text)
    assert time.perf_counter() - start < 2.0
