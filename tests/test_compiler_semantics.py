"""One IEEE semantics on every Python target, exact constants, typed errors, export, pickling.

References are independent of the code under test: NumPy evaluated directly, ``fractions``,
``mpmath``, Python's ``math``.
"""

from __future__ import annotations

import gc
import linecache
import multiprocessing
import pickle
import subprocess
import sys
import warnings
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp

from symgrad import check_grad, lambdify, value_and_grad
from symgrad.codegen.compile import program
from symgrad.errors import ArgumentError, InputTypeError, OptionError, ShapeError
from tests.threads import run_threads

x, y, z = sp.symbols("x y z")


def _both(f, value):
    """f at a Python float and at a 1-element array (each with its warnings recorded)."""
    with warnings.catch_warnings(record=True) as w_scalar:
        warnings.simplefilter("always")
        s = f(value)
    with warnings.catch_warnings(record=True) as w_array:
        warnings.simplefilter("always")
        a = f(np.array([value]))[0]
    return s, a, [str(w.message) for w in w_scalar], [str(w.message) for w in w_array]


@pytest.mark.parametrize(
    "expr, at, expected, warns",
    [
        (1 / x, 0.0, np.inf, "divide by zero"),
        (1 / x, -0.0, -np.inf, "divide by zero"),
        (x**-2, 0.0, np.inf, "divide by zero"),
        (x**1.5, -2.0, np.nan, "invalid value"),
        (sp.sqrt(x), -1.0, np.nan, "invalid value"),
        (sp.log(x), 0.0, -np.inf, "divide by zero"),
        (sp.exp(x), 1000.0, np.inf, "overflow"),
        (x**2, 1e200, np.inf, None),
    ],
)
def test_float_path_gives_numpys_ieee_answer_and_warning(expr, at, expected, warns):
    f = lambdify(expr, [x])
    s, a, ws, wa = _both(f, at)
    ref = np.float64(expected)
    for got in (s, a):
        assert (np.isnan(got) and np.isnan(ref)) or got == ref
        assert np.signbit(got) == np.signbit(ref) or np.isnan(ref)
    if warns:
        assert any(warns in m for m in ws) and any(warns in m for m in wa)


def test_value_and_grad_on_floats_outside_the_domain():
    f = value_and_grad(x**1.5, x)
    with pytest.warns(RuntimeWarning):
        value, g = f(-2.0)
    assert np.isnan(value) and np.isnan(g)
    assert not isinstance(value, complex)


@pytest.mark.parametrize("at", [np.nan, 0.0, -0.0, -3.5, 2.0, np.inf])
def test_sign_follows_numpy(at):
    f = lambdify(sp.sign(x), [x])
    s, a, _, _ = _both(f, at)
    ref = np.sign(at)
    for got in (s, a):
        assert (np.isnan(got) and np.isnan(ref)) or got == ref


@pytest.mark.parametrize("a, b", [(-1.0, 2.0), (1.0, -2.0), (-7.5, 2.0), (5.0, 3.0), (-0.0, 2.0)])
def test_mod_follows_numpy(a, b):
    f = lambdify(sp.Mod(x, y), [x, y])
    assert f(a, b) == np.mod(a, b)
    assert f(np.array([a]), np.array([b]))[0] == np.mod(a, b)


def test_gamma_at_poles_is_ieee_not_an_exception():
    f = lambdify(sp.gamma(x), [x])
    values = np.array([0.0, -0.0, -1.0, -2.0, 0.5, 200.0])
    # C99 tgamma: +-inf at +-0, NaN at the negative integers, +inf on overflow
    expected = [np.inf, -np.inf, np.nan, np.nan, float(mpmath.sqrt(mpmath.pi)), np.inf]
    with pytest.warns(RuntimeWarning, match="overflow"):  # gamma(200) overflows, as in C
        got = f(values)
    np.testing.assert_array_equal(got, expected)
    for v, e in zip(values, expected, strict=True):
        got = f(float(v))
        assert (np.isnan(got) and np.isnan(e)) or got == pytest.approx(e, rel=1e-15)


CONSTANTS = [
    sp.pi,
    sp.E,
    sp.EulerGamma,
    sp.Catalan,
    sp.GoldenRatio,
    sp.TribonacciConstant,
]


@pytest.mark.parametrize("c", CONSTANTS, ids=str)
def test_every_sympy_constant_is_its_double(c):
    ref = float(mpmath.mpf(sp.N(c, 40)))
    f = lambdify(c * x + c, [x])
    assert f(1.0) == 2 * ref
    assert f(np.array([1.0]))[0] == 2 * ref


