"""Fused entrywise C loops in compiled matrix code against NumPy.

Every comparison has an independent side: NumPy evaluating the same formula on the same arrays,
or the same function compiled with ``fuse=False`` (plain NumPy statements); the fused training
step against hand-written backprop is in ``test_matrix_step.py``. The C loops are exercised
where a C compiler works and skipped otherwise; the fallbacks (no compiler, a failed build,
small or oddly laid out arrays, float32) run everywhere.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import sympy as sp

from symgrad.codegen import c_build
from symgrad.errors import CompilerError, OptionError
from symgrad.matrix import codegen, fused
from symgrad.matrix import expr as mx
from symgrad.matrix.codegen import compile_matrix
from symgrad.matrix.step import sgd_step
from symgrad.matrix.vjp import grad as mx_grad
from tests.threads import run_threads

RNG = np.random.default_rng(5)
B = sp.Symbol("B", integer=True, positive=True)
needs_c = pytest.mark.skipif(not c_build.c_available(), reason="no C compiler")


@pytest.fixture(autouse=True)
def _no_warmup(monkeypatch):
    """The C loops from the first call (the warm-up itself is tested on its own below)."""
    monkeypatch.setattr(fused, "WARMUP_CALLS", 0)


def _kernel(expr_of, shapes, kinds):
    """A compiled function of one fused tree over arguments of the given kinds and shapes."""
    syms = [sp.MatrixSymbol(f"A{k}", *shape) for k, shape in enumerate(shapes)]
    full = syms[0].shape
    ops = [
        s if kind == "full" else mx.broadcast(s, full) for s, kind in zip(syms, kinds, strict=True)
    ]
    return syms, expr_of(*ops)


EXPRS = {
    "bias_tanh": lambda a, b: mx.tanh(mx.add(a, b)),
    "tanh_derivative": lambda h, g: mx.hadamard(
        mx.sub(mx.broadcast(1, h.shape), mx.hadamard(h, h)), g
    ),
    "scaled_exp_log": lambda a, b: mx.add(mx.scale(2.5, mx.exp(a)), mx.log(mx.hadamard(b, b))),
    "relu_sqrt": lambda a, b: mx.hadamard(mx.relu(a), mx.elementwise(sp.sqrt, mx.hadamard(b, b))),
}


def _kernel_object(f, name):
    """The kernel object behind ``name`` (the namespace holds its builtin entry once built)."""
    return f._fn.__globals__["_fused_library"].kernels[name]


def _fill(shape, special=True):
    x = RNG.normal(size=shape) * 3
    if special:
        flat = x.reshape(-1)
        flat[:7] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-300, -25.0]
    return x


@needs_c
@pytest.mark.parametrize("name", sorted(EXPRS))
@pytest.mark.parametrize("kind", ["full", "col", "row"])
@pytest.mark.parametrize("total", [None, 0, 1, "all"])
def test_fused_trees_equal_numpy_with_nan_inf_and_broadcasts(name, kind, total):
    shape = (100, 90)
    other = {"full": shape, "col": (100, 1), "row": (1, 90)}[kind]
    syms, e = _kernel(EXPRS[name], [shape, other], ["full", kind])
    summed = mx.sum(e) if total == "all" else mx.sum(e, axis=total)
    outs = [e] if total is None else [e, summed]
    f = compile_matrix(outs, syms)
    g = compile_matrix(outs, syms, fuse=False)
    a, b = _fill(shape), _fill(other)
    with np.errstate(all="ignore"):
        got, want = f(a, b), g(a, b)
    if "_fused0(" in f.source:  # planned: the C loop ran (a fixed 100 x 90 is large enough)
        kernel = _kernel_object(f, "_fused0")
        plain_c = bool(fused.plan(mx.value_nodes(outs), outs, mvec=False))
        assert kernel.compiled or not (plain_c or c_build.target(c_build.compiler()).mvec)
    for x, y in zip(got, want, strict=True):
        # libmvec's functions are within a few ulp of NumPy's; a sum of terms of size s is
        # then within a few ulp of s (cancellation), hence the absolute part
        scale = np.abs(y[np.isfinite(y)]).max(initial=1.0)
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-14 * scale, equal_nan=True)
        assert np.array_equal(np.isnan(x), np.isnan(y)) and np.array_equal(x == np.inf, y == np.inf)
        assert np.array_equal(np.signbit(x[x == 0]), np.signbit(y[x == 0]))


@needs_c
def test_row_sums_of_a_fused_tree_feed_later_statements():
    shape = (120, 80)
    Z, b = sp.MatrixSymbol("Z", *shape), sp.MatrixSymbol("b", shape[0], 1)
    h = mx.hadamard(mx.add(Z, mx.broadcast(b, shape)), Z)
    f = compile_matrix([mx.scale(3, mx.sum(h, axis=1)), mx.sum(h)], [Z, b])
    z, bias = RNG.normal(size=shape), RNG.normal(size=(shape[0], 1))
    rows, everything = f(z, bias)
    ref = (z + bias) * z
    np.testing.assert_allclose(rows, 3 * ref.sum(axis=1, keepdims=True), rtol=1e-12)
    assert everything == pytest.approx(ref.sum(), rel=1e-12)


@needs_c
def test_kernels_fall_back_to_numpy_for_other_layouts_dtypes_and_small_arrays():
    syms, e = _kernel(EXPRS["bias_tanh"], [(B, 100), (B, 1)], ["full", "col"])
    f = compile_matrix(e, syms)
    assert "_fused0(" in f.source
    b = _fill((300, 1))
    a = _fill((100, 300)).T  # a transposed view: rows are not contiguous
    np.testing.assert_allclose(f(a, b), np.tanh(a + b), rtol=1e-13)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    got = f(np.ascontiguousarray(a32), b32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.tanh(a32 + b32))
    small = _fill((3, 100))
    np.testing.assert_array_equal(f(small, b[:3]), np.tanh(small + b[:3]))


def test_fixed_small_shapes_and_missing_compilers_keep_numpy_statements(monkeypatch):
    syms, e = _kernel(EXPRS["bias_tanh"], [(4, 5), (4, 1)], ["full", "col"])
    assert "_fused" not in compile_matrix(e, syms).source
    monkeypatch.setattr(c_build, "c_available", lambda: False)
    syms, e = _kernel(EXPRS["bias_tanh"], [(B, 100), (B, 1)], ["full", "col"])
    f = compile_matrix(e, syms)
    assert "_fused" not in f.source
    a, b = _fill((200, 100)), _fill((200, 1))
    np.testing.assert_array_equal(f(a, b), np.tanh(a + b))


@needs_c
def test_a_failed_build_falls_back_to_numpy(monkeypatch):
    def broken(*args, **kwargs):
        raise CompilerError("the C compiler failed (test)")

    monkeypatch.setattr(fused.c_build, "build_library", broken)
    syms, e = _kernel(EXPRS["tanh_derivative"], [(B, 100), (B, 100)], ["full", "full"])
    f = compile_matrix(e, syms)
    kernel = _kernel_object(f, "_fused0")
    h, g = _fill((150, 100)), _fill((150, 100))
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(f(h, g), (1 - h * h) * g)
    assert kernel._library.failed and kernel._fn is False


def test_planner_keeps_shared_nodes_outputs_and_slow_functions_out_of_trees():
    X = sp.MatrixSymbol("X", 200, 300)
    h = mx.tanh(X)
    shared = mx.hadamard(h, h)  # h is read twice: an operand, computed once
    groups = fused.plan(mx.value_nodes([shared]), [shared], mvec=True)
    assert [str(g.expr) for g in groups.values()] == ["tanh(x0)", "x0*x0"]
    out = mx.exp(mx.add(X, X))
    groups = fused.plan(mx.value_nodes([out, mx.add(X, X)]), [out, mx.add(X, X)], mvec=True)
    assert len(groups) == 2  # the sum is an output: a tree of its own
    assert fused.plan(mx.value_nodes([h]), [h], mvec=False) == {}  # scalar libm calls: slower
    slow = mx.elementwise(sp.erf, X)
    assert fused.plan(mx.value_nodes([slow]), [slow], mvec=True) == {}
    col = sp.MatrixSymbol("c", 200, 1)
    only_broadcasts = mx.exp(mx.broadcast(col, (200, 300)))
    assert fused.plan(mx.value_nodes([only_broadcasts]), [only_broadcasts], mvec=True) == {}


def test_fuse_must_be_a_bool():
    X = sp.MatrixSymbol("X", 2, 2)
    with pytest.raises(OptionError, match="fuse"):
        compile_matrix(mx.tanh(X), [X], fuse="yes")
    with pytest.raises(OptionError, match="fuse"):
        sgd_step(mx.sumsq(X), [X], fuse=1)


def test_standalone_modules_never_call_fused_kernels():
    from symgrad.matrix.command import compile_source

    src = compile_source("sum(tanh(X*w))", ["X=m,n", "w=n"], "w")
    assert "_fused" not in src
    assert codegen.compile_matrix  # the module under test stays importable without a compiler


@needs_c
def test_without_libmvec_trees_with_functions_stay_in_numpy(monkeypatch):
    real = c_build.target(c_build.compiler())
    plain = c_build.Target(real.flags, real.avx, real.identity + "\n(test: no libmvec)", False)
    monkeypatch.setattr(fused.c_build, "target", lambda cc: plain)
    shape = (100, 90)
    syms, e = _kernel(EXPRS["bias_tanh"], [shape, (100, 1)], ["full", "col"])
    C = sp.MatrixSymbol("C", *shape)
    r = EXPRS["relu_sqrt"](syms[0], C)
    f = compile_matrix([e, r], [*syms, C])
    a, b, c = _fill(shape), _fill((100, 1)), _fill(shape)
    with np.errstate(invalid="ignore"):
        got = f(a, b, c)
        want = [np.tanh(a + b), np.maximum(0, a) * np.sqrt(c * c)]
    for x, y in zip(got, want, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-13, equal_nan=True)
    tanh_kernel, relu_kernel = (_kernel_object(f, k) for k in ("_fused0", "_fused1"))
    assert "tanh" in str(tanh_kernel.group.expr) and not tanh_kernel.compiled
    assert relu_kernel.compiled  # no function of libmvec: still one C loop


@needs_c
def test_small_arrays_run_the_tree_in_place_only_where_that_is_safe():
    W, X, b = sp.MatrixSymbol("W", 3, 4), sp.MatrixSymbol("X", 4, B), sp.MatrixSymbol("b", 3, 1)
    z = mx.matmul(W, X)  # a product that dies in the tree: its memory may hold the result
    once = compile_matrix(mx.tanh(mx.add(z, mx.broadcast(b, (3, B)))), [W, X, b])
    twice = compile_matrix(mx.hadamard(mx.exp(z), z), [W, X])  # only the last op in place
    assert "numpy.tanh(numpy.add(t0, a2, out=t0), out=t0)" in once.source
    assert "numpy.multiply(numpy.exp(t0), t0, out=t0)" in twice.source
    w, x, bias = RNG.normal(size=(3, 4)), RNG.normal(size=(4, 5)), RNG.normal(size=(3, 1))
    np.testing.assert_allclose(once(w, x, bias), np.tanh(w @ x + bias), rtol=1e-14)
    np.testing.assert_allclose(twice(w, x), np.exp(w @ x) * (w @ x), rtol=1e-14)


@pytest.mark.skipif(
    shutil.which("clang") is None and not os.environ.get("SYMGRAD_REQUIRE_CLANG"),
    reason="clang is not installed",
)
def test_clang_builds_the_fused_loops(monkeypatch):
    # Clang has no libmvec calls: trees with tanh stay in NumPy, the others are Clang's loops
    monkeypatch.setenv("CC", "clang")
    c_build.compiler.cache_clear()
    try:
        assert c_build.compiler()[0].endswith("clang")
        shape = (100, 90)
        for name in ("relu_sqrt", "bias_tanh"):
            other = shape if name == "relu_sqrt" else (100, 1)
            syms, e = _kernel(
                EXPRS[name], [shape, other], ["full", "full" if other == shape else "col"]
            )
            f = compile_matrix([e, mx.sum(e, axis=1)], syms)
            a, b = _fill(shape), _fill(other)
            with np.errstate(all="ignore"):
                got, want = f(a, b), compile_matrix([e, mx.sum(e, axis=1)], syms, fuse=False)(a, b)
            for x, y in zip(got, want, strict=True):
                np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-13, equal_nan=True)
            kernel = _kernel_object(f, "_fused0")
            assert kernel.compiled == (
                name == "relu_sqrt" or c_build.target(c_build.compiler()).mvec
            )
    finally:
        c_build.compiler.cache_clear()


def _entries_expected():
    cc = c_build.compiler()
    return cc is not None and fused.entry_flags(cc) is not None


@needs_c
def test_builtin_entries_replace_the_kernels_and_pass_what_they_cannot_take_to_numpy():
    # tanh(X + col) * Y (a full, a column and a full operand) with its row sums, then s * that
    X, Y = sp.MatrixSymbol("X", B, 40), sp.MatrixSymbol("Y", B, 40)
    col, c = sp.MatrixSymbol("c", B, 1), sp.Symbol("s")
    e = mx.scale(c, mx.hadamard(mx.tanh(mx.add(X, mx.broadcast(col, (B, 40)))), Y))
    f = compile_matrix([e, mx.sum(e, axis=1)], [X, col, Y, c])
    g = compile_matrix([e, mx.sum(e, axis=1)], [X, col, Y, c], fuse=False)
    x, y, b = _fill((60, 40)), _fill((60, 40)), _fill((60, 1))
    for scalar in (1.5, 2, np.float64(-0.5), np.float32(0.25)):
        for _ in range(2):  # the first call builds the entries, the second goes through them
            with np.errstate(all="ignore"):
                got, want = f(x, b, y, scalar), g(x, b, y, scalar)
            for u, v in zip(got, want, strict=True):
                np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-14, equal_nan=True)
    namespace = f._fn.__globals__
    tree, scaled = _kernel_object(f, "_fused0"), _kernel_object(f, "_fused1")
    assert tree.group.axis == 1 and [k for _, k in scaled.group.leaves] == ["scalar", "full"]
    assert tree.compiled == c_build.target(c_build.compiler()).mvec
    if not (tree.compiled and _entries_expected()):
        pytest.skip("no libmvec, or no Python/NumPy C headers: no builtin entries to test")
    entry, scale = namespace["_fused0"], namespace["_fused1"]
    assert type(entry).__name__ == type(scale).__name__ == "builtin_function_or_method"

    def check(fn, ref, *ops, **kw):
        total = kw.get("total")
        with np.errstate(all="ignore"):
            got = fn(*ops, **kw)
            want = ref(*ops)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14, equal_nan=True)
        assert got.dtype == want.dtype
        if total is not None:
            np.testing.assert_allclose(
                total, want.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-13, equal_nan=True
            )
        return got

    t, out = np.empty((60, 1)), np.empty((60, 40))
    assert check(entry, tree.numpy_fn, x, b, y, out=out, total=t) is out  # written into out
    fresh = check(entry, tree.numpy_fn, x, b, y, total=t, out=None)  # a new array
    assert fresh.flags.c_contiguous and fresh.dtype == np.float64
    # what the loop cannot take goes to NumPy, with the same values
    check(entry, tree.numpy_fn, np.asfortranarray(x), b, y, total=t)  # rows not contiguous
    check(entry, tree.numpy_fn, x, b.astype(np.float32), y, total=t)
    check(entry, tree.numpy_fn, x[:, :39], b, y[:, :39], total=t)  # shapes from the operand
    check(entry, tree.numpy_fn, x[:2, :3], b[:2], y[:2, :3], total=t[:2])  # narrow, small
    check(entry, tree.numpy_fn, x[::2], b[::2], y[::2], total=np.empty((30, 1)))  # row strides
    read_only = np.empty((60, 40))
    read_only.flags.writeable = False
    assert check(entry, tree.numpy_fn, x, b, y, out=read_only[::1].copy(), total=t) is not None
    with pytest.raises(ValueError):  # NumPy's own error for a read-only out
        check(entry, tree.numpy_fn, x, b, y, out=read_only, total=t)
    f32 = np.empty((60, 40), np.float32)
    assert entry(x, b, y, out=f32, total=t) is f32  # NumPy casts into it, as unfused code
    with pytest.raises(TypeError):
        entry(x, b, y, total=t, bogus=1)  # NumPy's own error
    with pytest.raises(TypeError):
        entry(x, b)
    for s in (2.0, 3, np.float64(0.5), np.float32(0.5), True):
        check(scale, scaled.numpy_fn, s, x)
    with pytest.raises(OverflowError):  # an int too large for a double: NumPy's own error
        scale(10**400, x)


@needs_c
def test_without_python_headers_the_loops_run_through_ctypes(monkeypatch):
    monkeypatch.setattr(fused, "entry_flags", lambda cc: None)
    syms, e = _kernel(EXPRS["relu_sqrt"], [(B, 100), (B, 100)], ["full", "full"])
    f = compile_matrix([e, mx.sum(e, axis=0)], syms)
    a, b = _fill((150, 100)), _fill((150, 100))
    for _ in range(2):
        with np.errstate(invalid="ignore"):
            got, total = f(a, b)
            want = np.maximum(0, a) * np.sqrt(b * b)
        np.testing.assert_allclose(got, want, rtol=1e-13, equal_nan=True)
        np.testing.assert_allclose(total, want.sum(axis=0, keepdims=True), rtol=1e-12)
    kernel = _kernel_object(f, "_fused0")
    assert kernel.compiled and kernel._fn and not kernel._library.entries
    assert f._fn.__globals__["_fused0"] is kernel  # no entry took its place


@needs_c
def test_a_failed_entry_build_falls_back_to_the_plain_library(monkeypatch):
    real = fused.c_build.build_library

    def no_entries(name, *args, **kwargs):
        if name == "sg_fused_entry":
            raise CompilerError("the C compiler failed (test)")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(fused.c_build, "build_library", no_entries)
    syms, e = _kernel(EXPRS["relu_sqrt"], [(B, 100), (B, 100)], ["full", "full"])
    f = compile_matrix(e, syms)
    a, b = _fill((150, 100)), _fill((150, 100))
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(f(a, b), np.maximum(0, a) * np.sqrt(b * b), equal_nan=True)
    kernel = _kernel_object(f, "_fused0")
    assert kernel.compiled and not kernel._library.entries and not kernel._library.failed


@needs_c
@pytest.mark.parametrize("axis", [0, 1])
def test_a_softmax_after_its_logsumexp_joins_the_tree_that_reads_it(axis):
    # softmax cross-entropy: value sum(lse(Z)) - sum(Y . Z), gradient softmax(Z) - Y
    shape = (B, 30) if axis == 1 else (30, B)
    Z, Y = sp.MatrixSymbol("Z", *shape), sp.MatrixSymbol("Y", *shape)
    loss = mx.sum(mx.logsumexp(Z, axis=axis)) - mx.sum(mx.hadamard(Y, Z))
    outs = [loss, mx_grad(loss, [Z])]
    f, g = compile_matrix(outs, [Z, Y]), compile_matrix(outs, [Z, Y], fuse=False)
    kernels = f._fn.__globals__["_fused_library"].kernels.values()
    (tree,) = [k for k in kernels if "exp" in str(k.group.expr)]
    assert str(tree.group.expr) == "-x0 + exp(x1 - x2)"  # softmax(Z) - Y, one loop
    n = 70
    z = RNG.normal(size=(n, 30) if axis == 1 else (30, n)) * 5
    z[0, 0], z[1, 1], z[2, 2] = 700.0, -np.inf, -700.0
    y = RNG.random(z.shape)
    (value, (grad,)), (value2, (grad2,)) = f(z, y), g(z, y)
    m = z.max(axis=axis, keepdims=True)
    e = np.exp(z - m)
    want = e / e.sum(axis=axis, keepdims=True) - y
    assert value == pytest.approx(value2, rel=1e-13)
    np.testing.assert_allclose(grad, want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grad2, want, rtol=1e-13, atol=1e-15)
    assert tree.compiled == c_build.target(c_build.compiler()).mvec
    # the softmax as a result of its own: a tree when its lse comes first, else NumPy's
    for outs in (
        [mx.logsumexp(Z, axis=axis), mx.softmax(Z, axis=axis)],
        [mx.softmax(Z, axis=axis)],
    ):
        h = compile_matrix(outs, [Z])
        np.testing.assert_allclose(h(z)[-1], e / e.sum(axis=axis, keepdims=True), rtol=1e-13)
        assert ("_fused0(" in h.source) == (len(outs) == 2)


@needs_c
def test_the_builtin_logsumexp_equals_numpys_on_every_layout_it_takes_and_passes_the_rest():
    Z = sp.MatrixSymbol("Z", 12, B)
    f = compile_matrix([mx.logsumexp(Z, axis=0), mx.tanh(Z)], [Z])  # a tree: the library
    f(_fill((12, 100), special=False))
    library = f._fn.__globals__["_fused_library"]
    native = f._fn.__globals__["_logsumexp"]
    if "_logsumexp" not in library.entries:
        assert native is codegen._logsumexp  # no entries (headers) or no libmvec: NumPy's
        assert not (_entries_expected() and c_build.target(c_build.compiler()).mvec)
        pytest.skip("no libmvec, or no Python/NumPy C headers: no builtin log-sum-exp")
    assert native is library.entries["_logsumexp"]
    cases = [
        _fill((n, m), n * m >= 7) * 40 for n, m in [(1, 1), (1, 9), (7, 1), (10, 256), (13, 17)]
    ]
    cases += [_fill((20, 30))[::3], _fill((9, 40), special=False)[:, 5:30]]  # strided rows
    big = _fill((6, 50), special=False)
    big[:, 3], big[2, :] = -np.inf, np.inf  # a column of -inf, a row of +inf
    cases.append(big)
    for z in cases:
        for axis in (0, 1):
            with np.errstate(all="ignore"):
                got, want = native(z, axis), codegen._logsumexp(z, axis)
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=4e-15, atol=0, equal_nan=True)
            assert np.array_equal(np.isnan(got), np.isnan(want))
    # what the loop does not take: NumPy's own function, answers and errors
    z = _fill((10, 30), special=False)
    for other in (np.asfortranarray(z), z.astype(np.float32), z[:, ::2]):
        np.testing.assert_array_equal(native(other, 1), codegen._logsumexp(other, 1))
    np.testing.assert_array_equal(native(z, np.int64(0)), codegen._logsumexp(z, 0))
    with pytest.raises(ValueError):
        native(np.empty((0, 3)), 0)  # NumPy's error for an empty maximum
    with pytest.raises(np.exceptions.AxisError):
        native(z, 2)


@needs_c
@pytest.mark.parametrize("rows", [100, B])
@pytest.mark.parametrize("axis", [0, 1, None])
def test_a_tree_read_only_through_its_sum_is_still_computed(rows, axis):
    # the sum is filled by the tree's own call: that call must stay (it once was dropped as
    # dead code, returning an uninitialised array) and its result freed right after
    X = sp.MatrixSymbol("X", rows, 90)
    e = mx.tanh(mx.hadamard(X, X))
    f = compile_matrix(2 * mx.sum(e) if axis is None else mx.scale(2, mx.sum(e, axis=axis)), [X])
    assert "_fused0(" in f.source and "total=" in f.source
    for n in (100, 3):  # from 3 rows: below the loop's size when rows vary
        if rows == 100 and n != 100:
            continue
        x = _fill((n, 90), special=False)
        want = 2 * (
            np.tanh(x * x).sum() if axis is None else np.tanh(x * x).sum(axis, keepdims=True)
        )
        np.testing.assert_allclose(f(x), want, rtol=1e-13)
        assert np.shape(f(x)) == np.shape(want)


@needs_c
@pytest.mark.parametrize("rows", [100, B])
def test_float32_trees_and_their_sums_are_numpys_own(rows):
    # the C loops take float64 only: float32 runs NumPy, and its sums keep float32
    X, b = sp.MatrixSymbol("X", rows, 90), sp.MatrixSymbol("b", rows, 1)
    e = mx.tanh(mx.add(X, mx.broadcast(b, (rows, 90))))
    outs = [mx.hadamard(e, X), mx.sum(mx.hadamard(e, X), axis=1), mx.sum(mx.hadamard(e, X))]
    f, g = compile_matrix(outs, [X, b]), compile_matrix(outs, [X, b], fuse=False)
    assert "_total_of(" in f.source
    x, bias = _fill((100, 90), special=False), _fill((100, 1), special=False)
    for dtype in (np.float32, np.float64):
        got, want = f(x.astype(dtype), bias.astype(dtype)), g(x.astype(dtype), bias.astype(dtype))
        for u, v in zip(got, want, strict=True):
            assert np.asarray(u).dtype == np.asarray(v).dtype == dtype
            if dtype == np.float32:
                np.testing.assert_array_equal(u, v)  # the same NumPy operations
            else:
                np.testing.assert_allclose(u, v, rtol=1e-13)


@needs_c
def test_the_library_is_built_on_the_second_large_call(monkeypatch):
    monkeypatch.setattr(fused, "WARMUP_CALLS", 1)
    builds = []
    real = fused.Library._load
    monkeypatch.setattr(fused.Library, "_load", lambda self: builds.append(1) or real(self))
    syms, e = _kernel(EXPRS["relu_sqrt"], [(B, 100), (B, 100)], ["full", "full"])
    f = compile_matrix(e, syms)
    a, b = _fill((150, 100), special=False), _fill((150, 100), special=False)
    want = np.maximum(0, a) * np.sqrt(b * b)
    np.testing.assert_allclose(f(a[:2], b[:2]), want[:2], rtol=1e-15)  # small: no call
    np.testing.assert_allclose(f(a, b), want, rtol=1e-15)  # the first large call: NumPy
    kernel = _kernel_object(f, "_fused0")
    assert not builds and not kernel.compiled
    np.testing.assert_allclose(f(a, b), want, rtol=1e-15)  # the second: built, C
    assert builds == [1] and kernel.compiled
    np.testing.assert_allclose(f(a, b), want, rtol=1e-15)
    assert builds == [1]


@needs_c
def test_threads_calling_a_function_for_the_first_time_agree_with_numpy():
    # the library is built once under its lock while other threads call the kernel objects,
    # then the entries take over; every result is the tree's own
    X, b = sp.MatrixSymbol("X", B, 64), sp.MatrixSymbol("b", B, 1)
    e = mx.tanh(mx.add(X, mx.broadcast(b, (B, 64))))
    f = compile_matrix([e, mx.sum(e, axis=1)], [X, b])
    xs = [_fill((200, 64), special=False) for _ in range(6)]
    bs = [_fill((200, 1), special=False) for _ in range(6)]
    bad = []

    def run(k):
        want = np.tanh(xs[k] + bs[k])
        for _ in range(30):
            out, total = f(xs[k], bs[k])
            if not (
                np.allclose(out, want, rtol=1e-13)
                and np.allclose(total, want.sum(axis=1, keepdims=True), rtol=1e-12)
            ):
                bad.append(k)

    run_threads(run, 6)
    assert bad == []
    assert _kernel_object(f, "_fused0").compiled == c_build.target(c_build.compiler()).mvec
