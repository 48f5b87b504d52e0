"""The JAX target: a :class:`~symgrad.codegen.plan.Program` as ``jax.numpy`` code under ``jax.jit``.

Each statement of the program is one JAX statement, printed by SymPy's ``JaxPrinter`` (with the
shared overrides of ``printers.py``) over its arguments' names; single-use products meet in one
matrix product (``fuse.py``), with JAX versions of the fused operations below. The
function is wrapped in ``jax.jit``; called with tracers it is traced like any JAX code, so it
works inside the user's own ``jax.jit``, ``jax.vmap`` and ``jax.grad``, and on whatever devices
the arrays live on (sharded arrays keep their sharding; a batch mean over a sharded axis becomes
a cross-device reduction).

Dtypes follow JAX: float32 inputs give float32 outputs; float64 needs JAX's 64-bit mode, and a
float64 NumPy array given while it is off is refused with a :class:`~symgrad.errors.DtypeError`
(JAX would silently round it to float32).

>>> import sympy as sp
>>> import numpy as np
>>> from symgrad import lambdify
>>> x = sp.Symbol("x")
>>> f = lambdify(sp.sin(x) * x, [x], backend="jax")
>>> f(np.ones(3, np.float32)).dtype
dtype('float32')
"""

from __future__ import annotations

import functools
import hashlib
import linecache
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.numpy import JaxPrinter

from ..errors import ArgumentError, DtypeError, ShapeError, UnsupportedFunctionError, require
from ..inputs import describe
from . import runtime as rt
from .fuse import Fuser
from .pack import pack, statement_printer
from .plan import Program, describe_args, rectangular, walk
from .printers import ArrayFunctions, TargetPrinter, shared_templates
from .pyfloat import arg_names


def import_jax() -> Any:
    """The ``jax`` module, or a :class:`BackendUnavailableError` naming the extra to install."""
    # generated code names jax.numpy and jax.scipy.special fully qualified
    for module in ("jax.numpy", "jax.scipy.special"):
        require(module, "jax", "backend='jax'")
    return require("jax", "jax", "backend='jax'")


class JaxTargetPrinter(ArrayFunctions, TargetPrinter, JaxPrinter):
    """SymPy's JAX printer with the shared overrides and JAX's special functions.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> JaxTargetPrinter().doprint(sp.Max(x, 0) + sp.erf(x))
    '_tie_later(jax.numpy.maximum, 0, x) + jax.scipy.special.erf(x)'
    """

    _array = "jax.numpy"
    inf = "jax.numpy.inf"
    nan = "jax.numpy.nan"

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "strict": True, "order": "none"})

    def _module_format(self, fqn, register=True):
        # what SymPy would print from ``math`` has no traceable JAX form here
        if fqn.startswith("math."):
            raise UnsupportedFunctionError(
                fqn[5:],
                f"cannot compile {fqn[5:]} for JAX: it has no jax.numpy or jax.scipy "
                "translation; use backend='numpy', or replace the function",
            )
        return super()._module_format(fqn, register)

    def _print_sigmoid(self, expr):
        # the NumPy form (exp(-logaddexp(0, -x)): no overflow), through this printer's module
        return expr._numpycode(self)

    def _special(self, name: str, expr) -> str:
        return f"jax.scipy.special.{name}({self._print(expr.args[0])})"

    def _print_erf(self, expr):
        return self._special("erf", expr)

    def _print_erfc(self, expr):
        return self._special("erfc", expr)

    def _print_gamma(self, expr):
        return self._special("gamma", expr)  # signed (exp(gammaln) is |gamma|)

    def _loggamma(self, arg: str) -> str:
        return f"_loggamma({arg})"

    def _print_sign(self, expr):
        return f"_sign({self._print(expr.args[0])})"

    # ties give the later argument, as numpy.maximum/minimum (jax gives max(0, -0.0) = 0.0)
    _pair = "_tie_later({fn}, {a}, {b})"

    def _print_Mod(self, expr):
        return f"_mod({', '.join(self._print(a) for a in expr.args)})"


