"""Generated C, built by the system compiler and loaded with ctypes (the ``"c"`` backend).

The outputs are linearised into unique DAG nodes (:func:`symgrad.graph.topo_order`) and each
node becomes one C statement ``const double tK = ...;`` printed by SymPy's ``C99CodePrinter``
with its arguments replaced by the temporaries that hold them, inside one loop over the batch.
Arithmetic-only kernels up to :data:`SIMD_LIMIT` statements (ReLU networks: no math library
calls, no conditionals) get a loop over four samples at a time instead (GCC/Clang vector
extensions over the same statements) when the target has AVX; the library is built with
``-march=native`` when the compiler accepts it.
Large functions are split into chunks that pass temporaries through a scratch array, and
optimisation drops to ``-O1`` and then ``-O0`` past size limits, so compile time stays about
linear in the number of statements (one 18,000-statement function takes minutes at ``-O2``).
A kernel built with ``mean=True`` accumulates every output's batch sum in its loop and
returns the means.

Shared libraries are cached under ``$XDG_CACHE_HOME/symgrad/c`` (``~/.cache/symgrad/c``), named
by a hash of the source, the compiler command and the CPU, so an identical function compiles
once per machine. Nothing is written next to the package.

>>> import numpy as np
>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> if c_available():
...     kernel = build_c_kernel([x, [y]], [x * y + sp.tanh(x), x - y])
...     out = kernel(np.array([0.0, 1.0]), np.array([2.0]))
... else:
...     out = np.array([[0.0, 2.0 + np.tanh(1.0)], [-2.0, -1.0]])
>>> out.round(4).tolist()
[[0.0, 2.7616], [-2.0, -1.0]]
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.codeprinter import PrintMethodNotImplementedError

from ..errors import (
    ArgumentError,
    BackendUnavailableError,
    ShapeError,
    UnsupportedFunctionError,
)
from ..graph import rebuild, topo_order

__all__ = ["CKernel", "build_c_kernel", "c_available"]

#: Statements per C function; larger kernels are split into chunks of this size.
CHUNK = 2000
#: Kernels up to this many statements are built with -O2, up to O1_LIMIT with -O1, larger ones
#: with -O0: measured on a 13,573-statement kernel (2-64-64-1 MLP gradient), gcc 12 takes
#: ~25 s at -O1 but ~5.5 s at -O0; optimising passes grow faster than linearly in function size.
O2_LIMIT = 3000
O1_LIMIT = 6000

#: Arithmetic-only kernels (+ - * /, max, min, heaviside: ReLU networks) up to this many
#: statements also get a SIMD loop over 4 samples at a time (GCC/Clang vector extensions) when
#: the target has AVX. Micrograd's demo kernel (1,031 statements, batch 100): scalar loop at
#: -O2 45 us per call, 1.5 s to compile; SIMD loop at -O1 17 us, 4 s to compile (at -O2 it
#: takes 15 s and is no faster). Compiled once per machine: libraries are cached.
SIMD_LIMIT = 2000

_INLINE = (sp.Tuple, sp.functions.elementary.piecewise.ExprCondPair)
_TOKEN = re.compile(r"_P(\d+)_")

_PRELUDE = """\
#include <math.h>
#include <stdint.h>
/* NumPy semantics: NaN propagates through max/min; heaviside(0) = h0, heaviside(NaN) = NaN. */
static inline double sg_max(double a, double b) { return (a > b || a != a) ? a : b; }
static inline double sg_min(double a, double b) { return (a < b || a != a) ? a : b; }
static inline double sg_heaviside(double x, double h0) {
    return x > 0 ? 1.0 : (x < 0 ? 0.0 : (x == 0 ? h0 : x));
}
static inline double sg_sigmoid(double x) {
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}
"""


# The SIMD loop reuses the scalar statements' text: inside it, arithmetic operators work on
# vectors (and on a vector with a scalar), the sg_ helpers are macros for their vector
# versions, and SG_V() splats a scalar.
_SIMD_OPS = {"sg_max": "sg_vmax", "sg_min": "sg_vmin", "sg_heaviside": "sg_vheaviside"}
_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")

_SIMD_PRELUDE = """\
#if defined(__AVX__) && !defined(SG_NO_SIMD)
#define SG_SIMD 1
typedef double sg_vd __attribute__((vector_size(32)));
typedef long long sg_vl __attribute__((vector_size(32)));
static inline sg_vd sg_splat(double x) { return (sg_vd){x, x, x, x}; }
static inline sg_vd sg_same(sg_vd x) { return x; }
#define SG_V(x) _Generic((x), double: sg_splat, default: sg_same)(x)
static inline sg_vd sg_sel(sg_vl m, sg_vd a, sg_vd b) {
    return (sg_vd)((m & (sg_vl)a) | (~m & (sg_vl)b));
}
static inline sg_vd sg_vmax(sg_vd a, sg_vd b) { return sg_sel((a > b) | (a != a), a, b); }
static inline sg_vd sg_vmin(sg_vd a, sg_vd b) { return sg_sel((a < b) | (a != a), a, b); }
static inline sg_vd sg_vheaviside(sg_vd x, sg_vd h0) {
    return sg_sel(x > 0, sg_splat(1.0), sg_sel(x < 0, sg_splat(0.0), sg_sel(x == 0, h0, x)));
}
/* lanes past the end of the batch repeat its last sample; their results are masked off */
static inline sg_vd sg_load(const double *p, int64_t c, int64_t i, int64_t n) {
    if (c == 0) return sg_splat(*p);
    sg_vd r;
    if (c == 1 && i + 4 <= n) { __builtin_memcpy(&r, p + i, sizeof r); return r; }
    for (int l = 0; l < 4; ++l) r[l] = p[(i + l < n ? i + l : n - 1) * c];
    return r;
}
static inline void sg_store(double *p, sg_vd x, int64_t i, int64_t n) {
    if (i + 4 <= n) { __builtin_memcpy(p + i, &x, sizeof x); return; }
    for (int l = 0; i + l < n; ++l) p[i + l] = x[l];
}
#endif
"""


class _CPrinter(C99CodePrinter):
    """C99 printer with exact float literals and NumPy's semantics for max/min/heaviside."""

    def __init__(self) -> None:
        super().__init__({"strict": True})

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Integer(self, expr):
        # doubles throughout: no integer division or int overflow in generated C
        return f"{int(expr)}.0"

    def _print_Rational(self, expr):
        return f"({int(expr.p)}.0/{int(expr.q)}.0)"

    def _print_Pow(self, expr):
        base, exp = expr.args
        b = self.parenthesize(base, 0)
        if exp == -1:
            return f"(1.0/{b})"
        if exp == sp.S.Half:
            return f"sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"(1.0/sqrt({self._print(base)}))"
        if exp == 2:
            return f"({b}*{b})"
        # never cbrt: NumPy gives NaN for a negative base to a fractional power, so does pow
        return f"pow({self._print(base)}, {self._print(exp)})"

    def _print_Max(self, expr):
        out = self._print(expr.args[0])
        for a in expr.args[1:]:
            out = f"sg_max({out}, {self._print(a)})"
        return out

    def _print_Min(self, expr):
        out = self._print(expr.args[0])
        for a in expr.args[1:]:
            out = f"sg_min({out}, {self._print(a)})"
        return out

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"sg_heaviside({self._print(expr.args[0])}, {self._print(h0)})"

    def _print_sigmoid(self, expr):
        return f"sg_sigmoid({self._print(expr.args[0])})"

    def _print_Symbol(self, expr):
        return expr.name


