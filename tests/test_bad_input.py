"""Bad input, one test per class, on the entry points the hypothesis sweep of
``test_entry_points.py`` found letting raw exceptions through: options compared with ``==``
(NumPy arrays), integers beyond the float range, non-SymPy arguments of SymPy functions,
unchecked sequences (losses, ``l2``), absurd sizes, and the matrix API's arguments. Each bad input
gets a typed error naming the argument; the good neighbours of each case keep working and are
checked against an independent reference.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import sympy as sp

import symgrad
import symgrad.matrix as mx
from symgrad import Value, derive, draw_dot, lambdify, relu, sigmoid, value_and_grad
from symgrad.check import check_grad
from symgrad.codegen.export import module_text
from symgrad.derivation.views import latex as latex_view
from symgrad.errors import (
    BackendUnavailableError,
    DomainError,
    InputTypeError,
    OptionError,
    ShapeError,
    SymgradError,
)
from symgrad.inputs import check_choice, float_of
from symgrad.nn import (
    MLP,
    HealthMonitor,
    Layer,
    Neuron,
    hinge,
    l2,
    logistic,
    softmax_cross_entropy,
    squared_error,
)
from symgrad.numerical import step_size

x, y = sp.symbols("x y")
ARRAYS = [np.array([]), np.array([[1.0, np.nan]]), np.array(["LR"])]


# ------------------------------------------------------------ options compared with ==
OPTIONS = [
    (lambda v: derive(x**2, simplify=v), OptionError),
    (lambda v: derive(x**2).text(summarize=v), OptionError),
    (lambda v: latex_view(derive(x**2), environment=v), OptionError),
    (lambda v: draw_dot(x * y, rankdir=v), OptionError),
    (lambda v: draw_dot(x * y, legend=v), OptionError),
    (lambda v: lambdify(x**2, [x], backend=v), BackendUnavailableError),
    (lambda v: lambdify(x**2, [x], reduce=v), OptionError),
    (lambda v: lambdify(x**2, [x], float_outputs=v), OptionError),
    (lambda v: value_and_grad(x**2, [x], backend=v), BackendUnavailableError),
    (lambda v: module_text(lambdify(x**2, [x]), target=v), OptionError),
    (lambda v: step_size("central", 1.0, order=v), OptionError),
    (lambda v: mx.compile_matrix(x**2, [x], backend=v), BackendUnavailableError),
    (lambda v: Neuron(2, activation=v), OptionError),
]


@pytest.mark.parametrize("call, error", OPTIONS)
@pytest.mark.parametrize("value", [*ARRAYS, [], {}, 1j], ids=repr)
def test_an_option_of_the_wrong_type_is_an_option_error(call, error, value):
    with pytest.raises(error, match="must be one of"):
        call(value)


def test_check_choice_matches_by_kind_not_by_equality():
    assert check_choice(np.str_("LR"), ("LR", "TB"), "rankdir") == "LR"
    assert type(check_choice(np.str_("LR"), ("LR", "TB"), "rankdir")) is str
    assert check_choice(None, (None, "mean"), "reduce") is None
    with pytest.raises(OptionError, match="'auto'"):
        check_choice(1, (True, False, "auto"), "simplify")  # 1 == True, but 1 is no flag
    with pytest.raises(OptionError, match="got ndarray"):
        check_choice(np.array([True]), (True, False), "flag")


def test_valid_options_still_work():
    d = derive(x**2, simplify="canonical")
    assert d.gradients[x] == 2 * x
    assert r"\begin{aligned}" in latex_view(d, environment="aligned")
    f = lambdify(x**2, [x], reduce="mean", float_outputs="tuple")
    assert float(f(np.array([1.0, 3.0]))) == pytest.approx((1 + 9) / 2)


# ------------------------------------------------------------ integers beyond the float range
def test_float_of_rounds_overflowing_integers_to_signed_infinity():
    assert float_of(10**400) == math.inf
    assert float_of(-(10**400)) == -math.inf
    assert float_of(2**53 + 1) == float(2**53 + 1)


def test_a_huge_integer_is_infinity_for_value_as_in_numpy_float_arithmetic():
    assert Value(10**400).data == math.inf
    assert Value(-(10**400)).data == -math.inf
    assert (Value(2.0) + 10**400).data == np.float64(2.0) + np.inf


def test_a_huge_integer_at_a_point_is_infinity():
    d = derive(x**2, at={x: 10**400})
    assert d.values[x] == math.inf


def test_a_huge_tolerance_is_refused_with_its_name():
    with pytest.raises(OptionError, match="rtol must be a finite number"):
        check_grad(x**2, at={x: 1.0}, rtol=10**400)
    with pytest.raises(OptionError, match="need 0 <= vanish < explode"):
        HealthMonitor([], vanish=-(10**400))


# ------------------------------------------------------------ relu and sigmoid arguments
@pytest.mark.parametrize("fn", [relu, sigmoid], ids=["relu", "sigmoid"])
@pytest.mark.parametrize("bad", ["x", "__import__('os')", "\x00", None, [], int, object()])
def test_relu_and_sigmoid_refuse_what_is_not_an_expression_and_never_parse_text(fn, bad):
    with pytest.raises(InputTypeError, match=f"{fn.__name__} expects a SymPy expression"):
        fn(bad)


def test_sigmoid_takes_one_argument():
    with pytest.raises(InputTypeError, match="one argument"):
        sigmoid(x, y)


def test_relu_of_nan_is_nan_as_numpy_maximum():
    assert np.isnan(np.maximum(0.0, np.nan))
    assert relu(math.nan) is sp.nan
    assert relu(sp.nan) is sp.nan


@pytest.mark.parametrize("bad", [sp.zoo, sp.I, 1 + 2 * sp.I])
def test_relu_of_a_non_real_number_is_a_domain_error(bad):
    with pytest.raises(DomainError, match="real numbers"):
        relu(bad)


def test_relu_and_sigmoid_take_a_value_through_its_symbol():
    v = Value(2.0, label="v")
    assert relu(v) == sp.Max(0, v._sympy_())
    assert sigmoid(v) == sigmoid(v._sympy_())
    assert float(sigmoid(1.5)) == pytest.approx(1 / (1 + math.exp(-1.5)))


# ------------------------------------------------------------ losses and l2
LOSSES = [hinge, logistic, softmax_cross_entropy, squared_error]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "scores, targets, error, words",
    [
        (None, [x], InputTypeError, "scores"),
        ([x, y], None, InputTypeError, "targets"),
        (["x", "y"], [x, y], InputTypeError, r"scores\[0\] must be a SymPy expression"),
        ([x, y], [{}, y], InputTypeError, r"targets\[0\]"),
        (np.array(["a", "b"]), [x, y], InputTypeError, "scores"),
        ([x, y], [x], ShapeError, "2 outputs but 1 targets"),
        ([], [], InputTypeError, "empty"),
    ],
)
def test_losses_check_scores_and_targets(loss, scores, targets, error, words):
    with pytest.raises(error, match=words):
        loss(scores, targets)


def test_losses_on_good_input_match_their_formulas():
    s0, s1, t0, t1 = sp.symbols("s0 s1 t0 t1")
    at = {s0: 0.3, s1: -1.2, t0: 1.0, t1: 0.0}
    assert float(squared_error([s0], [t0]).subs(at)) == pytest.approx((0.3 - 1.0) ** 2)
    assert float(hinge([s0], [t0]).subs(at)) == pytest.approx(max(0.0, 1 - 0.3))
    want = -math.log(1 / (1 + math.exp(-0.3)))
    assert float(logistic([s0], [t0]).subs(at)) == pytest.approx(want)
    lse = math.log(math.exp(0.3) + math.exp(-1.2))
    got = float(softmax_cross_entropy([s0, s1], [t0, t1]).subs(at))
    assert got == pytest.approx(lse - 0.3)


@pytest.mark.parametrize("theta", [None, int, [], ["a"], {}])
def test_l2_refuses_what_is_not_a_list_of_parameters(theta):
    with pytest.raises(InputTypeError, match="theta"):
        l2(theta, 0.5)


def test_l2_of_parameters_is_alpha_times_the_sum_of_squares():
    assert float(l2([x, y], 0.5).subs({x: 1.0, y: 2.0})) == pytest.approx(0.5 * (1 + 4))


# ------------------------------------------------------------ sizes and indices in symgrad.nn
@pytest.mark.parametrize("n", [10**400, 10**7])
def test_an_absurd_layer_width_is_refused_before_allocating(n):
    start = time.perf_counter()
    refused = r"more than the 1,000,000 a scalar network builds; .* symgrad\.nn\.Dense"
    with pytest.raises(OptionError, match=refused):
        Neuron(n)
    with pytest.raises(OptionError, match="more than the 1,000,000"):
        MLP(2, [n, 1])
    assert time.perf_counter() - start < 5  # generous: refused up front, nothing built


@pytest.mark.parametrize(
    "build",
    [lambda: Layer(20_000, 20_000), lambda: MLP(2, [5_000, 5_000, 1])],
    ids=["layer", "mlp"],
)
def test_the_weight_count_is_bounded_not_only_each_width(build):
    start = time.perf_counter()
    with pytest.raises(OptionError, match="weights, more than the 1,000,000"):
        build()  # 4e8 and 2.5e7 weights: every width alone is allowed
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("groups", [np.array([[1.0, np.nan]]), [("a", [0.5])], [("a", "xy")]])
def test_health_monitor_groups_need_integer_indices(groups):
    with pytest.raises(InputTypeError, match="integer indices"):
        HealthMonitor(groups)


def test_health_monitor_takes_integer_and_empty_groups():
    m = HealthMonitor([("a", [0, 2]), ("b", np.array([], dtype=float))])
    assert [g.tolist() for _, g in m.groups] == [[0, 2], []]


# ------------------------------------------------------------ compiled functions
def test_compiled_function_is_not_built_by_hand():
    with pytest.raises(InputTypeError, match=r"made by symgrad\.lambdify"):
        symgrad.CompiledFunction(None, None, None, None)
    f = lambdify(x**2, [x])
    with pytest.raises(InputTypeError, match=r"made by symgrad\.lambdify"):
        symgrad.CompiledFunction(f.func, f.source, f.args, None)  # no name/backend recorded


@pytest.mark.parametrize("outputs", [sp.Matrix([]), sp.zeros(0, 3), sp.zeros(2, 0)])
def test_an_empty_output_matrix_is_an_input_error(outputs):
    with pytest.raises(InputTypeError, match="output matrix is empty"):
        lambdify(outputs, [x])


# ------------------------------------------------------------ symgrad.matrix arguments
W = sp.MatrixSymbol("W", 2, 3)
v = sp.MatrixSymbol("v", 3, 1)
b = sp.MatrixSymbol("b", 2, 1)
LOSS = mx.sumsq(mx.add(mx.matmul(W, v), b))


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: mx.simplify(set()), InputTypeError, "simplify"),
        (lambda: mx.simplify([W, np.zeros((0, 3))]), InputTypeError, r"simplify\[1\]"),
        (lambda: mx.simplify(None), InputTypeError, "simplify"),
        (lambda: mx.vjp(set(), W, 1), InputTypeError, "vjp: output"),
        (lambda: mx.vjp(mx.tanh(W), W, {}), InputTypeError, "vjp: cotangent"),
        (lambda: mx.vjp(LOSS, None, 1), InputTypeError, "wrt"),
        (lambda: mx.derive(LOSS, None), InputTypeError, "wrt"),
        (lambda: mx.derive(LOSS, x * y), InputTypeError, "wrt"),
        (lambda: mx.derive(mx.tanh(W), [W]), ShapeError, "derive needs a scalar f"),
        (lambda: mx.derive(object(), [W]), InputTypeError, "derive"),
        (lambda: mx.backprop_equations(1.5j, [W], {}), InputTypeError, "backprop_equations"),
        (lambda: mx.backprop_equations(LOSS, None, {}), InputTypeError, "wrt"),
        (lambda: mx.backprop_equations(LOSS, [W], "d"), InputTypeError, "names must be a dict"),
        (lambda: mx.backprop_equations(mx.tanh(W), [W], {}), ShapeError, "scalar f"),
        (lambda: mx.latex(["x", 1]), InputTypeError, "latex"),
        (lambda: mx.latex(x * y, names=["x"]), InputTypeError, "names must be a dict"),
        (lambda: mx.latex(x * y, names={x: "a"}), InputTypeError, "names must be a dict"),
        (lambda: mx.broadcast(b, None), ShapeError, "2-D target shape"),
        (lambda: mx.broadcast(b, (2, "x")), ShapeError, "a dimension must be"),
        (lambda: mx.broadcast(b, (2, -1)), ShapeError, "a dimension must be"),
        (lambda: mx.broadcast(b, (2, sp.Rational(1, 2))), ShapeError, "a dimension must be"),
        (lambda: mx.broadcast(None, (2, 2)), InputTypeError, "broadcast"),
        (lambda: mx.compile_matrix(LOSS, [W, v, b], name=None), OptionError, "identifier"),
        (lambda: mx.compile_matrix(LOSS, [W, v, b], name="numpy"), OptionError, "collides"),
        (lambda: mx.compile_matrix(LOSS, [W, v, b], name="f(x): pass\n"), OptionError, "name"),
        (lambda: mx.value_and_grad("x", [W]), InputTypeError, "value_and_grad"),
    ],
)
def test_matrix_entry_points_check_their_arguments(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_matrix_good_neighbours_still_work():
    assert mx.simplify([]) == []
    B = sp.Symbol("B")
    assert mx.broadcast(b, (2, B)).shape == (2, B)
    assert mx.broadcast(1, (2, 2)).shape == (2, 2)
    h = sp.MatrixSymbol("h", 2, 1)
    z = mx.add(mx.matmul(W, v), b)
    assert mx.latex(mx.tanh(z), names={z: h}) == r"\tanh{\left(h \right)}"
    eqs = mx.backprop_equations(LOSS, (w for w in [W, b]), {z: h})  # any iterable of symbols
    assert [str(e.lhs) for e in eqs.gradients] == ["dL/dW", "dL/db"]


def test_matrix_derive_over_a_scalar_symbol_matches_sympy():
    # a scalar parameter next to a matrix one: the backward pass names its adjoint xbar
    f = mx.sumsq(mx.scale(x, mx.matmul(W, v)))
    d = mx.derive(f, [W, x])
    df_dx = d.gradients[1].rhs
    rng = np.random.default_rng(0)
    Wn, vn, xn = rng.normal(size=(2, 3)), rng.normal(size=(3, 1)), 0.7
    Ws, vs = sp.Matrix(2, 3, sp.symbols("w:6")), sp.Matrix(3, 1, sp.symbols("v:3"))
    entries = (x * Ws * vs).applyfunc(lambda e: e**2)
    reference = sp.diff(sum(entries), x)
    at = {x: xn, **dict(zip(Ws, Wn.ravel(), strict=True)), **dict(zip(vs, vn.ravel(), strict=True))}
    got = float(mx.compile_matrix(df_dx, [W, v, x])(Wn, vn, xn))
    assert got == pytest.approx(float(reference.subs(at)), rel=1e-12)
    assert any(str(e.lhs) == "xbar" for e in d.backward)


def test_every_error_above_is_a_symgrad_error():
    for err in (BackendUnavailableError, DomainError, InputTypeError, OptionError, ShapeError):
        assert issubclass(err, SymgradError)


# ------------------------------------------------------------ methods and the optional engines
def test_derivation_methods_check_their_arguments():
    d = derive(x * y, at={x: 1.0, y: 2.0})
    with pytest.raises(InputTypeError, match="node must be a SymPy expression"):
        d.name([])
    for method in (d.contributions, d.kind):
        with pytest.raises(InputTypeError, match=r"one of the derivation's steps \(d.steps\)"):
            method({x: 1})
    with pytest.raises(OptionError, match="standalone must be one of True, False"):
        d.latex(standalone=np.array([]))
    assert d.name(x * y) == "f" and d.kind(d.steps[1]) == d.kind(d.steps[2])


def test_numerical_refuses_a_class_as_the_function():
    from symgrad.numerical import gradient

    with pytest.raises(InputTypeError, match="f must be a callable"):
        gradient(int, [0.0])
    assert gradient(lambda v: v[0] ** 2, [3.0]) == pytest.approx([6.0], rel=1e-8)


def test_export_takes_only_compiled_functions():
    with pytest.raises(InputTypeError, match=r"made by symgrad\.lambdify"):
        module_text(x**2)


def test_torch_module_checks_its_options():
    torch = pytest.importorskip("torch")
    from symgrad.torch import Module

    w = sp.Symbol("w")
    with pytest.raises(OptionError, match="reduce must be one of"):
        Module(w * x, [w], [x], reduce=np.array([]))
    with pytest.raises(InputTypeError, match="floating torch dtype"):
        Module(w * x, [w], [x], dtype="float64")
    with pytest.raises(InputTypeError, match="floating torch dtype"):
        Module(w * x, [w], [x], dtype=torch.int64)
    with pytest.raises(InputTypeError, match="init must be 1 real numbers"):
        Module(w * x, [w], [x], init=object())
    with pytest.raises(InputTypeError, match="params"):
        Module(w * x, math.inf, [x])
    m = Module(w * x, w, x, init=[2.0], dtype=torch.float64)  # one symbol for params and inputs
    assert m(torch.tensor([1.0, 3.0], dtype=torch.float64)).item() == pytest.approx(4.0)


def test_jax_mesh_and_shard_check_their_arguments():
    pytest.importorskip("jax")
    from symgrad.jax import mesh, shard

    for devices in (math.inf, [], ["cpu"]):
        with pytest.raises(InputTypeError, match="list of JAX devices"):
            mesh(devices)
    with pytest.raises(InputTypeError, match="numeric NumPy or JAX array"):
        shard(np.array(["a"]))
    with pytest.raises(InputTypeError, match="numeric NumPy or JAX array"):
        shard(set())
    with pytest.raises(OptionError, match="axis must be an integer"):
        shard(np.zeros((2, 4)), axis=2)
    with pytest.raises(OptionError, match="axis must be an integer"):
        shard(np.zeros((2, 4)), axis=sp.Matrix([]))
    assert np.asarray(shard(np.arange(4.0), axis=-1)).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_dask_function_is_made_by_lambdify():
    pytest.importorskip("dask")
    from symgrad.dask import DaskFunction

    with pytest.raises(InputTypeError, match=r"made by symgrad\.dask\.lambdify"):
        DaskFunction(x * y, None)
