"""In-place parameter updates inside generated matrix code: ``p -= g`` where ``g`` is born.

A training step written as "compute the gradients, return them, subtract them" makes one more
pass over every parameter after the gradients are complete, and keeps all gradients alive until
then. When the generated function does the update itself, each update can run as soon as its
gradient exists and the parameter has been read for the last time, and a gradient that is a
matrix product ``c (X Y)`` never needs to be stored: BLAS ``gemm`` computes
``P <- P - c X Y`` in one sweep (``beta = 1``), reading ``P`` while it writes the product.
NumPy's ``@`` does not expose ``beta``; SciPy's BLAS wrappers do, so :func:`sub_product` uses
them when SciPy is installed and the operands' layouts let BLAS read them without copies, and
NumPy (the product, then one subtraction) otherwise.

This module rewrites the generator's statement list (:func:`place_updates`) and holds the
runtime pieces the generated code calls.

>>> import numpy as np
>>> p, x, y = np.ones((2, 2)), np.eye(2), np.full((2, 2), 2.0)
>>> sub_product(p, x, y, 0.5).tolist()
[[0.0, 0.0], [0.0, 0.0]]
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..errors import InputTypeError

_NAMES = re.compile(r"\b[at]\d+\b")
_TEMP = re.compile(r"t\d+")
# ``x @ y`` or ``c * (x @ y)`` of two named operands: the statements gemm can fold an update into
_PRODUCT = re.compile(r"^(?:(\w+|\(.+\)) \* \()?(\w+) @ (\w+)(\))?$")

_GEMM: dict[Any, Any] | None = None
#: parameters with fewer entries are updated by NumPy: SciPy's wrapper costs about a microsecond
#: more per call, which the saved pass over the parameter pays back from about 64 x 64 (measured)
GEMM_FROM = 4096


def _gemm_functions() -> dict[Any, Any]:
    """``{dtype: gemm}`` from SciPy's BLAS, empty without SciPy (looked up once)."""
    global _GEMM
    if _GEMM is None:
        try:
            from scipy.linalg import blas
        except ImportError:  # SciPy is optional: NumPy's product and subtraction do the same
            _GEMM = {}
        else:
            _GEMM = {np.dtype(np.float64): blas.dgemm, np.dtype(np.float32): blas.sgemm}
    return _GEMM


def _fortran_operand(m: np.ndarray) -> tuple[np.ndarray, int] | None:
    """``(array, trans)`` such that BLAS reads ``m`` as ``op(array)`` without a copy."""
    if m.flags.f_contiguous:
        return m, 0
    if m.flags.c_contiguous:
        return m.T, 1
    return None


def sub_product(p: np.ndarray, x: np.ndarray, y: np.ndarray, c: Any = 1.0) -> np.ndarray:
    """``p -= c * (x @ y)`` in place; returns ``p``.

    One BLAS ``gemm`` call with ``beta = 1`` when SciPy is installed, all three arrays share a
    BLAS dtype, ``p`` is contiguous and does not overlap ``x`` or ``y``, and ``c`` is a nonzero
    real number (``0 * NaN`` must stay NaN, and BLAS skips the product when ``alpha = 0``);
    otherwise NumPy computes the product, then subtracts it.

    >>> import numpy as np
    >>> p = np.zeros((2, 3))
    >>> sub_product(p, np.ones((2, 4)), np.ones((4, 3)), 2.0).tolist()
    [[-8.0, -8.0, -8.0], [-8.0, -8.0, -8.0]]
    """
    gemm = _gemm_functions().get(p.dtype) if p.size >= GEMM_FROM else None
    if (
        gemm is not None
        and x.dtype == p.dtype
        and y.dtype == p.dtype
        and x.ndim == y.ndim == p.ndim == 2
        and x.size
        and y.size
        and isinstance(c, (int, float, np.floating, np.integer))
        and c != 0
        and np.isfinite(c)
        and not np.may_share_memory(p, x)
        and not np.may_share_memory(p, y)
    ):
        # BLAS writes a column-major C: a C-ordered p is the column-major p^T = y^T x^T
        if p.flags.f_contiguous:
            out, first, second = p, x, y
        elif p.flags.c_contiguous:
            out, first, second = p.T, y.T, x.T
        else:
            out = None
        a = _fortran_operand(first) if out is not None else None
        b = _fortran_operand(second) if a is not None else None
        if b is not None:
            r = gemm(-float(c), a[0], b[0], 1.0, out, a[1], b[1], overwrite_c=1)
            if r is not out:  # f2py copied ``c`` after all: write the result back
                out[...] = r
            return p
    prod = x @ y
    if not (isinstance(c, (int, float)) and c == 1):
        prod = c * prod
    np.subtract(p, prod, out=p)
    return p


