"""``symgrad.matrix.sgd_step``: a compiled SGD step with the update inside the generated code.

References: backpropagation of a tanh MLP written out by hand in NumPy (independent of symgrad's
rules and code generator); ``value_and_grad`` followed by ``p -= lr * g`` outside (generated
without any update placement, so a misplaced in-place update shows up as a difference); and
``numpy`` products for the BLAS helper ``sub_product``.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symgrad import matrix as mx
from symgrad.codegen import c_build
from symgrad.errors import ArgumentError, InputTypeError, OptionError, ShapeError
from symgrad.matrix import fused, update
from symgrad.matrix.update import place_updates, sub_product
from symgrad.nn.dense import Dense, loss_expression
from tests.threads import run_threads

RNG = np.random.default_rng(5)
B = sp.Symbol("B", integer=True, positive=True)


@pytest.fixture(autouse=True)
def _no_warmup(monkeypatch):
    """The fused C loops from a step's first call (``fused.WARMUP_CALLS``)."""
    monkeypatch.setattr(fused, "WARMUP_CALLS", 0)


def _mlp(sizes, loss):
    """``(loss, params, args)`` of a tanh MLP built as ``symgrad.nn.Dense`` layers."""
    net = Dense(sizes[0], list(sizes[1:]), activation="tanh")
    f, X, Y = loss_expression(net, "mse" if loss == "mse" else "softmax_cross_entropy")
    params = net.parameter_symbols()
    return f, params, [*params, X, Y]


def _hand_backprop(ps, X, Y, loss):
    """Textbook backprop (samples as columns): ``(loss, grads)`` in ``ps`` order."""
    ws, bs = ps[0::2], ps[1::2]
    hs, h = [X], X
    for i in range(len(ws)):
        z = ws[i] @ h + bs[i]
        h = np.tanh(z) if i < len(ws) - 1 else z
        hs.append(h)
    n = X.shape[1]
    if loss == "mse":
        value, d = np.sum((h - Y) ** 2) / n, 2 * (h - Y) / n
    else:
        e = np.exp(h - h.max(axis=0))
        p = e / e.sum(axis=0)
        value = (np.sum(np.log(e.sum(axis=0)) + h.max(axis=0)) - np.sum(Y * h)) / n
        d = (p - Y) / n
    grads = [None] * len(ps)
    for i in range(len(ws) - 1, -1, -1):
        grads[2 * i], grads[2 * i + 1] = d @ hs[i].T, d.sum(axis=1, keepdims=True)
        if i:
            d = (1 - hs[i] ** 2) * (ws[i].T @ d)
    return value, grads


def _data(sizes, loss, batch):
    X = RNG.normal(size=(sizes[0], batch))
    if loss == "mse":
        return X, RNG.normal(size=(sizes[-1], batch))
    return X, np.eye(sizes[-1])[RNG.integers(0, sizes[-1], batch)].T.copy()