@pytest.mark.parametrize(
    "const, ref",
    [
        (sp.oo, np.inf),
        (-sp.oo, -np.inf),
        (sp.zoo, np.inf),
        (sp.nan, np.nan),
        (sp.Float("1e400"), np.inf),
        (sp.Float("-1e400"), -np.inf),
        (sp.Integer(2**1100), np.inf),
    ],
    ids=str,
)
def test_special_numbers_print(const, ref):
    f = lambdify([sp.Add(const, x, evaluate=False)], [x])
    for got in (f(1.0)[0], f(np.array([1.0]))[0][0]):
        assert (np.isnan(got) and np.isnan(ref)) or got == ref


def test_rationals_with_huge_parts_are_correctly_rounded():
    r = sp.Rational(2**1100, 3**690)
    ref = float(Fraction(2**1100, 3**690))
    f = lambdify(r * x, [x])
    assert f(1.0) == ref
    assert f(np.array([1.0, 2.0])).tolist() == [ref, 2 * ref]
    tiny = lambdify(sp.Rational(1, 3**700) * x, [x])
    assert tiny(1.0) == float(Fraction(1, 3**700))


def test_check_grad_on_thousands_of_statements():
    ws = sp.symbols("w0:2")
    c = [sp.Rational(k, 900) for k in range(1, 900)]
    e = sp.Add(*[sp.tanh(ws[0] * k + ws[1]) * sp.sin(k * ws[1]) for k in c])
    report = check_grad(e, list(ws), at={ws[0]: 0.01, ws[1]: 0.02})
    assert report.ok


@pytest.mark.parametrize(
    "name", ["import", "numpy", "math", "_kernel", "type", "float", "not valid", "", "_a0", 3]
)
def test_unsafe_names_are_refused(name):
    with pytest.raises(OptionError):
        lambdify(x, [x], name=name)


def test_safe_name_is_used():
    f = lambdify(x + 1, [x], name="plus_one")
    assert f.source.startswith("def plus_one(") and f(1.0) == 2.0


def test_sympys_argument_order_gets_a_hint():
    with pytest.raises(InputTypeError, match=r"did you mean lambdify\(outputs, args\)"):
        lambdify([x], x**2)
    with pytest.raises(InputTypeError, match="did you mean"):
        lambdify([x, y], [x * y, x + y])


def test_bad_arguments_name_the_argument():
    f = lambdify(x + y + z, [x, [y, z]])
    with pytest.raises(ArgumentError, match=r"argument 1 \(a vector of 2\) is missing"):
        f(1.0)
    with pytest.raises(ArgumentError, match="takes 2 argument"):
        f(1.0, [1.0, 2.0], 3.0)
    with pytest.raises(ShapeError, match=r"argument 1 \(a vector of 2\) must have 2 entries"):
        f(1.0, [1.0, 2.0, 3.0])
    with pytest.raises(ArgumentError, match=r"argument 0 \(x\) must be numeric"):
        f(np.array(["a"]), [1.0, 2.0])
    with pytest.raises(ShapeError, match="x: \\(2,\\)"):
        f(np.zeros(2), np.zeros((2, 3)))


def test_linecache_entries_die_with_their_functions():
    def count():
        return sum(1 for k in linecache.cache if str(k).startswith("<symgrad:"))

    gc.collect()
    before = count()
    fs = [lambdify(x + k, [x]) for k in range(30)]
    assert count() == before + 30
    del fs
    gc.collect()
    assert count() == before


def _outputs():
    return [sp.tanh(x * y) + sp.erf(x), [y * sp.exp(-x), x**3]]