@functools.lru_cache(maxsize=1)
def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class _Target(NamedTuple):
    flags: list[str]  # ["-march=native"] when the compiler takes it
    avx: bool  # whether those flags give AVX (256-bit vectors): the SIMD loop pays
    cpu: str  # the CPU's identity, part of the cache key


@functools.lru_cache(maxsize=1)
def _target() -> _Target:
    """What the compiler can target on this machine (two tiny probe compiles, once per process).

    ``-march=native`` lets the compiler use this CPU's vector units; the library then only runs
    on CPUs like this one, so the CPU's identity is part of the cache key (a home directory
    shared by different machines keeps one library per CPU type).
    """
    cpu = f"{platform.machine()} {platform.processor()}"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            keys = ("model name", "flags", "Features")
            cpu += "".join(line for line in f if line.startswith(keys))
    except OSError:
        pass
    compiler = _compiler()
    if compiler is None or not _compiles(compiler, ["-march=native"], ""):
        return _Target([], False, cpu)
    avx = _compiles(compiler, ["-march=native"], "#ifndef __AVX__\n#error no AVX\n#endif\n")
    return _Target(["-march=native"], avx, cpu)


def _compiles(compiler: str, flags: list[str], prefix: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(prefix + "double f(double x) { return x * x; }\n")
        cmd = [compiler, *flags, "-c", "-o", str(Path(tmp) / "probe.o"), str(src)]
        try:
            return subprocess.run(cmd, capture_output=True, check=False).returncode == 0
        except OSError:
            return False


def c_available() -> bool:
    """True when a C compiler is on ``PATH`` (``$CC``, ``cc``, ``gcc`` or ``clang``).

    >>> isinstance(c_available(), bool)
    True
    """
    return _compiler() is not None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "symgrad" / "c"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        path = Path(tempfile.gettempdir()) / "symgrad-c"
        path.mkdir(parents=True, exist_ok=True)
        return path


class CKernel:
    """A compiled C kernel: every output for a whole batch, as one float64 array.

    Call it with one value per argument of the spec it was built from (a number or array for a
    symbol; an array whose first axis indexes the symbols for a sequence of symbols). Arrays
    broadcast over their batch axes. Returns an array of shape ``(n_outputs, *batch)``, or
    ``(n_outputs,)`` for a kernel built with ``mean=True`` (the batch mean of each output).

    Attributes:
        source: the generated C source.
        library: the path of the shared library.
        n_outputs: the number of outputs.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> if c_available():
    ...     k = build_c_kernel([x, [y]], [x * y])
    ...     print(k(np.array([1.0, 2.0]), [3.0]).tolist(), k.n_outputs)
    ... else:
    ...     print([[3.0, 6.0]], 1)
    [[3.0, 6.0]] 1
    """

    def __init__(
        self, fn, source: str, library: Path, arg_spec: list, n_outputs: int, mean: bool = False
    ) -> None:
        self._fn = fn
        self.source = source
        self.library = library
        self._spec = arg_spec
        self.n_outputs = n_outputs
        self.mean = mean
        self._nargs = len(arg_spec)
        self._leads = [() if isinstance(a, sp.Symbol) else (len(a),) for a in arg_spec]

    def __call__(self, *values: Any) -> np.ndarray:
        if len(values) != self._nargs:
            raise ArgumentError(f"kernel takes {self._nargs} argument(s), got {len(values)}")
        arrays = []
        shapes = []
        for lead, v in zip(self._leads, values, strict=True):
            a = v if type(v) is np.ndarray and v.dtype == np.float64 else _real(v)
            if lead:
                if a.ndim == 0 or a.shape[0] != lead[0]:
                    raise ArgumentError(
                        f"a vector argument needs {lead[0]} entries along its first axis, "
                        f"got shape {a.shape}"
                    )
                shapes.append(a.shape[1:])
            else:
                shapes.append(a.shape)
            arrays.append(a)
        batch = max(shapes, key=len)
        if any(s != batch and s for s in shapes):
            try:
                batch = np.broadcast_shapes(*shapes)
            except ValueError as exc:
                raise ArgumentError(f"argument shapes do not broadcast together: {exc}") from exc
        n = math.prod(batch)
        ptrs, rows, cols, keep = [], [], [], []
        for lead, a, own in zip(self._leads, arrays, shapes, strict=True):
            if own == batch:
                col = 1 if n > 1 else 0
            elif math.prod(own) == 1:  # no batch axes (or only axes of length 1)
                col = 0
            else:
                a = np.broadcast_to(a, lead + batch)
                col = 1
            if not a.flags.c_contiguous:
                a = np.ascontiguousarray(a)
            keep.append(a)  # alive until the call returns
            ptrs.append(_address(a))
            rows.append(n if col else 1)
            cols.append(col)
        if self.mean and not n:
            raise ShapeError("reduce='mean' over an empty batch: give at least one sample")
        out = np.empty(self.n_outputs if self.mean else (self.n_outputs, *batch))
        if n:
            meta = np.array(ptrs + rows + cols, dtype=np.int64)
            self._fn(n, _address(meta), _address(out))
        return out


_from_buffer = ctypes.c_char.from_buffer


def _address(a: np.ndarray) -> int:
    # The data pointer of a C-contiguous array: through the buffer protocol (~0.2 us) when the
    # array is writable and not empty, else NumPy's ctypes interface (~1 us).
    try:
        return ctypes.addressof(_from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


def _real(v: Any) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype.kind not in "fiub":
        raise ArgumentError(
            f"the 'c' backend takes real numbers, got an array of dtype {a.dtype}; "
            "use backend='numpy' for complex values"
        )
    return a.astype(np.float64, copy=False)


def build_c_kernel(
    arg_spec: Sequence, outputs: Sequence[sp.Expr], name: str = "symgrad_kernel", mean: bool = False
):
    """Generate, compile (cached) and load a C kernel evaluating ``outputs``.

    Args:
        arg_spec: the arguments: each a symbol, or a sequence of symbols passed as one array.
        outputs: scalar real expressions over the argument symbols.
        name: the C function name (a C identifier).
        mean: average every output over the batch inside the loop (the kernel then returns
            one value per output and never stores per-sample results).

    Returns:
        A :class:`CKernel`.

    Raises:
        BackendUnavailableError: no C compiler is installed, or compiling failed.
        UnsupportedFunctionError: an output uses a function with no C translation.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> if c_available():
    ...     print(float(build_c_kernel([x], [x**2 + 1])(3.0)[0]))
    ... else:
    ...     print(10.0)
    10.0
    """
    compiler = _compiler()
    if compiler is None:
        raise BackendUnavailableError(
            "the 'c' backend needs a C compiler (cc, gcc or clang on PATH, or $CC); install "
            "one (e.g. 'apt-get install gcc') or use backend='numpy'"
        )
    arg_spec = [a if isinstance(a, sp.Symbol) else list(a) for a in arg_spec]
    target = _target()
    source, n_stmts, simd = _generate(arg_spec, list(outputs), name, mean, target.avx)
    level = "-O2" if n_stmts <= O2_LIMIT else "-O1" if n_stmts <= O1_LIMIT else "-O0"
    if simd:  # -O2 gains nothing on the vector loop and takes ~3x longer (register allocation)
        level = "-O1"
    flags = [level, *target.flags, "-shared", "-fPIC", "-fno-math-errno"]
    flags.append("-ffp-contract=off")  # no fused multiply-add: the same rounding as NumPy
    key = hashlib.sha1((compiler + " ".join(flags) + target.cpu + source).encode()).hexdigest()
    key = key[:20]
    lib = _cache_dir() / f"{name}_{key}.so"
    if not lib.exists():
        _compile(compiler, flags, source, lib)
    dll = ctypes.CDLL(str(lib))
    fn = getattr(dll, name)
    fn.restype = None
    fn.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
    return CKernel(fn, source, lib, arg_spec, len(outputs), mean)


def _compile(compiler: str, flags: list, source: str, lib: Path) -> None:
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
        src = Path(tmp) / "kernel.c"
        src.write_text(source)
        tmp_lib = Path(tmp) / lib.name
        cmd = [compiler, *flags, "-o", str(tmp_lib), str(src), "-lm"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise BackendUnavailableError(
                f"could not run the C compiler {compiler}: {exc}"
            ) from exc
        if proc.returncode != 0:
            raise BackendUnavailableError(
                f"the C compiler failed ({' '.join(cmd[:3])} ...): {proc.stderr.strip()[:800]}"
            )
        os.replace(tmp_lib, lib)  # atomic: concurrent builders never see half a library


def _generate(
    arg_spec: list, outputs: list[sp.Expr], name: str, mean: bool, simd: bool = False
) -> tuple[str, int, bool]:
    """The C source of the kernel, its number of statements, and whether it has a SIMD loop."""
    var: dict[sp.Basic, str] = {}
    loads: list[tuple[str, int, int]] = []  # (C name, argument, row)
    for j, item in enumerate(arg_spec):
        syms = [item] if isinstance(item, sp.Symbol) else item
        for r, s in enumerate(syms):
            if s in var:
                continue
            var[s] = f"a{j}_{r}"
            loads.append((var[s], j, r))
    printer = _CPrinter()
    templates: dict[tuple, str] = {}
    shadow: dict[sp.Basic, sp.Basic] = {}
    stmts: list[tuple[str, str]] = []  # (temporary, expression)
    placeholder: dict[sp.Basic, sp.Symbol] = {}

    def place(a: sp.Basic) -> sp.Symbol:
        p = placeholder.get(a)
        if p is None:
            p = placeholder[a] = sp.Symbol(var[a])
        return p

    for node in topo_order(outputs):
        if node in var:
            continue
        if not node.args:
            if isinstance(node, sp.Symbol):
                raise ArgumentError(f"symbol {node} is used by an output but is not an argument")
            shadow[node] = node
            continue
        kids = [shadow[a] if a in shadow else place(a) for a in node.args]
        if isinstance(node, _INLINE):
            shadow[node] = node.func(*kids)
            continue
        var[node] = f"t{len(stmts)}"
        stmts.append((var[node], _print_node(printer, templates, node, kids)))
    results = [var[o] if o in var else _doprint(printer, shadow[o]) for o in outputs]
    vector = _simd_loop(loads, stmts, results, mean) if simd and len(stmts) <= SIMD_LIMIT else None
    source = _assemble(name, len(arg_spec), loads, stmts, results, mean, vector)
    return source, len(stmts), vector is not None


def _assemble(
    name: str,
    nargs: int,
    loads: list,
    stmts: list,
    results: list[str],
    mean: bool,
    simd: list[str] | None = None,
) -> str:
    # meta holds the nargs input pointers, then their row strides, then their batch steps
    head = f"void {name}(int64_t n, const int64_t *meta, double *out)"
    setup = [
        "    const double *const *in = (const double *const *)meta;",
        f"    const int64_t *rs = meta + {nargs}, *cs = meta + {2 * nargs};",
    ]
    lines = [_PRELUDE]
    load = "in[{j}][{r} * rs[{j}] + i * cs[{j}]]"
    nout = len(results)
    if mean:  # sums accumulate in locals (no aliasing with the inputs), divided by n at the end
        setup += [f"    double s{k} = 0.0;" for k in range(nout)]
        store = "        s{k} += {r};"
        finish = [f"    out[{k}] = s{k} / (double)n;" for k in range(nout)]
    else:
        store = "        out[{k} * n + i] = {r};"
        finish = []
    if len(stmts) <= CHUNK:
        lines += [_SIMD_PRELUDE] if simd else []
        lines += [head, "{", *setup[:2]]
        lines += ["#ifdef SG_SIMD", *simd, "#else"] if simd else []
        lines += [*setup[2:], "    for (int64_t i = 0; i < n; ++i) {"]
        lines += [f"        const double {v} = {load.format(j=j, r=r)};" for v, j, r in loads]
        lines += [f"        const double {t} = {e};" for t, e in stmts]
        lines += [store.format(k=k, r=r) for k, r in enumerate(results)]
        lines += ["    }", *finish]
        lines += ["#endif"] if simd else []
        lines += ["}", ""]
        return "\n".join(lines)
    # Chunked: temporaries live in a scratch array t[], one static function per chunk (inputs
    # are loaded into t[] first), so each function stays small enough for the optimiser.
    slot = {v: f"t[{k}]" for k, v in enumerate([v for v, _, _ in loads] + [t for t, _ in stmts])}
    sub = re.compile(r"\b(a\d+_\d+|t\d+)\b")

    def put(text: str) -> str:
        return sub.sub(lambda m: slot[m.group(1)], text)

    chunk_names = []
    for c in range(0, len(stmts), CHUNK):
        cname = f"{name}_chunk{c // CHUNK}"
        chunk_names.append(cname)
        lines.append(f"static void {cname}(double *restrict t)\n{{")
        lines += [f"    {put(t)} = {put(e)};" for t, e in stmts[c : c + CHUNK]]
        lines.append("}\n")
    lines += [head, "{", *setup, f"    static __thread double t[{len(slot)}];"]
    lines.append("    for (int64_t i = 0; i < n; ++i) {")
    lines += [f"        {slot[v]} = {load.format(j=j, r=r)};" for v, j, r in loads]
    lines += [f"        {c}(t);" for c in chunk_names]
    lines += [store.format(k=k, r=put(r)) for k, r in enumerate(results)]
    lines += ["    }", *finish, "}", ""]
    return "\n".join(lines)


def _simd_loop(loads: list, stmts: list, results: list[str], mean: bool) -> list[str] | None:
    """The kernel's loop over 4 samples at a time, or None when a statement has no vector form.

    The statements' text is the scalar loop's: arithmetic operators work on vectors (and on a
    vector with a scalar), and max / min / heaviside are macros for their vector versions (see
    ``_SIMD_PRELUDE``). Math library calls (exp, tanh, pow, ...) have no vector form in C:
    mapping them lane by lane was measured slower than the scalar loop, so such kernels keep
    only the scalar loop, as do conditionals (Piecewise prints ``?:``).
    """
    for text in [e for _, e in stmts] + results:
        if "?" in text or "<" in text or ">" in text or "=" in text or "&" in text or "|" in text:
            return None
        if any(name not in _SIMD_OPS for name in _CALL.findall(text)):
            return None
    nout = len(results)
    lines = [f"#define {f}(x, y) {v}(SG_V(x), SG_V(y))" for f, v in _SIMD_OPS.items()]
    if mean:
        lines += [f"    sg_vd v{k} = {{0.0, 0.0, 0.0, 0.0}};" for k in range(nout)]
    lines += ["    for (int64_t i = 0; i < n; i += 4) {"]
    if mean:
        lines += [
            "        const sg_vl valid = {-(i < n), -(i + 1 < n), -(i + 2 < n), -(i + 3 < n)};"
        ]
    lines += [
        f"        const sg_vd {v} = sg_load(&in[{j}][{r} * rs[{j}]], cs[{j}], i, n);"
        for v, j, r in loads
    ]
    lines += [f"        const sg_vd {t} = SG_V({e});" for t, e in stmts]
    if mean:  # lanes past the end add +0.0
        lines += [
            f"        v{k} += (sg_vd)((sg_vl)SG_V({r}) & valid);" for k, r in enumerate(results)
        ]
    else:
        lines += [
            f"        sg_store(out + {k} * n, SG_V({r}), i, n);" for k, r in enumerate(results)
        ]
    lines += ["    }"]
    if mean:
        lines += [
            f"    out[{k}] = (v{k}[0] + v{k}[1] + v{k}[2] + v{k}[3]) / (double)n;"
            for k in range(nout)
        ]
    lines += [f"#undef {f}" for f in _SIMD_OPS]
    return lines


def _print_node(printer: _CPrinter, templates: dict, node: sp.Basic, kids: list) -> str:
    # Same template trick as the NumPy code generator: print each (head, numbers) shape once.
    if all(isinstance(k, sp.Symbol) or k.is_Number for k in kids):
        key = (node.func, tuple(k if k.is_Number else None for k in kids))
        template = templates.get(key)
        if template is None:
            tokens = [k if k.is_Number else sp.Symbol(f"_P{i}_") for i, k in enumerate(kids)]
            template = templates[key] = _doprint(printer, rebuild(node, tokens))
        names = [k.name if k.is_Symbol else "" for k in kids]
        return _TOKEN.sub(lambda m: names[int(m.group(1))], template)
    return _doprint(printer, rebuild(node, kids))


def _doprint(printer: _CPrinter, expr: sp.Basic) -> str:
    try:
        text = printer.doprint(expr)
    except PrintMethodNotImplementedError as exc:
        head = type(expr).__name__
        raise UnsupportedFunctionError(
            head,
            f"cannot compile {head} to C: SymPy's C printer has no translation for it; use "
            "backend='numpy', or replace it with elementary functions",
        ) from exc
    return " ".join(text.split())  # Piecewise prints over several lines