@pytest.mark.parametrize(
    ("sizes", "loss"), [((7, 5, 3), "ce"), ((4, 6, 5, 2), "mse"), ((130, 140, 3), "ce")]
)
def test_steps_follow_hand_written_backprop(sizes, loss):
    f, params, args = _mlp(sizes, loss)
    step = mx.sgd_step(f, params, args)
    # large weight gradients go straight into the weights (small ones: NumPy is faster)
    assert ("_sub_product(" in step.source) == (sizes[0] * sizes[1] >= update.GEMM_FROM)
    ps = [RNG.normal(size=p.shape) * 0.3 for p in params]
    hand = [p.copy() for p in ps]
    X, Y = _data(sizes, loss, 11)
    for lr in (0.1, 0.05, 0.2):
        value, out = step(*ps, X, Y, lr)
        want, grads = _hand_backprop(hand, X, Y, loss)
        for p, g in zip(hand, grads, strict=True):
            p -= lr * g
        assert value == pytest.approx(want, rel=1e-12)
        assert all(a is b for a, b in zip(out, ps, strict=True))  # updated in place
        for a, b in zip(ps, hand, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("batch", [130, 7])  # 96 x 130 runs fused C loops; 96 x 7 NumPy
def test_fused_steps_follow_hand_written_backprop_and_the_numpy_step(batch):
    sizes = (50, 96, 4)
    f, params, args = _mlp(sizes, "ce")
    step, plain = mx.sgd_step(f, params, args), mx.sgd_step(f, params, args, fuse=False)
    assert "_fused" not in plain.source
    assert ("_fused" in step.source) == c_build.c_available()
    start = [RNG.normal(size=p.shape) * 0.3 for p in params]
    X, Y = _data(sizes, "ce", batch)
    mine, theirs, hand = ([p.copy() for p in start] for _ in range(3))
    value, _ = step(*mine, X, Y, 0.1)
    value_plain, _ = plain(*theirs, X, Y, 0.1)
    want, grads = _hand_backprop(hand, X, Y, "ce")
    assert value == pytest.approx(want, rel=1e-12)
    assert value_plain == pytest.approx(want, rel=1e-12)
    for got, p, g, other in zip(mine, hand, grads, theirs, strict=True):
        np.testing.assert_allclose(got, p - 0.1 * g, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(got, other, rtol=1e-12, atol=1e-15)
    if batch == 130 and c_build.c_available() and c_build.target(c_build.compiler()).mvec:
        kernels = step._fn.__globals__["_fused_library"].kernels.values()
        ran = [k for k in kernels if k.compiled]
        # the C loops ran: bias + tanh, and the tanh derivative with the bias gradient's sum
        assert any("tanh" in str(k.group.expr) for k in ran)
        assert any(k.group.axis == 1 for k in ran)


def _outside(f, params, args, values, lr):
    """The reference: gradients returned by ``value_and_grad``, subtracted afterwards."""
    value, grads = mx.value_and_grad(f, params, args)(*values)
    news = [np.asarray(v, dtype=float).copy() for v in values]
    for i, g in zip([args.index(p) for p in params], grads, strict=True):
        news[i] = news[i] - lr * np.asarray(g)
    return value, news


n = 70  # 4900 entries: the products take the BLAS gemm path (update.GEMM_FROM)
A, Bm, C = (sp.MatrixSymbol(s, n, n) for s in "ABC")
x, Xd = sp.MatrixSymbol("x", n, 1), sp.MatrixSymbol("X", n, 90)


@pytest.mark.parametrize(
    ("f", "params", "args"),
    [
        # both gradients are products of two factors: BLAS gemm into the parameters
        (mx.sumsq(mx.matmul(Bm, mx.tanh(mx.matmul(A, Xd)))), [A, Bm], [A, Bm, Xd]),
        # a factor of each gradient is the other parameter: no gemm into a parameter whose
        # value the other update still reads
        (mx.sumsq(mx.matmul(A, Bm)), [A, Bm], [A, Bm]),
        # B A reads A after A's own gradient may be known: A's update must wait for it
        (mx.sumsq(mx.matmul(A, x)) + mx.sumsq(mx.matmul(Bm, A)), [A, Bm], [A, Bm, x]),
        # a product of the parameter with itself: the fused update would read what it writes
        (mx.sumsq(mx.matmul(A, A)), [A], [A]),
        # gradients that are each other's parameters, and one gradient shared by two updates
        (mx.sum(mx.hadamard(A, Bm)), [A, Bm], [A, Bm]),
        (mx.sum(mx.hadamard(A, C)) + mx.sum(mx.hadamard(Bm, C)), [A, Bm], [A, Bm, C]),
        # a parameter that is also read through its transpose late in the program
        (
            mx.sumsq(mx.matmul(mx.transpose(A), mx.tanh(mx.matmul(Bm, x))))
            + mx.trace(mx.matmul(A, Bm)),
            [Bm, A],
            [x, A, Bm],
        ),
    ],
)
def test_updates_wait_for_the_parameters_last_reader(f, params, args):
    values = [RNG.normal(size=a.shape) / 4 for a in args]
    want_value, want = _outside(f, params, args, values, 0.3)
    step = mx.sgd_step(f, params, args)
    if Xd in args:
        assert "_sub_product(" in step.source
    value, _ = step(*values, 0.3)
    assert value == pytest.approx(float(want_value), rel=1e-12)
    for got, ref in zip(values, want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_flat_parameters_are_views_into_one_vector():
    f, params, args = _mlp((5, 4, 3), "ce")
    ps = [RNG.normal(size=p.shape) for p in params]
    theta = np.concatenate([p.ravel() for p in ps])
    X, Y = _data((5, 4, 3), "ce", 9)
    flat = mx.sgd_step(f, params, args, flat=True)
    assert [str(a) for a in flat.args] == ["X", "Y"]
    value, out = flat(theta, X, Y, 0.1)
    assert out is theta
    want_value, grads = _hand_backprop(ps, X, Y, "ce")
    want = np.concatenate([(p - 0.1 * g).ravel() for p, g in zip(ps, grads, strict=True)])
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_allclose(theta, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_scipy", [True, False])
def test_sub_product_equals_numpy(layout, dtype, with_scipy, monkeypatch):
    monkeypatch.setattr(update, "GEMM_FROM", 0)  # BLAS for these small arrays too
    if not with_scipy:
        monkeypatch.setattr(update, "_GEMM", {})
    elif not update._gemm_functions():
        pytest.skip("SciPy is not installed")
    big = RNG.normal(size=(14, 18)).astype(dtype)
    views = {"C": big[:5, :6].copy(), "F": np.asfortranarray(big[:5, :6]), "strided": big[::2, ::3]}
    xv = views[layout]  # (5 or 7, 6)
    yv = RNG.normal(size=(6, 4)).astype(dtype)
    for p in (
        np.ones((xv.shape[0], 4), dtype),
        np.asfortranarray(np.ones((xv.shape[0], 4), dtype)),
    ):
        want = p - dtype(0.5) * (xv @ yv)
        got = sub_product(p, xv, yv, 0.5)
        assert got is p and got.dtype == dtype
        tol = 1e-13 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(p, want, rtol=tol, atol=tol)


def test_sub_product_keeps_ieee_results_where_blas_would_not(monkeypatch):
    monkeypatch.setattr(update, "GEMM_FROM", 0)
    p = np.ones((3, 3))
    y = np.full((3, 3), np.nan)
    sub_product(p, np.eye(3), y, 0.0)  # 0 * NaN is NaN; BLAS with alpha = 0 skips the product
    assert np.isnan(p).all()
    p = RNG.normal(size=(4, 4))
    want = p - 2.0 * (p @ p.T)
    sub_product(p, p, p.T, 2.0)  # the factors are the array being written
    np.testing.assert_allclose(p, want, rtol=1e-13)


def test_place_updates_moves_a_product_after_the_parameters_last_reader():
    # a0's gradient a2 @ a3 is known before a0 is read: the gemm into a0 must wait; it goes
    # last (it streams the largest operands through the cache)
    kept = [("t0", "a2 @ a3"), ("t1", "a0 * a4"), ("t2", "t1.sum()")]
    out = place_updates(kept, [("a0", "t0")], fresh=3)
    assert out == [("t1", "a0 * a4"), ("t2", "t1.sum()"), ("a0", "_sub_product(a0, a2, a3, 1.0)")]
    # the same for a parameter too small for BLAS: a plain subtraction, also after the read
    out = place_updates(kept, [("a0", "t0")], fresh=3, small=frozenset({"a0"}))
    assert out[:3] == [
        ("t0", "a2 @ a3"),
        ("t1", "a0 * a4"),
        ("a0", "numpy.subtract(a0, t0, out=a0)"),
    ]


def test_place_updates_copies_a_gradient_that_is_a_view_of_a_parameter():
    kept = [("t0", "a1.T"), ("t1", "a0 @ a2")]
    out = place_updates(kept, [("a0", "t0"), ("a1", "t1")], fresh=5)
    # t0 is a1's transpose: copied where it is made, before a1 changes
    assert out[1] == ("t5", "numpy.array(t0)")
    assert ("a0", "numpy.subtract(a0, t5, out=a0)") in out
    assert out.index(("a0", "numpy.subtract(a0, t5, out=a0)")) > out.index(
        ("t5", "numpy.array(t0)")
    )
    assert ("a1", "_sub_product(a1, a0, a2, 1.0)") not in out  # a0 is another parameter


def test_bad_parameters_and_calls_get_clear_errors():
    W, xs = sp.MatrixSymbol("W", 2, 2), sp.MatrixSymbol("x", 2, 1)
    f = mx.sumsq(mx.matmul(W, xs))
    step = mx.sgd_step(f, [W], [W, xs])
    x0 = np.ones((2, 1))
    with pytest.raises(InputTypeError, match="writeable floating-point"):
        step([[1.0, 2.0], [3.0, 4.0]], x0, 0.1)  # a list: its update would be lost
    ro = np.eye(2)
    ro.flags.writeable = False
    with pytest.raises(InputTypeError, match="read-only"):
        step(ro, x0, 0.1)
    with pytest.raises(InputTypeError, match="int64"):
        step(np.eye(2, dtype=np.int64), x0, 0.1)
    with pytest.raises(ArgumentError, match="learning rate"):
        step(np.eye(2), x0)
    with pytest.raises(ShapeError, match="W"):
        step(np.eye(3), x0, 0.1)
    with pytest.raises(InputTypeError, match="1 x 1 MatrixSymbol"):
        mx.sgd_step(sp.Symbol("s") ** 2 * mx.sumsq(W), [sp.Symbol("s")])
    with pytest.raises(InputTypeError, match="among args"):
        mx.sgd_step(f, [W], [xs])
    with pytest.raises(OptionError, match="flat"):
        mx.sgd_step(f, [W], [W, xs], flat="yes")
    with pytest.raises(ShapeError, match="fixed shape"):
        V = sp.MatrixSymbol("V", 2, B)
        mx.sgd_step(mx.sumsq(V), [V], flat=True)
    flat = mx.sgd_step(f, [W], [W, xs], flat=True)
    with pytest.raises(ShapeError, match=r"\(4,\)"):
        flat(np.ones(5), x0, 0.1)
    with pytest.raises(InputTypeError, match="theta"):
        flat(np.ones(8)[::2], x0, 0.1)  # not contiguous: the views would not be theta's


def test_jax_step_equals_the_numpy_step_and_keeps_float32():
    jax = pytest.importorskip("jax")
    f, params, args = _mlp((4, 5, 3), "ce")
    ps = [RNG.normal(size=p.shape) for p in params]
    X, Y = _data((4, 5, 3), "ce", 7)
    want = [p.copy() for p in ps]
    want_value, _ = mx.sgd_step(f, params, args)(*want, X, Y, 0.1)
    theta = np.concatenate([p.ravel() for p in ps])
    with jax.enable_x64(True):
        step = mx.sgd_step(f, params, args, backend="jax")
        value, news = step(*ps, X, Y, 0.1)
        assert float(value) == pytest.approx(want_value, rel=1e-12)
        for a, b in zip(news, want, strict=True):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-12, atol=1e-13)
        flat = mx.sgd_step(f, params, args, flat=True, backend="jax")
        value, new_theta = flat(theta, X, Y, 0.1)
        np.testing.assert_allclose(
            np.asarray(new_theta), np.concatenate([p.ravel() for p in want]), rtol=1e-12
        )
        # the learning rate's device scalar is reused only for the same number
        _, again = step(*ps, X, Y, 0.2)
        want2 = [p - 2 * (p - q) for p, q in zip(ps, want, strict=True)]
        for a, b in zip(again, want2, strict=True):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-11, atol=1e-12)
        # inside the user's own jit
        jitted = jax.jit(lambda *a: step(*a, 0.1))
        np.testing.assert_allclose(np.asarray(jitted(*ps, X, Y)[1][0]), want[0], rtol=1e-12)
    p32 = [p.astype(np.float32) for p in ps]
    value, news = step(*p32, X.astype(np.float32), Y.astype(np.float32), 0.1)
    assert all(np.asarray(a).dtype == np.float32 for a in news)
    np.testing.assert_allclose(np.asarray(news[0]), want[0], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- scratch arrays
W = sp.MatrixSymbol("W", 200, 90)
Xb = sp.MatrixSymbol("X", 90, B)


def _scratch_program():
    """Outputs that hold pooled memory directly, through a view and after in-place writes."""
    Z = mx.matmul(W, Xb)  # a product: pooled unless its memory reaches an output
    H = mx.tanh(Z)  # written into Z's memory
    G = mx.matmul(mx.hadamard(H, H), mx.transpose(Xb))  # internal products, pooled
    outputs = [H, mx.transpose(mx.tanh(mx.scale(2, Z))), G, mx.sumsq(mx.matmul(W, Xb))]
    return mx.compile_matrix(outputs, [W, Xb])


def _scratch_reference(w, x):
    z = w @ x
    h = np.tanh(z)
    return [h, np.tanh(2 * z).T, (h * h) @ x.T, np.sum(z * z)]


def test_scratch_arrays_never_reach_the_results():
    f = _scratch_program()
    assert "_scratch(" in f.source
    w = RNG.normal(size=(200, 90)) * 0.1
    results = []
    for batch in (300, 50, 300, 120, 300):  # pooled, too small to pool, pooled again, resized
        x = RNG.normal(size=(90, batch))
        results.append((f(w, x), _scratch_reference(w, x)))
    for got, want in results:  # earlier results are untouched by later calls
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_scratch_arrays_keep_the_dtype_numpy_would_choose():
    f = _scratch_program()
    w = RNG.normal(size=(200, 90)) * 0.1
    x = RNG.normal(size=(90, 200))
    for wv, xv, dtype in (
        (w.astype(np.float32), x.astype(np.float32), np.float32),
        (w.astype(np.float32), x, np.float64),  # mixed: NumPy promotes, no scratch array
        (w, x, np.float64),
    ):
        got = f(wv, xv)
        assert got[0].dtype == dtype and got[2].dtype == dtype
        want = _scratch_reference(wv, xv)
        tol = 1e-4 if dtype == np.float32 else 1e-12
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_scratch_arrays_are_per_thread():

    f = _scratch_program()
    w = RNG.normal(size=(200, 90)) * 0.1
    xs = [RNG.normal(size=(90, 250)) for _ in range(4)]
    wants = [_scratch_reference(w, x) for x in xs]
    errors = []

    def work(k):
        for _ in range(30):
            got = f(w, xs[k])
            if not all(np.allclose(a, b, rtol=1e-12) for a, b in zip(got, wants[k], strict=True)):
                errors.append(k)

    run_threads(work, 4)
    assert not errors


def test_small_and_huge_fixed_shapes_are_not_pooled():
    P, Q = sp.MatrixSymbol("P", 20, 30), sp.MatrixSymbol("Q", 30, 40)
    assert "_scratch" not in mx.compile_matrix(mx.sumsq(mx.matmul(P, Q)), [P, Q]).source
    P, Q = sp.MatrixSymbol("P", 2000, 3), sp.MatrixSymbol("Q", 3, 2000)  # 4 M entries
    assert "_scratch" not in mx.compile_matrix(mx.sumsq(mx.matmul(P, Q)), [P, Q]).source
    P, Q = sp.MatrixSymbol("P", 200, 3), sp.MatrixSymbol("Q", 3, 200)
    assert "_scratch" in mx.compile_matrix(mx.sumsq(mx.matmul(P, Q)), [P, Q]).source


def test_no_in_place_write_into_an_array_whose_view_is_read_later():
    from symgrad.matrix.codegen import _reuse_memory

    # t2 is t1's transpose and is read after tanh(t1), t1's last direct reader: tanh must not
    # write into t1 (t2 would see the new values)
    kept = [("t1", "a0 @ a1"), ("t2", "t1.T"), ("t3", "numpy.tanh(t1)"), ("t4", "t2 @ a1")]
    shapes = dict.fromkeys(("t1", "t2", "t3", "t4"), (3, 3))
    lines = _reuse_memory(kept, shapes, {"t3", "t4"})
    assert "t3 = numpy.tanh(t1)" in lines and not any("out=t1" in line for line in lines)
    assert lines[-1] == "del t1, t2"  # both freed once the view's last reader has run
    source = "def f(a0, a1):\n" + "".join(f"    {line}\n" for line in lines) + "    return t3, t4\n"
    namespace = {"numpy": np}
    exec(compile(source, "<test>", "exec"), namespace)  # the generator's own output
    a0, a1 = RNG.normal(size=(3, 3)), RNG.normal(size=(3, 3))
    t3, t4 = namespace["f"](a0, a1)
    np.testing.assert_allclose(t3, np.tanh(a0 @ a1), rtol=1e-14)
    np.testing.assert_allclose(t4, (a0 @ a1).T @ a1, rtol=1e-14)
