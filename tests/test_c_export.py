"""An exported C pair: built by ``cc`` alone, called through ctypes and from a C program.

References: the NumPy target (a different code path) and the in-library C kernel.
"""

from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest
import sympy as sp

from symgrad import grad, lambdify
from symgrad.codegen import c_build
from symgrad.codegen.c import export_c
from symgrad.errors import InputTypeError

pytestmark = pytest.mark.skipif(not c_build.c_available(), reason="no C compiler")

x, y = sp.symbols("x y")
W = sp.symbols("w0:3")
LOSS = sp.tanh(W[0] * x + W[1] * y + W[2]) ** 2 + sp.Mod(x, 2) + sp.sech(y) + sp.EulerGamma
OUTPUTS = [LOSS, *grad(LOSS, list(W), simplify=False)]


def _build(tmp_path, name="loss_grad", mean=False, flags=("-std=c99", "-pedantic-errors")):
    c, h = export_c(tmp_path / "f.c", [x, y, list(W)], OUTPUTS, name=name, mean=mean)
    lib = tmp_path / f"lib{name}.so"
    cc = [*c_build.compiler(), *flags, "-O2", "-shared", "-fPIC", "-o", str(lib), str(c), "-lm"]
    subprocess.run(cc, check=True, capture_output=True, text=True)
    return c, h, lib


def _call(lib: str, name: str, xs, ys, w, nout, mean=False):
    fn = getattr(ctypes.CDLL(lib), name)
    fn.restype = ctypes.c_int
    P = ctypes.POINTER(ctypes.c_double)
    n = len(xs)
    inputs = (P * 3)(*[a.ctypes.data_as(P) for a in (xs, ys, w)])
    rows = (ctypes.c_int64 * 3)(1, 1, 1)
    steps = (ctypes.c_int64 * 3)(1, 1, 0)  # w: the same vector for every sample
    out = np.empty(nout if mean else (nout, n))
    assert fn(ctypes.c_int64(n), inputs, rows, steps, out.ctypes.data_as(P)) == 0
    return out


@pytest.mark.parametrize("mean", [False, True])
def test_exported_pair_builds_with_cc_and_matches(tmp_path, mean):
    _, h, lib = _build(tmp_path, mean=mean)
    assert "int loss_grad(int64_t n, const double *const *inputs" in h.read_text()
    rng = np.random.default_rng(4)
    xs, ys, w = rng.normal(size=7), rng.normal(size=7), rng.normal(size=3)
    got = _call(str(lib), "loss_grad", xs, ys, w, len(OUTPUTS), mean)
    f_np = lambdify([OUTPUTS], [x, y, list(W)], reduce="mean" if mean else None)
    want = f_np(xs, ys, w)[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    f_c = lambdify([OUTPUTS], [x, y, list(W)], backend="c", reduce="mean" if mean else None)
    np.testing.assert_allclose(got, f_c(xs, ys, w)[0], rtol=1e-13, atol=1e-15)


def test_large_exported_kernel_is_one_file(tmp_path, monkeypatch):
    # a chunked kernel (functions of 5 statements) still exports as one C99 file
    from symgrad.codegen import c_source

    monkeypatch.setattr(c_source, "SINGLE", 5)
    monkeypatch.setattr(c_source, "CHUNK", 5)
    monkeypatch.setattr(c_source, "UNIT", 2)
    c, _, lib = _build(tmp_path, name="chunked")
    assert c.read_text().count("void chunked_kernel_c") >= 4
    xs, ys, w = np.linspace(-1, 1, 5), np.linspace(2, 0, 5), np.array([0.3, -0.2, 0.1])
    got = _call(str(lib), "chunked", xs, ys, w, len(OUTPUTS))
    want = lambdify([OUTPUTS], [x, y, list(W)])(xs, ys, w)[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


MAIN = r"""
#include <stdio.h>
#include "f.h"
int main(void) {
    const double xs[2] = {0.5, -1.5}, ys[2] = {1.0, 2.0}, w[3] = {0.3, -0.7, 0.2};
    const double *inputs[3] = {xs, ys, w};
    const int64_t rows[3] = {1, 1, 1}, steps[3] = {1, 1, 0};
    double out[8];
    if (loss_grad(2, inputs, rows, steps, out)) return 1;
    for (int k = 0; k < 8; ++k) printf("%.17g\n", out[k]);
    return 0;
}
"""


def test_a_c_program_calls_the_export(tmp_path):
    c, _, _ = _build(tmp_path)
    (tmp_path / "main.c").write_text(MAIN)
    exe = tmp_path / "main"
    cmd = [*c_build.compiler(), "-std=c99", "-o", str(exe), str(tmp_path / "main.c"), str(c)]
    subprocess.run([*cmd, "-lm"], check=True, capture_output=True)
    printed = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    got = np.array([float(v) for v in printed.split()]).reshape(4, 2)
    want = lambdify([OUTPUTS], [x, y, list(W)])(
        np.array([0.5, -1.5]), np.array([1.0, 2.0]), np.array([0.3, -0.7, 0.2])
    )[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["sin", "int", "_x", "sg_max", "naïve", "2f", "a-b"])
def test_unsafe_names_are_refused(tmp_path, name):
    with pytest.raises(InputTypeError, match="C identifier"):
        export_c(tmp_path / "f.c", [x], [x], name=name)
    assert not list(tmp_path.iterdir())


def test_path_must_be_a_c_file(tmp_path):
    with pytest.raises(InputTypeError, match=r"\.c"):
        export_c(tmp_path / "f.py", [x], [x])