def test_export_runs_without_symgrad(tmp_path):
    f = lambdify(_outputs(), [x, y], name="model")
    f.export(tmp_path / "model_np.py")
    f.export(tmp_path / "model_py.py", target="python")
    # symgrad is blocked in the child (it may be installed in this environment): the exported
    # modules must import and run with NumPy alone
    code = (
        "import sys, json\n"
        "sys.modules['symgrad'] = None\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import numpy as np, model_np, model_py\n"
        "a = model_np.model(np.array([0.3, -1.2]), np.array([0.5, 2.0]))\n"
        "b = model_py.model(0.3, 0.5)\n"
        "print(json.dumps([a[0].tolist(), a[1].tolist(), b[0], b[1]]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    import json

    a0, a1, b0, b1 = json.loads(out.stdout)
    ref = f(np.array([0.3, -1.2]), np.array([0.5, 2.0]))
    np.testing.assert_array_equal(a0, ref[0])
    np.testing.assert_array_equal(a1, ref[1])
    assert b0 == pytest.approx(f(0.3, 0.5)[0], rel=1e-15)
    np.testing.assert_allclose(b1, f(0.3, 0.5)[1], rtol=1e-15)
    text = (tmp_path / "model_np.py").read_text()
    assert "tanh(x*y) + erf(x)" in text  # the formula in the docstring
    imports = [ln for ln in text.splitlines() if ln.startswith(("import ", "from "))]
    assert all("symgrad" not in ln for ln in imports)
    assert [
        ln for ln in (tmp_path / "model_py.py").read_text().splitlines() if ln.startswith("import")
    ] == ["import math"]


def test_export_replaces_only_the_named_file(tmp_path):
    target = tmp_path / "f.py"
    target.write_text("old")
    lambdify(x, [x], name="f").export(target)
    assert "def f(" in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.py"]  # no temporary left


def test_pickle_round_trip():
    f = value_and_grad(sp.tanh(x * y), [x, y])
    g = pickle.loads(pickle.dumps(f))
    assert g.source == f.source
    batch = np.array([[0.1, 0.2], [0.3, -0.4]])
    np.testing.assert_array_equal(g(batch)[1], f(batch)[1])


def _apply(args):
    fn, v = args
    return float(fn(v, 2.0))


def test_multiprocessing_pool_map():
    f = lambdify(x * y + sp.sin(x), [x, y])
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        got = pool.map(_apply, [(f, v) for v in (0.0, 1.0, 2.0)])
    assert got == [f(v, 2.0) for v in (0.0, 1.0, 2.0)]


def test_float_outputs_tuple_gives_the_same_numbers_without_arrays():
    f = value_and_grad(sp.tanh(x * y) * z, [x, y, z], [x, y, z], float_outputs="tuple")
    g = value_and_grad(sp.tanh(x * y) * z, [x, y, z], [x, y, z])
    value, grad = f(0.3, -0.7, 2.0)
    assert type(grad) is tuple and all(type(v) is float for v in grad)
    assert value == g(0.3, -0.7, 2.0)[0]
    np.testing.assert_array_equal(grad, g(0.3, -0.7, 2.0)[1])
    assert isinstance(f(np.array([0.3]), -0.7, 2.0)[1], np.ndarray)  # arrays in: arrays out
    with pytest.raises(OptionError):
        lambdify(x, [x], float_outputs="list")


def test_cli_compile_standalone_module(tmp_path, capsys):
    from symgrad import cli

    out = tmp_path / "neuron.py"
    assert cli.main(["compile", "tanh(w*x + b)", "--standalone", "-o", str(out)]) == 0
    capsys.readouterr()
    code = (
        "import sys, json, numpy as np\n"
        "sys.modules['symgrad'] = None\n"  # the standalone module must not need symgrad
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import neuron\n"
        "v, g = neuron.symgrad_fn(np.array([0.5, -1.0, 2.0]))\n"
        "print(json.dumps([float(v), g.tolist()]))\n"
    )
    got = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    ).stdout
    import json

    v, g = json.loads(got)
    b, w, xv = 0.5, -1.0, 2.0  # symbols in sorted order: b, w, x
    t = np.tanh(w * xv + b)
    assert v == pytest.approx(t, rel=1e-15)
    np.testing.assert_allclose(g, [1 - t**2, xv * (1 - t**2), w * (1 - t**2)], rtol=1e-14)


def test_a_float32_parameter_vector_stays_float32_like_a_batch_of_them():
    # the Python-float path takes 1-D float64 vectors only: a float32 vector gives what NumPy
    # computes in float32, as a batch of float32 vectors does
    x_, y_ = sp.symbols("x y")
    f = value_and_grad(x_**2 * y_ + 3, [x_, y_])
    v32 = np.array([1.1, 2.0], dtype=np.float32)
    value, grad = f(v32)
    batch_value, batch_grad = f(np.stack([v32, v32], axis=1))
    assert np.asarray(value).dtype == np.float32 == batch_value.dtype
    assert grad.dtype == np.float32 == batch_grad.dtype
    assert float(value) == float(batch_value[0]) and grad.tolist() == batch_grad[:, 0].tolist()
    value64, _ = f(v32.astype(np.float64))
    assert type(value64) is float