def emit(prog: Program, name: str, *, mean: bool = False) -> str:
    """The source of a function ``name`` computing ``prog`` with ``jax.numpy``.

    Every statement of the program is one JAX statement; single-use products meet in one
    ``_dot``/``_gather`` (``fuse.py``), i.e. one matrix product, which is what XLA runs fastest.
    Arguments are checked by the caller (:func:`build`), outside the traced code.

    Args:
        prog: the program.
        name: the function's name.
        mean: return each output's batch mean (``reduce="mean"``).

    >>> import sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> x = sp.Symbol("x")
    >>> print(emit(plan(sp.exp(x) + x, [x]), "f"))
    def f(_a0):
        # _a0: 'x'
        _dtype = _result_dtype(_a0)
        return _cast(_a0 + jax.numpy.exp(_a0), _dtype)
    <BLANKLINE>
    """
    params = [f"_a{i}" for i in range(len(prog.args))]
    lines = [f"def {name}({', '.join(params)}):"]
    for i, item in enumerate(prog.args):
        what = f"vector of {len(item)} symbols" if isinstance(item, list) else repr(item.name)
        lines.append(f"    # _a{i}: {what}")
    lines.append(f"    _dtype = _result_dtype({', '.join(params)})")
    printer = JaxTargetPrinter()
    elements = {
        f"_a{s[0]}_{s[1]}": (f"_a{s[0]}", s[1]) for s in prog.source if s is not None and s[1] >= 0
    }
    fuser = Fuser(printer, shared_templates(printer), elements)
    prog = pack(prog)
    text_of, kid, skip = statement_printer(prog, fuser, mean)

    slots = [f"_t{k}" for k in range(prog.n_slots)]
    body, kid = walk(prog, arg_names(prog), slots, text_of, kid, skip)

    def build(s: Any, top: bool) -> str:
        if isinstance(s, int):
            text = fuser.text(kid[prog.outs[s]])
            return f"_cast(_batch_mean({text}, 0), _dtype)" if mean else f"_cast({text}, _dtype)"
        if top:
            inner = ", ".join(build(item, False) for item in s)
            return f"({inner}{',' if len(s) == 1 else ''})"
        shape, flat = rectangular(s)
        at = [prog.outs[j] for j in flat]
        stacked = fuser.stacked(shape, [kid[a] for a in at], mean=mean, positions=at)
        return f"_cast({stacked}, _dtype)"

    ret = build(prog.spec, prog.top)
    # only the vector entries the statements name (fused ones are read as slices)
    lines += [f"    {e} = {v}[{k}]" for e, (v, k) in elements.items() if e in fuser.used]
    lines += [f"    {ln}" if t is None else f"    {t} = {ln}" for t, ln in body]
    lines += [f"    {ln}" for ln in fuser.lines]
    lines.append(f"    return {ret}")
    return "\n".join([*lines, *fuser.constants]) + "\n"


def build(prog: Program, name: str, mean: bool) -> tuple[Callable, str]:
    """A jitted JAX function of ``prog`` (behind argument checks) and its source."""
    jax = import_jax()
    source = emit(prog, name, mean=mean)
    filename = f"<symgrad-jax:{name}:{hashlib.sha1(source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {
        "jax": jax,
        "_result_dtype": _result_dtype,
        "_cast": _cast,
        **runtime(),
    }
    exec(compile(source, filename, "exec"), namespace)  # generated code only, never user text
    jitted = jax.jit(namespace[name])
    names = [str(a) if isinstance(a, sp.Symbol) else f"a vector of {len(a)}" for a in prog.args]
    sizes = [None if isinstance(a, sp.Symbol) else len(a) for a in prog.args]

    def call(*values: Any) -> Any:
        if len(values) != len(sizes):
            raise ArgumentError(
                f"compiled function takes {len(sizes)} argument(s) ({describe_args(prog.args)})"
                f", got {len(values)}"
            )
        values = [_coerce(v, i, names, sizes[i]) for i, v in enumerate(values)]
        batch = [np.shape(v)[0 if n is None else 1 :] for v, n in zip(values, sizes, strict=True)]
        try:
            np.broadcast_shapes(*batch)
        except ValueError:
            shown = ", ".join(str(np.shape(v)) for v in values)
            raise ShapeError(
                f"argument shapes do not broadcast together ({shown}); batch axes come after a "
                "vector argument's first axis"
            ) from None
        return jitted(*values)

    call.jitted = jitted  # type: ignore[attr-defined]
    return call, source


# ---------------------------------------------------------------------------------------------
# what the generated code and its wrapper call


