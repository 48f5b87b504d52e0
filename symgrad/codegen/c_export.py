"""Exporting a kernel as a portable C99 ``.c``/``.h`` pair that any C program can call.

The exported source is the C target's own kernel (the same statements, scalar loop, no
``-march`` or vector extensions) in one file, plus an entry function with a plain signature::

    int NAME(int64_t n, const double *const *inputs, const int64_t *row_stride,
             const int64_t *sample_stride, double *out);

``inputs[j]`` points at argument ``j``'s data: for a symbol, its value for each sample; for a
vector of symbols, entry ``r`` of sample ``i`` at ``inputs[j][r * row_stride[j] + i *
sample_stride[j]]`` (``sample_stride[j] = 0``: the same value for every sample). ``out`` receives
output ``k`` of sample ``i`` at ``out[k * n + i]`` (or, for a kernel exported with ``mean=True``,
the batch mean of output ``k`` at ``out[k]``). It returns 0, or 1 when it could not allocate its
scratch space. ``cc -shared -fPIC -O2 f.c -lm`` builds it; the header documents the arguments
and outputs by name.

>>> import pathlib, tempfile
>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> with tempfile.TemporaryDirectory() as tmp:
...     c, h = export_c(pathlib.Path(tmp) / "f.c", [x, [y]], [x * y + 1], name="f")
...     print(c.name, h.name, "int f(int64_t n" in h.read_text())
f.c f.h True
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import sympy as sp

from ..errors import InputTypeError
from .c_printer import PRELUDE
from .c_source import generate

__all__ = ["C_RESERVED", "check_c_name", "export_c"]

_RESERVED_TEXT = """auto break case char const continue default do double else enum extern float for
goto if inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while main malloc free calloc exit abs fabs floor ceil fmod copysign
sqrt cbrt pow exp exp2 expm1 log log2 log10 log1p sin cos tan asin acos atan atan2 sinh cosh tanh
asinh acosh atanh erf erfc tgamma lgamma hypot fmax fmin round trunc NAN INFINITY"""
#: Names an exported function may not take: C keywords and the C library functions the
#: generated code calls or declares.
C_RESERVED = frozenset(_RESERVED_TEXT.split())


def check_c_name(name: str) -> str:
    """``name`` if it is safe as a C function name in generated code, else a typed error.

    >>> check_c_name("loss_and_grad")
    'loss_and_grad'
    """
    if (
        not isinstance(name, str)
        or not name.isidentifier()
        or not name.isascii()
        or name in C_RESERVED
        or name.startswith(("sg_", "_"))
    ):
        raise InputTypeError(
            f"name must be an ASCII C identifier that is not a C keyword or C library function "
            f"and does not start with '_' or 'sg_', got {name!r}; e.g. 'loss_and_grad'"
        )
    return name


def _comment(text: str) -> str:
    # the one place text enters a C comment: no comment terminator, one line
    return " ".join(text.replace("*/", "* /").split())


def export_c(
    path: str | os.PathLike,
    arg_spec: Sequence,
    outputs: Sequence[sp.Expr],
    *,
    name: str = "symgrad_fn",
    mean: bool = False,
) -> tuple[Path, Path]:
    """Write the kernel for ``outputs`` as ``path`` (C99 source) and its header beside it.

    Args:
        path: the ``.c`` file to write; the header is the same path with suffix ``.h``. Both
            are written through temporary files and renamed into place.
        arg_spec: the arguments, as for :func:`symgrad.codegen.c.build_c_kernel`.
        outputs: scalar real expressions over the argument symbols.
        name: the C function's name.
        mean: the function returns each output's batch mean.

    Returns:
        The paths of the source and the header.

    Raises:
        InputTypeError: ``name`` is not a safe C identifier, or ``path`` does not end in ``.c``.
        UnsupportedFunctionError: an output uses a function with no C translation.

    >>> import pathlib, tempfile
    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     c, h = export_c(pathlib.Path(tmp) / "sq.c", [x], [x**2], name="sq")
    ...     print("x**2" in h.read_text())
    True
    """
    check_c_name(name)
    path = Path(path)
    if path.suffix != ".c":
        raise InputTypeError(f"the exported source must end in '.c', got {str(path)!r}")
    arg_spec = [a if isinstance(a, sp.Symbol) else list(a) for a in arg_spec]
    outputs = list(outputs)
    program = generate(arg_spec, outputs, f"{name}_kernel", mean, simd=False)
    header = _header(path.with_suffix(".h").name, name, arg_spec, outputs, mean)
    body = [f'#include "{path.with_suffix(".h").name}"', PRELUDE]
    body += [text.replace(PRELUDE, "", 1) for text, _, _ in reversed(program.units)]
    nargs = len(arg_spec)
    body += [
        _signature(name),
        "{",
        f"    int64_t meta[{3 * max(nargs, 1)}];",
        f"    for (int j = 0; j < {nargs}; ++j) {{",
        "        meta[j] = (int64_t)(intptr_t)inputs[j];",
        f"        meta[{nargs} + j] = row_stride[j];",
        f"        meta[{2 * nargs} + j] = sample_stride[j];",
        "    }",
        f"    return {name}_kernel(n, meta, out);",
        "}",
        "",
    ]
    source = "\n".join(body)
    _write(path.with_suffix(".h"), header)
    _write(path, source)
    return path, path.with_suffix(".h")


def _signature(name: str) -> str:
    return (
        f"int {name}(int64_t n, const double *const *inputs, const int64_t *row_stride,\n"
        "        const int64_t *sample_stride, double *out)"
    )


def _header(filename: str, name: str, arg_spec: list, outputs: list, mean: bool) -> str:
    guard = "SYMGRAD_" + "".join(c if c.isalnum() else "_" for c in filename.upper())
    lines = [f"/* {_comment(filename)}: generated by symgrad. */", f"#ifndef {guard}"]
    lines += [f"#define {guard}", "#include <stdint.h>", "", "/*"]
    lines.append(f" * {name}: {len(outputs)} output(s) for each of n samples.")
    lines.append(" *")
    lines.append(" * Arguments (inputs[j]):")
    for j, a in enumerate(arg_spec):
        if isinstance(a, sp.Symbol):
            lines.append(f" *   {j}: {_comment(a.name)}")
        else:
            shown = ", ".join(s.name for s in a[:8]) + (", ..." if len(a) > 8 else "")
            lines.append(f" *   {j}: a vector of {len(a)} symbols [{_comment(shown)}]")
    lines += [
        " * Entry r of argument j for sample i is inputs[j][r * row_stride[j] + i *",
        " * sample_stride[j]] (r = 0 for a single symbol; sample_stride[j] = 0: one value for",
        " * every sample).",
        " *",
        " * Outputs:",
    ]
    for k, o in enumerate(outputs):
        text = sp.sstr(o)
        text = text if len(text) <= 70 else text[:67] + "..."
        lines.append(f" *   {k}: {_comment(text)}")
    if mean:
        lines.append(" * out[k] receives the mean of output k over the n samples (n >= 1).")
    else:
        lines.append(" * out[k * n + i] receives output k of sample i.")
    lines += [
        " *",
        " * Returns 0, or 1 when the scratch space could not be allocated.",
        " * Build: cc -shared -fPIC -O2 -o lib.so this.c -lm (C99 or later).",
        " */",
        _signature(name) + ";",
        "",
        "#endif",
        "",
    ]
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