def _large_program():
    # a 2-6-6-1 tanh network: more operations than the float path is built eagerly for
    from symgrad.codegen.pyfloat import EAGER_LIMIT
    from symgrad.nn import MLP

    xs = list(sp.symbols("x0:2"))
    model = MLP(2, [6, 6, 1], activation="tanh", rng=__import__("random").Random(0))
    theta = model.parameter_symbols()
    loss = (model.symbolic(xs)[0] - 1) ** 2
    f = value_and_grad(loss, theta, [*xs, theta])
    assert program(loss, [*xs, theta]).n_operations < EAGER_LIMIT  # the value alone: eager
    assert "return _float_path(" in f.source
    p = np.random.default_rng(1).uniform(-1, 1, len(theta)).tolist()
    return f, loss, theta, xs, p


def test_a_large_programs_float_path_is_built_on_its_first_float_call():
    f, loss, theta, xs, p = _large_program()
    assert "return _float_path(" in f.source
    namespace = f._fn.__globals__
    assert type(namespace["_float_path"]).__name__ == "_LazyFloatPath"
    value, grad = f(0.5, -0.25, p)  # builds it
    assert type(namespace["_float_path"]).__name__ == "function"
    assert type(value) is float and type(grad) is np.ndarray
    again = f(0.5, -0.25, p)
    batch_value, batch_grad = f(np.array([0.5]), np.array([-0.25]), np.array(p))
    assert again[0] == value and again[1].tolist() == grad.tolist()
    assert value == pytest.approx(float(batch_value[0]), rel=1e-13)
    np.testing.assert_allclose(grad, batch_grad[:, 0], rtol=1e-12, atol=1e-15)
    # an independent reference: SymPy's own function of the same loss and gradient
    ref = sp.lambdify([*xs, theta], [loss, [sp.diff(loss, t) for t in theta]])(0.5, -0.25, p)
    assert value == pytest.approx(ref[0], rel=1e-12)
    np.testing.assert_allclose(grad, ref[1], rtol=1e-10, atol=1e-13)


def test_threads_racing_to_the_lazy_float_path_build_it_once(monkeypatch):
    import threading
    import time

    from symgrad.codegen import compile as compile_module

    real, calls = compile_module.float_path_source, []

    def slow(prog, stacked):  # widen the window in which the other threads arrive
        calls.append(1)
        time.sleep(0.05)
        return real(prog, stacked)

    monkeypatch.setattr(compile_module, "float_path_source", slow)
    f, *_, p = _large_program()
    namespace = f._fn.__globals__
    lazy = namespace["_float_path"]
    results, barrier = [None] * 6, threading.Barrier(6)

    def call(k):
        barrier.wait()
        results[k] = f(0.5, -0.25, p)

    run_threads(call, 6)
    assert len(calls) == 1
    built = namespace["_float_path"]
    assert type(built).__name__ == "function"
    # a caller that looked the name up before the replacement reaches the lazy object late:
    # it answers with the built path and leaves it in place
    late = lazy(0.5, -0.25, p)
    assert namespace["_float_path"] is built
    want = f(np.array([0.5]), np.array([-0.25]), np.array(p))
    for value, grad in [*results, late]:
        assert type(value) is float and value == pytest.approx(float(want[0][0]), rel=1e-13)
        np.testing.assert_allclose(grad, want[1][:, 0], rtol=1e-12, atol=1e-15)


def test_without_a_float_path_the_numpy_statements_answer(monkeypatch):
    from symgrad.codegen import compile as compile_module

    monkeypatch.setattr(compile_module, "float_path_source", lambda prog, stacked: None)
    f, *_, p = _large_program()
    value, grad = f(0.5, -0.25, p)
    want = f(np.float64(0.5), np.float64(-0.25), np.array(p))
    assert float(value) == float(want[0]) and grad.tolist() == want[1].tolist()
    # an unpickled function has the source only: its float calls take the NumPy statements
    g = pickle.loads(pickle.dumps(f))
    assert float(g(0.5, -0.25, p)[0]) == pytest.approx(float(value), rel=1e-13)


def test_an_exported_large_program_holds_its_float_path_inline(tmp_path):
    f = _large_program()[0]
    f.export(tmp_path / "net.py")
    text = (tmp_path / "net.py").read_text()
    assert "return _float_path(" not in text and "_s0 = " in text
