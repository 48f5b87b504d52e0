"""Every public entry point, fed wrong types, empty and malformed input (hypothesis): only
``SymgradError`` subclasses escape: never a raw ``TypeError``, ``AttributeError``,
``RecursionError``, a NumPy warning turned error, or a traceback from the command line.

The entry points are ``symgrad.__all__``, ``symgrad.nn.__all__``, ``symgrad.numerical.__all__``,
those of ``symgrad.torch``, ``symgrad.jax`` and ``symgrad.dask`` where their engine is installed,
the public functions of ``symgrad.matrix``, the methods of a ``Derivation`` and a ``Value``, and
``symgrad.cli.main``. Each call fills the function's parameters
(required ones always, optional ones sometimes) with values from ``HOSTILE``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import math
import sys
import warnings

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad
import symgrad.matrix
import symgrad.nn
from symgrad.cli import main
from symgrad.errors import SymgradError

x, y = sp.symbols("x y")

HOSTILE = [
    None,
    "",
    " ",
    "x",
    "x +",
    "__import__('os')",
    "x" * 200,
    "\x00",
    "é",
    b"\xff\xfe",
    0,
    -1,
    1.5,
    10**400,
    math.nan,
    math.inf,
    1j,
    True,
    [],
    [[]],
    ["x", 1],
    (),
    {},
    {"x": "y"},
    {x: math.nan},
    set(),
    object(),
    x,
    x * y,
    sp.oo,
    sp.zoo,
    sp.Symbol(""),
    sp.Matrix([]),
    np.array([]),
    np.array([[1.0, np.nan]]),
    np.zeros((0, 3)),
    np.array(["a"]),
    lambda *a: None,
    int,
]
VALUES = st.sampled_from(HOSTILE)


def _entry_points():
    points = []
    optional = []
    for name in ("symgrad.torch", "symgrad.jax", "symgrad.dask"):  # where the engine is installed
        with contextlib.suppress(SymgradError):
            optional.append(importlib.import_module(name))
    for mod in (symgrad, symgrad.nn, symgrad.numerical, *optional):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj) and not (
                inspect.isclass(obj) and issubclass(obj, (BaseException, Warning))
            ):
                points.append((f"{mod.__name__}.{name}", obj))
    for name in symgrad.matrix.__all__:
        obj = getattr(symgrad.matrix, name)
        if inspect.isfunction(obj):
            points.append((f"symgrad.matrix.{name}", obj))
    # the methods of what the entry points return
    derivation = symgrad.derive(x * y, at={x: 1.0, y: 2.0})
    value = symgrad.Value(2.0)
    for obj, names in (
        (derivation, ["text", "latex", "markdown", "name", "simplified", "contributions", "kind"]),
        (value, ["__add__", "__mul__", "__pow__", "__truediv__", "__rpow__", "__rsub__"]),
        (value, ["tanh", "exp", "relu", "backward"]),
    ):
        points += [(f"{type(obj).__name__}.{name}", getattr(obj, name)) for name in names]
    return points


ENTRY_POINTS = [pytest.param(name, fn, id=name) for name, fn in _entry_points()]


def _parameters(fn) -> list[inspect.Parameter]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [
        p
        for p in sig.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.name != "self"
        and not p.name.startswith("_")  # private (e.g. Value's _children): not an interface
    ]


@pytest.mark.parametrize(("name", "fn"), ENTRY_POINTS)
@settings(
    max_examples=40,
    derandomize=True,  # the same examples every run: a failure is reproducible
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_only_symgrad_errors_escape(name, fn, data):
    args, kwargs = [], {}
    for p in _parameters(fn):
        required = p.default is inspect.Parameter.empty
        if not required and not data.draw(st.booleans(), label=f"set {p.name}"):
            continue
        value = data.draw(VALUES, label=p.name)
        if p.kind == p.KEYWORD_ONLY or not required:
            kwargs[p.name] = value
        else:
            args.append(value)
    with warnings.catch_warnings(), _memory_cap(3 << 30):
        warnings.simplefilter("error")
        with contextlib.suppress(SymgradError):
            fn(*args, **kwargs)


@contextlib.contextmanager
def _memory_cap(extra: int):
    """At most ``extra`` more bytes of address space during a call (Linux): an unbounded
    allocation on hostile input fails here with MemoryError instead of exhausting the machine."""
    try:
        import resource

        with open("/proc/self/status") as fh:
            size = next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmSize:"))
    except (ImportError, OSError, StopIteration):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size + extra if hard == resource.RLIM_INFINITY else min(hard, size + extra)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


ARGV_WORDS = st.sampled_from(
    [
        "diff", "derive", "check", "compile", "graph", "demo", "-", "--wrt", "--at", "--format",
        "json", "--claimed", "-o", "--max-steps", "--rtol", "x", "x**2", "log(x)", "1/x",
        "x=0", "x=1,y=2", "y", "", "__x", "e", "pi", "--help-not", "-T", "svg", "/proc/x.svg",
        "--depth", "-3", "nan", "1e999", "max(x, y)", "x^^2", "(" * 50,
    ]
)  # fmt: skip


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(argv=st.lists(ARGV_WORDS, max_size=7), stdin=st.sampled_from(["", "x*y", "\xff"]))
def test_the_command_never_raises(argv, stdin):
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8", "surrogateescape")))
    try:
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("error")
            try:
                code = main(argv)
            except SystemExit as exc:  # only --help / --version exit through argparse
                code = exc.code
    finally:
        sys.stdin = old
    assert isinstance(code, int)
    assert "Traceback" not in err.getvalue()
    assert code != 70, err.getvalue()  # an internal error is a bug
    if code not in (0, 1):
        lines = err.getvalue().splitlines()
        assert lines and lines[0].startswith("symgrad: error: "), err.getvalue()