def param_error(name: str, value: Any) -> None:
    """Raised by a generated step for a parameter it cannot update in place."""
    got = (
        f"a read-only {value.dtype} array"
        if isinstance(value, np.ndarray) and value.dtype.kind == "f"
        else f"a {value.dtype} array"
        if isinstance(value, np.ndarray)
        else f"a {type(value).__name__}"
    )
    raise InputTypeError(
        f"parameter {name} must be a writeable floating-point NumPy array (the step updates it "
        f"in place), got {got}; pass numpy.array(value, dtype=float)"
    )


def param_check(var: str, name: str) -> str:
    """The prologue line that rejects a parameter the step cannot update in place."""
    return (
        f"    if {var}.__class__ is not _ndarray or {var}.dtype.kind != 'f' "
        f"or not {var}.flags.writeable: _param_error({name!r}, {var})"
    )


def _is_view(code: str) -> bool:
    # the generator's views: transposes, broadcasts and plain renames (codegen._reuse_memory)
    return (
        code.endswith(".T") or code.startswith("numpy.broadcast_to") or bool(_NAMES.fullmatch(code))
    )


def place_updates(
    kept: list[tuple[str, str]],
    updates: list[tuple[str, str]],
    fresh: int,
    small: frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """``kept`` with ``p -= g`` for every ``(p, g)`` in ``updates``, each as early as it is safe.

    ``kept`` is the generator's ``(target, code)`` list, ``p`` an argument's name (``a3``) and
    ``g`` the name of the value to subtract. An update runs after ``g`` exists and after the
    last statement that reads ``p`` or a view of it (a later reader would see the new values);
    a ``g`` that is a view of a parameter is copied where it is made. When ``g`` is a product
    ``c * (x @ y)`` that nothing else reads, and neither factor is a view of another parameter,
    the product itself becomes the update, :func:`sub_product` (``g`` is never stored), placed
    after every other statement (after the parameter's last reader, and a large gemm evicts
    from the cache what statements after it would read again); not for the parameters in
    ``small`` (fewer than :data:`GEMM_FROM` entries), where
    the call would cost more than it saves. ``fresh`` is the first unused temporary number.
    """
    kept = list(kept)
    params = [p for p, _ in updates]
    defined = {t: i for i, (t, _) in enumerate(kept)}

    def aliases() -> dict[str, set[str]]:
        out = {p: {p} for p in params}
        for target, code in kept:
            if _is_view(code):
                for p in params:
                    if out[p] & set(_NAMES.findall(code)):
                        out[p].add(target)
        return out

    alias = aliases()
    copies = {}
    for _, g in updates:
        if not _TEMP.fullmatch(g) or any(g in s for s in alias.values()):
            copies[g] = f"t{fresh}"
            fresh += 1
    # copies first (each right after its source exists), so later indices are final
    for g, new in sorted(copies.items(), key=lambda item: -defined.get(item[0], -1)):
        kept.insert(defined.get(g, -1) + 1, (new, f"numpy.array({g})"))
    defined = {t: i for i, (t, _) in enumerate(kept)}
    alias = aliases()
    readers: dict[str, list[int]] = {}
    for i, (_, code) in enumerate(kept):
        for n in set(_NAMES.findall(code)):
            readers.setdefault(n, []).append(i)
    last_read = {
        p: max((i for n in alias[p] for i in readers.get(n, [])), default=-1) for p in params
    }
    moves: dict[int, list[tuple[str, str]]] = {}  # position -> update statements after it
    dropped = set()
    for p, given in updates:
        g = copies.get(given, given)
        d = defined.get(g, -1)
        m = _PRODUCT.match(kept[d][1]) if d >= 0 else None
        others = {n for q in params if q != p for n in alias[q]}
        if (
            m
            and p not in small
            and bool(m.group(1)) == bool(m.group(4))
            and sum(h == given for _, h in updates) == 1
            and readers.get(g) is None
            and not {m.group(2), m.group(3)} & others
        ):
            c = m.group(1) or "1.0"
            statement = (p, f"_sub_product({p}, {m.group(2)}, {m.group(3)}, {c})")
            dropped.add(d)
            # last: nothing reads the product, and a large gemm streams its operands through
            # the cache, evicting what the statements after it would read again
            moves.setdefault(len(kept) - 1, []).append(statement)
            continue
        statement = (p, f"numpy.subtract({p}, {g}, out={p})")
        moves.setdefault(max(d, last_read[p]), []).append(statement)
    out = [statement for statement in moves.get(-1, [])]
    for i, statement in enumerate(kept):
        if i not in dropped:
            out.append(statement)
        out += moves.get(i, [])
    return out
