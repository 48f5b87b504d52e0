"""Generated C, built by the system compiler and loaded with ctypes (the ``"c"`` backend).

:mod:`.c_pack` prints the kernel of a program with packs (a network's layers as loops over
blocks of samples), :mod:`.c_source` any other (one statement per unique DAG node, split into
functions and translation units when large), :mod:`.c_build` compiles it into a private, checked
cache, and :class:`CKernel` calls it with NumPy's broadcasting: arguments' batch axes align from
the right, and each output has the shape and dtype the NumPy target gives it (an output that
does not depend on the batch has no batch axes). :func:`export_c` writes the same kernel as a
portable ``.c``/``.h`` pair for any C program.

>>> import numpy as np
>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> if c_available():
...     kernel = build_c_kernel([x, [y]], [x * y + sp.tanh(x), x - y])
...     out = kernel(np.array([0.0, 1.0]), np.array([2.0]))
... else:
...     out = np.array([[0.0, 2.0 + np.tanh(1.0)], [-2.0, -1.0]])
>>> np.asarray(out).round(4).tolist()
[[0.0, 2.7616], [-2.0, -1.0]]
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from ..errors import (
    ArgumentError,
    BackendUnavailableError,
    InputTypeError,
    ShapeError,
    SymgradError,
)
from . import c_build
from .c_build import c_available
from .c_export import export_c
from .c_pack import generate_packed
from .c_source import CProgram, generate
from .plan import Program, plan

__all__ = ["CKernel", "build_c_kernel", "c_available", "c_pays", "export_c"]

#: Optimisation levels by kind of translation unit, best first. The vector loop gains nothing
#: at -O2 over -O1 and takes ~1.7x longer to compile.
LEVELS = {"scalar": ("-O2", "-O1", "-O0"), "simd": ("-O1", "-O0"), "packed": ("-O2",)}
#: Flags a kind of unit adds to its level: the packed kernel's member loops have trip counts
#: that are not multiples of the vector width, which -O2's default cost model does not
#: vectorise (-O3 took 10x longer to compile the 2-64-64-1 kernel for no gain).
EXTRA = {"packed": ("-fvect-cost-model=dynamic",)}
#: Compiler CPU seconds per statement, by kind and level: gcc 12 on the 2-64-64-1 MLP gradients
#: in functions of 250 statements, on this project's shared 2-core machine (benchmarks/
#: c_target.py prints the compilers' CPU time of every build).
COST = {
    ("scalar", "-O2"): 1.6e-3,
    ("scalar", "-O1"): 1.3e-3,
    ("scalar", "-O0"): 1.5e-4,
    ("simd", "-O1"): 1.3e-3,
    ("simd", "-O0"): 3.0e-4,
    ("packed", "-O2"): 1.0e-3,
}
#: Compiler CPU seconds one build may take per compiler job: units start at -O0 and are raised
#: to their best level while the estimate stays within it, so compile time stays about linear
#: in the program (2-256-256-1: ~270,000 statements, all -O0).
BUDGET = 20.0


def c_pays(n_operations: int, packed: bool = False) -> bool:
    """Whether ``backend="auto"`` should build C for a program of ``n_operations``.

    A program with packs (a network's layers, ``packed``) is printed as loops (:mod:`.c_pack`):
    its kernel stays small at any width and is faster than the NumPy target at every width
    measured (benchmarks/c_target_results.md). Any other only when the whole kernel can be
    optimised within the compile budget: code built at ``-O0`` loses to the NumPy target
    (2-128-128-1 gradient printed statement by statement, batch 100: C with a quarter of its
    units at -O0 took 1.9x the NumPy target's time per step).

    >>> c_pays(1000), c_pays(10**6), c_pays(10**6, packed=True)
    (True, False, True)
    """
    return packed or n_operations * COST["scalar", "-O1"] <= BUDGET * c_build.jobs()


@functools.lru_cache(maxsize=16)
def _accepted(cc: tuple[str, ...], flags: tuple[str, ...]) -> list[str]:
    # the tuning flags this compiler takes (Clang has no -fvect-cost-model)
    return [f for f in flags if c_build.compiles(cc, [f])]


def _levels(units: list[tuple[str, str, int]], jobs: int) -> list[str]:
    """An optimisation level per translation unit: the best the compile budget allows."""
    if len(units) == 1:
        return [LEVELS[units[0][1]][0]]
    level = [LEVELS[kind][-1] for _, kind, _ in units]
    total = sum(COST[kind, lv] * n for (_, kind, n), lv in zip(units, level, strict=True))
    budget = BUDGET * jobs
    for k, (_, kind, n) in enumerate(units):
        for better in LEVELS[kind][:-1]:
            extra = (COST[kind, better] - COST[kind, level[k]]) * n
            if total + extra <= budget:
                level[k], total = better, total + extra
                break
    return level


class CKernel:
    """A compiled C kernel: every output for a whole batch.

    Call it with one value per argument of the spec it was built from (a number or array for a
    symbol; an array whose first axis indexes the symbols for a sequence of symbols). Batch axes
    broadcast as in NumPy (aligned from the right). Returns an array of shape
    ``(n_outputs, *batch)``, or an object indexed like one whose rows have each output's own
    shape and dtype (those of the NumPy target) when outputs differ in the arguments they
    depend on; ``(n_outputs,)`` batch means for a kernel built with ``mean=True``.

    Attributes:
        source: the generated C source (all translation units).
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
        self, fn, program: CProgram, library: Path, arg_spec: list, mean: bool = False
    ) -> None:
        self._fn = fn
        self.source = "\n".join(text for text, _, _ in program.units)
        self.library = library
        self._spec = arg_spec
        self.n_outputs = len(program.masks)
        self.mean = mean
        self._nargs = len(arg_spec)
        self._leads = [() if isinstance(a, sp.Symbol) else (len(a),) for a in arg_spec]
        self._masks = program.masks
        self._distinct = sorted(set(program.masks))

    def __call__(self, *values: Any) -> Any:
        if len(values) != self._nargs:
            raise ArgumentError(f"kernel takes {self._nargs} argument(s), got {len(values)}")
        arrays, shapes, strong = [], [], []
        for j, (lead, v) in enumerate(zip(self._leads, values, strict=True)):
            a = v if type(v) is np.ndarray and v.dtype == np.float64 else _real(v, j)
            if lead:
                if a.ndim == 0 or a.shape[0] != lead[0]:
                    raise ShapeError(
                        f"argument {j} is a vector of {lead[0]} symbols: it needs {lead[0]} "
                        f"entries along its first axis, got shape {a.shape}"
                    )
                shapes.append(a.shape[1:])
            else:
                shapes.append(a.shape)
            strong.append(type(v) not in (float, int))  # Python numbers are weakly typed
            arrays.append(a)
        batch = shapes[0] if all(s == shapes[0] for s in shapes) else _broadcast(shapes)
        n = math.prod(batch)
        ptrs, rows, cols, keep = [], [], [], []
        full = 0  # arguments whose batch shape is the whole batch
        for j, (lead, a, own) in enumerate(zip(self._leads, arrays, shapes, strict=True)):
            if own == batch:
                col = 1 if n > 1 else 0
                full |= 1 << j
            elif math.prod(own) == 1:  # no batch axes (or only axes of length 1)
                col = 0
            else:  # batch axes align from the right, after the symbols' axis
                a = a.reshape(lead + (1,) * (len(batch) - len(own)) + own)
                a = np.broadcast_to(a, lead + batch)
                col = 1
            if a.dtype != np.float64:
                a = a.astype(np.float64)
            if not a.flags.c_contiguous:
                a = np.ascontiguousarray(a)
            keep.append(a)  # alive until the call returns
            ptrs.append(_address(a))
            rows.append(n if col else 1)
            cols.append(col)
        if self.mean and not n:
            raise ShapeError("reduce='mean' over an empty batch: give at least one sample")
        out = np.empty(self.n_outputs if self.mean else (self.n_outputs, *batch))
        if n and self.n_outputs:
            meta = np.array(ptrs + rows + cols, dtype=np.int64)
            if self._fn(n, _address(meta), _address(out)):
                raise MemoryError("the C kernel could not allocate its scratch space")
        dtypes = [a.dtype for a, s in zip(arrays, strong, strict=True) if s]
        low = any(d != np.float64 for d in dtypes)
        if not low and all(m & full for m in self._distinct):
            return out  # every output has the whole batch's shape, as float64
        outputs = _Outputs(out, self._masks, shapes, arrays, strong, self.mean)
        if not n and not self.mean:
            # an empty batch: outputs that do not depend on the empty arguments still have
            # values (NumPy computes them from the other arguments alone)
            empty = [not math.prod(s) for s in shapes]
            gone = sum(1 << j for j, e in enumerate(empty) if e)
            if any(not m & gone for m in self._distinct):
                zipped = zip(self._leads, empty, values, strict=True)
                outputs.alt = self(*[np.zeros(lead) if e else v for lead, e, v in zipped])
        return outputs


def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ShapeError(
            f"the arguments' batch shapes {', '.join(map(str, shapes))} cannot be combined: "
            "aligned from the right, each axis must have the same length or length 1"
        ) from None


class _Outputs:
    """The kernel's rows, each with the shape and dtype NumPy gives it.

    An output that depends on some arguments only has the broadcast shape of those arguments'
    batch axes (NumPy computes it from them alone) and their result dtype (float32 inputs give
    float32); a constant has no batch axes. A slice of rows is their stack, broadcast together.
    """

    __slots__ = ("_dtypes", "_masks", "_mean", "_out", "_shapes", "alt")

    def __init__(self, out, masks, shapes, arrays, strong, mean) -> None:
        self._out, self._masks, self._mean = out, masks, mean
        self.alt: Any = None  # the outputs at other values of the arguments they ignore
        self._shapes: dict[int, tuple[int, ...]] = {}
        self._dtypes: dict[int, np.dtype] = {}
        for m in set(masks):
            picked = [j for j in range(len(shapes)) if m >> j & 1]
            self._shapes[m] = () if mean else np.broadcast_shapes(*[shapes[j] for j in picked])
            kinds = [arrays[j].dtype for j in picked if strong[j]]
            self._dtypes[m] = np.result_type(*kinds) if kinds else np.dtype(np.float64)

    def __len__(self) -> int:
        return len(self._masks)

    def _rows(self, rows: slice | int, masks: list[int]) -> np.ndarray:
        out = self._out[rows]
        shape = np.broadcast_shapes(*[self._shapes[m] for m in masks]) if masks else ()
        dtype = np.result_type(*[self._dtypes[m] for m in masks]) if masks else out.dtype
        if self.alt is not None and math.prod(shape) and not out.size:
            return np.asarray(self.alt[rows], dtype=dtype)
        if not self._mean:
            lead = out.ndim - len(self._out.shape[1:])
            batch = self._out.shape[1:]
            # the value is constant along the batch axes this output does not depend on
            index = (slice(None),) * lead + (0,) * (len(batch) - len(shape))
            index += tuple(
                slice(None) if s == b else slice(0, 1)
                for s, b in zip(shape, batch[len(batch) - len(shape) :], strict=True)
            )
            out = out[index]
        return out.astype(dtype, copy=False) if dtype != out.dtype else out

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return self._rows(key, self._masks[key])
        out = self._rows(key, [self._masks[key]])
        return out[()] if out.ndim == 0 else out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def tolist(self) -> list:
        return self[:].tolist()


_from_buffer = ctypes.c_char.from_buffer


def _address(a: np.ndarray) -> int:
    # The data pointer of a C-contiguous array: through the buffer protocol (~0.2 us) when the
    # array is writable and not empty, else NumPy's ctypes interface (~1 us).
    try:
        return ctypes.addressof(_from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


def _real(v: Any, position: int) -> np.ndarray:
    if isinstance(v, (bool, np.bool_, str, bytes)) or v is None:
        raise ArgumentError(
            f"argument {position} must be a real number or an array of real numbers, got "
            f"{type(v).__name__}"
        )
    try:
        a = np.asarray(v)
    except (ValueError, TypeError) as exc:
        raise ArgumentError(f"argument {position} is not a numeric array: {exc}") from exc
    if a.dtype.kind not in "fiu":
        raise ArgumentError(
            f"the 'c' backend takes real numbers, got an array of dtype {a.dtype} for argument "
            f"{position}; use backend='numpy' for complex values"
        )
    return a if a.dtype.kind == "f" else a.astype(np.float64)


def _packed(
    prog: Program | None, arg_spec: list, outputs: list, name: str, mean: bool, mvec: bool
) -> CProgram | None:
    # the packed kernel, or None: the statement-by-statement generator then reports any error
    # in the outputs (an unknown symbol, a function with no C translation) in its own words
    try:
        prog = prog if prog is not None else plan(outputs, arg_spec)
        return generate_packed(prog, name, mean, vector_math=mvec)
    except SymgradError:
        return None


def build_c_kernel(
    arg_spec: Sequence,
    outputs: Sequence[sp.Expr],
    name: str = "symgrad_kernel",
    mean: bool = False,
    *,
    timeout: float | None = None,
    cache_dir: str | os.PathLike | None = None,
    program: Program | None = None,
) -> CKernel:
    """Generate, compile (cached) and load a C kernel evaluating ``outputs``.

    A network's layers (packs, see :mod:`.pack`) are printed as loops (:mod:`.c_pack`);
    anything else one statement per node (:mod:`.c_source`).

    Args:
        arg_spec: the arguments: each a symbol, or a sequence of symbols passed as one array.
        outputs: scalar real expressions over the argument symbols.
        name: the C function name (a C identifier).
        mean: average every output over the batch inside the loop (the kernel then returns
            one value per output and never stores per-sample results).
        timeout: seconds each compiler process may take (default
            :data:`symgrad.codegen.c_build.TIMEOUT`, or ``$SYMGRAD_CC_TIMEOUT``).
        cache_dir: the folder of compiled libraries (default: the user's cache folder).
        program: ``outputs`` over ``arg_spec`` already planned (:func:`.plan.plan`), so it
            is not planned again.

    Returns:
        A :class:`CKernel`.

    Raises:
        BackendUnavailableError: no C compiler is installed.
        CompilerError: compiling failed or timed out (the message says what to do).
        UnsafeCacheError: the cache folder is not private to this user.
        UnsupportedFunctionError: an output uses a function with no C translation.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> if c_available():
    ...     print(float(build_c_kernel([x], [x**2 + 1])(3.0)[0]))
    ... else:
    ...     print(10.0)
    10.0
    """
    if not name.isidentifier() or not name.isascii():
        raise InputTypeError(f"the kernel name must be an ASCII C identifier, got {name!r}")
    cc = c_build.compiler()
    if cc is None:
        raise BackendUnavailableError(
            "the 'c' backend needs a C compiler (cc, gcc or clang on PATH, or $CC); install "
            "one (e.g. 'apt-get install gcc') or use backend='numpy'"
        )
    arg_spec = [a if isinstance(a, sp.Symbol) else list(a) for a in arg_spec]
    tgt = c_build.target(cc)
    code = _packed(program, arg_spec, list(outputs), name, mean, tgt.mvec)
    if code is None:
        code = generate(arg_spec, list(outputs), name, mean, tgt.avx)
    program = code
    levels = _levels(program.units, c_build.jobs())
    mvec = ["-lmvec"] if tgt.mvec else []
    units = [
        (text, [lv, *_accepted(cc, EXTRA.get(kind, ())), *(mvec if kind == "packed" else [])])
        for (text, kind, _), lv in zip(program.units, levels, strict=True)
    ]
    lib = c_build.build_library(name, units, timeout=timeout, cache=cache_dir)
    try:
        dll = ctypes.CDLL(str(lib))
    except OSError as exc:
        raise BackendUnavailableError(
            f"the compiled library {lib} could not be loaded: {exc}; delete that folder to "
            "rebuild it, or use backend='numpy'"
        ) from exc
    fn = getattr(dll, name)
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
    return CKernel(fn, program, lib, arg_spec, mean)