def _coerce(value: Any, position: int, names: Sequence[str], size: int | None) -> Any:
    """An argument as a JAX-ready float value; a float64 array needs JAX's 64-bit mode."""
    import jax
    import jax.numpy as jnp

    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise ArgumentError(
            f"argument {position} ({names[position]}) must be a number or an array of numbers, "
            f"got {describe(value)}"
        )
    if isinstance(value, (int, float)) and size is None:
        return float(value)  # a weakly typed scalar: it takes the other arguments' dtype
    if not isinstance(value, jax.Array):
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise ArgumentError(
                f"argument {position} ({names[position]}) is not a numeric array: {exc}"
            ) from exc
        if value.dtype.kind not in "iufc":
            raise ArgumentError(
                f"argument {position} ({names[position]}) must be numeric, got an array of "
                f"dtype {value.dtype}"
            )
        wide = value.dtype in (np.float64, np.complex128)
        if wide and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
            raise DtypeError(
                f"argument {position} ({names[position]}) is {value.dtype}, but JAX computes "
                "in 32 bits unless its 64-bit mode is on: call "
                "jax.config.update('jax_enable_x64', True) at start-up for float64, or pass "
                "float32 arrays (x.astype(numpy.float32))"
            )
    if value.dtype.kind in "iub":
        value = jnp.asarray(value, dtype=jnp.result_type(float))
    if size is not None and (value.ndim == 0 or value.shape[0] != size):
        raise ShapeError(
            f"argument {position} ({names[position]}) must have {size} entries along its first "
            f"axis (one per symbol), got shape {tuple(value.shape)}"
        )
    return value


def _result_dtype(*values: Any) -> Any:
    # JAX's promotion of the arguments (Python floats are weak: they follow the arrays)
    import jax.numpy as jnp

    return jnp.result_type(*values, float)


def _cast(x: Any, dtype: Any) -> Any:
    import jax.numpy as jnp

    return jnp.asarray(x, dtype=dtype)


def _loggamma(x: Any) -> Any:
    # SymPy's loggamma as the NumPy target computes it: the principal log of gamma, so nan left
    # of 0 off the poles (log of a negative gamma) and at -inf; gammaln alone is log|gamma|
    jnp = import_jax().numpy
    off_domain = (x < 0) & ((x != jnp.floor(x)) | jnp.isinf(x))
    return jnp.where(off_domain, jnp.nan, import_jax().scipy.special.gammaln(x))


def _sign(x: Any) -> Any:
    # numpy.sign(-0.0) is 0.0, jax.numpy.sign(-0.0) is -0.0 (and XLA folds "+ 0.0" away)
    s = import_jax().numpy.sign(x)
    return import_jax().numpy.where(s == 0, 0.0, s)


def _tie_later(fn: Callable, a: Any, b: Any) -> Any:
    return import_jax().numpy.where(a == b, b, fn(a, b))


def _mod(a: Any, b: Any) -> Any:
    # numpy.mod: a zero remainder has the divisor's sign (jax.numpy.mod gives the dividend's,
    # so atan2(Mod(-2, 0.5), -1) would be -pi where NumPy gives pi)
    jnp = import_jax().numpy
    r = jnp.mod(a, b)
    return jnp.where(r == 0, jnp.copysign(jnp.zeros_like(r), b), r)


#: math/SymPy names -> jax.scipy.special names with the NumPy target's answers
_SPECIAL = {"erf": "erf", "erfc": "erfc", "gamma": "gamma", "lgamma": "gammaln"}


class JaxMath:
    """The JAX counterpart of the NumPy targets' ``_vmath`` (functions NumPy lacks).

    Generated NumPy source names ``_vmath.erf``, ``_vmath.gamma``, ...; in a JAX namespace
    these are JAX's functions with the NumPy target's answers (signed ``gamma``, ``loggamma``
    nan off its real domain).

    >>> import numpy as np
    >>> float(JaxMath().gamma(np.float32(-0.5)))
    -3.5449...
    """

    def __getattr__(self, name: str) -> Any:
        if name == "loggamma":
            return _loggamma
        if name in _SPECIAL:
            return getattr(import_jax().scipy.special, _SPECIAL[name])
        raise UnsupportedFunctionError(
            name,
            f"cannot compile {name} for JAX: it has no jax.numpy or jax.scipy translation; "
            "use backend='numpy', or replace the function",
        )


def runtime() -> dict[str, Any]:
    """What generated JAX code calls, by name: codegen.runtime's fused operations on jax.numpy.

    >>> sorted(runtime())[:3]
    ['_batch_mean', '_cat', '_dot']
    """
    jnp = import_jax().numpy
    fused = (
        rt._rows, rt._stack, rt._dot, rt._gather, rt._gather_mean, rt._batch_mean, rt._last,
        rt._first, rt._join, rt._total, rt._cat, rt._mm, rt._scaled,
    )  # fmt: skip
    return {
        **{f.__name__: functools.partial(f, xp=jnp) for f in fused},
        "_indices": rt._indices,
        "_loggamma": _loggamma,
        "_mod": _mod,
        "_tie_later": _tie_later,
        "_sign": _sign,
    }
