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

RNG = np.random.default_rng(5)
B = sp.Symbol("B", integer=True, positive=True)
needs_c = pytest.mark.skipif(not c_build.c_available(), reason="no C compiler")


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


def _fill(shape, special=True):
    x = RNG.normal(size=shape) * 3
    if special:
        flat = x.reshape(-1)
        flat[:7] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-300, -25.0]
    return x


@needs_c
@pytest.mark.parametrize("name", sorted(EXPRS))
@pytest.mark.parametrize("kind", ["full", "col", "row"])
@pytest.mark.parametrize("total", [None, 0, 1])
def test_fused_trees_equal_numpy_with_nan_inf_and_broadcasts(name, kind, total):
    shape = (100, 90)
    other = {"full": shape, "col": (100, 1), "row": (1, 90)}[kind]
    syms, e = _kernel(EXPRS[name], [shape, other], ["full", kind])
    outs = [e] if total is None else [e, mx.sum(e, axis=total)]
    f = compile_matrix(outs, syms)
    g = compile_matrix(outs, syms, fuse=False)
    a, b = _fill(shape), _fill(other)
    with np.errstate(all="ignore"):
        got, want = f(a, b), g(a, b)
    if "_fused0(" in f.source:  # planned: the C loop ran (a fixed 100 x 90 is large enough)
        kernel = f._fn.__globals__["_fused0"]
        plain_c = bool(fused.plan(mx.value_nodes(outs), outs, mvec=False))
        assert kernel._fn or not (plain_c or c_build.target(c_build.compiler()).mvec)
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
    kernel = f._fn.__globals__["_fused0"]
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
    tanh_kernel, relu_kernel = (f._fn.__globals__[k] for k in ("_fused0", "_fused1"))
    assert "tanh" in str(tanh_kernel.group.expr) and tanh_kernel._fn is False
    assert relu_kernel._fn  # no function of libmvec: still one C loop


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
            kernel = f._fn.__globals__["_fused0"]
            assert bool(kernel._fn) == (
                name == "relu_sqrt" or c_build.target(c_build.compiler()).mvec
            )
    finally:
        c_build.compiler.cache_clear()
