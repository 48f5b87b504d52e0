"""Compiling expressions into fast, vectorised NumPy functions.

:func:`lambdify` linearises all outputs into one DAG and computes **each unique node once**,
printed by SymPy's own ``NumPyPrinter`` with the node's arguments replaced by the temporaries
that hold them. A node read by several others (shared between a value and its gradient, or
between the gradients of many parameters) gets a statement; a node read once is printed inside
its reader, up to a bounded depth (Python's ``compile()`` pays per statement). Temporaries are
reused once dead, so a large batch keeps only the live arrays. Compile time grows linearly with
the graph, unlike a tree walk. Argument names in the source are generated, so no user
symbol name can break it; ``.source`` shows the code and tracebacks point into it.

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> f = lambdify([x * y + sp.sin(x), [y + sp.cos(x), x]], [x, y])
>>> value, gradient = f(0.0, 2.0)
>>> float(value), gradient.tolist()
(0.0, [3.0, 0.0])
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import itertools
import keyword
import linecache
import math
import os
import threading
import warnings
import weakref
from typing import Any

import numpy as np
import sympy as sp

from ..autodiff import _sweep
from ..errors import BackendUnavailableError, InputTypeError, MissingSymbolError, OptionError
from ..graph import Linear, free_symbols, linearise, paused_gc, split_wide_linear
from ..inputs import as_expr, as_symbols, check_choice, describe
from . import runtime as _runtime
from .numpy import calls_lazy_float_path, emit, float_path_source
from .pack import pack
from .plan import WIDE, Program, describe_args, plan
from .pyfloat import EAGER_LIMIT, emit_body
from .tape import tape

__all__ = ["BACKENDS", "CompiledFunction", "lambdify", "value_and_grad"]

#: ``"numpy"``: vectorised NumPy statements; ``"c"``: generated C built by the system compiler
#: (raises BackendUnavailableError without one); ``"auto"``: ``"c"`` when a compiler is
#: available and the program is small enough to optimise or is a network's packed layers
#: (:func:`~symgrad.codegen.c.c_pays`),
#: else ``"numpy"`` (with a RuntimeWarning when there is no compiler); ``"jax"``: jax.numpy
#: under jax.jit.
BACKENDS = ("numpy", "c", "auto", "jax")

#: The names a generated module defines or reads: a function may not be called any of these.
_NAMESPACE: dict[str, Any] = {
    "numpy": np,
    "math": math,
    **_runtime.HELPERS,
    "_vmath": _runtime._VectorMath(),
    "_ndarray": np.ndarray,
    "_f64": np.dtype(np.float64),
    "_array": np.array,
    "_MISSING": _runtime._MISSING,
}
_counter = itertools.count()
#: what every compiled function records besides its source and argument specification
_INFO = frozenset({"name", "backend", "reduce", "float_outputs"})


def check_name(name: object) -> str:
    """``name`` if it is a safe name for a generated function, else an :class:`OptionError`.

    A safe name is a Python identifier that is not a keyword, not a builtin, does not start
    with an underscore (generated code's own names do) and is none of the modules generated
    code uses.

    >>> check_name("loss_and_grad")
    'loss_and_grad'
    >>> check_name("numpy")
    Traceback (most recent call last):
    ...
    symgrad.errors.OptionError: name='numpy' collides with a name the generated module uses ...
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise OptionError(
            f"name must be a Python identifier that is not a keyword, got {name!r} "
            "(e.g. name='loss_and_grad')"
        )
    if name.startswith("_") or name in _NAMESPACE or hasattr(builtins, name):
        raise OptionError(
            f"name={name!r} collides with a name the generated module uses (names starting "
            "with '_', numpy, math and Python's builtins are taken); choose another, e.g. "
            f"name='{name.strip('_') or 'fn'}_fn'"
        )
    return name


class CompiledFunction(functools.partial):
    """A compiled function made by :func:`lambdify`.

    Calling it runs the generated function directly (no Python-level wrapper: a call on
    Python floats costs about what a hand-written ``math`` function costs).

    Attributes:
        source: the generated Python source (the function and its module constants).
        args: the argument specification (a symbol or a list of symbols per argument).
        outputs: the output specification as given (None after unpickling).
        name: the generated function's name.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> f = lambdify(x**2, [x])
    >>> f(3.0)
    9.0
    >>> print(f.source.splitlines()[0])
    def symgrad_fn(_a0=_MISSING, *_extra):
    """

    def __new__(cls, fn, source: str, args: list, outputs: Any, **info: Any):
        if (
            not (callable(fn) and isinstance(source, str) and isinstance(args, (list, tuple)))
            or set(info) != _INFO
        ):
            raise InputTypeError(
                "CompiledFunction objects are made by symgrad.lambdify(outputs, args) or "
                "symgrad.value_and_grad(expr, wrt), not by calling the class; got "
                f"fn={describe(fn)}, source={describe(source)}, args={describe(args)}"
            )
        self = super().__new__(cls, fn)
        self.__dict__.update(source=source, _spec=args, outputs=outputs, **info)
        return self

    @property
    def _fn(self) -> Any:
        # the generated function itself (its globals are the generated module's namespace);
        # the C target's float entry (a builtin, see c_float.py) passes calls on to it
        return self.__dict__.get("_python", self.func)

    @property
    def args(self) -> list:  # shadows functools.partial.args (the bound arguments: none)
        """The argument specification."""
        return self._spec

    def __repr__(self) -> str:
        return f"<CompiledFunction {self.name}({describe_args(self._spec)})>"

    def __reduce__(self):
        # by source: the generated module is rebuilt in the receiving process (a native kernel
        # is rebuilt from the outputs: it lives in a shared library)
        if self.backend in ("c", "jax"):
            spec = (self.outputs, self._spec, self.backend, self.reduce, self.name)
            return _recompile, (*spec, self.float_outputs)
        return _from_source, (self.source, self.name, self._spec, self.reduce)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def export(self, path: Any, target: str = "numpy") -> None:
        """Write a self-contained Python module computing this function to ``path``.

        The module imports only NumPy (``target="numpy"``: every input kind, IEEE answers
        as here) or only ``math`` (``target="python"``: Python floats and lists of them; it
        raises ``ArithmeticError``/``ValueError`` where ``math`` does, e.g. at ``1/0.0``). Its
        docstring holds the formulas; the function keeps this one's name. The file is
        written atomically (a temporary file renamed over ``path``).

        Args:
            path: the file to write (created or replaced).
            target: ``"numpy"`` or ``"python"``.

        Raises:
            OptionError: an unknown target.
            UnsupportedFunctionError: ``"python"`` for a function ``math`` cannot compute.

        >>> import sympy as sp, tempfile, pathlib
        >>> x = sp.Symbol("x")
        >>> with tempfile.TemporaryDirectory() as d:
        ...     lambdify(sp.exp(x), [x], name="f").export(pathlib.Path(d) / "f.py")
        ...     print(sorted(p.name for p in pathlib.Path(d).iterdir()))
        ['f.py']
        """
        from ..files import atomic_write
        from .export import module_text

        atomic_write(path, module_text(self, target))


def _load(source: str, name: str, kernel: Any = None) -> Any:
    # compile generated source (never user text); tracebacks show it through linecache while
    # the function lives
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<symgrad:{name}:{digest}:{next(_counter)}>"
    namespace = dict(_NAMESPACE, _kernel=kernel)
    exec(compile(source, filename, "exec"), namespace)  # generated code only, never user text
    fn = namespace[name]
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return fn, filename


class _LazyFloatPath:
    """A large program's Python-float path, built on its first call (then it replaces itself).

    Built once, under a lock: a thread whose function looked ``_float_path`` up before the
    replacement still reaches this object, which then answers with the built path (it must
    not rebuild, nor put the unbuilt stub back in the namespace).
    """

    def __init__(self, prog: Program, stacked: str, namespace: dict) -> None:
        self._prog, self._stacked, self._namespace = prog, stacked, namespace
        self._fn: Any = None
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> Any:
        fn = self._fn
        if fn is None:
            with self._lock:
                fn = self._fn
                if fn is None:
                    fn = self._fn = self._build()
        return fn(*args)

    def _build(self) -> Any:
        fn = _runtime._float_path  # math cannot print it: the NumPy statements answer
        text = float_path_source(self._prog, self._stacked)
        if text is not None:
            fn, filename = _load(text, "_float_path")
            weakref.finalize(fn, linecache.cache.pop, filename, None)
        self._namespace["_float_path"] = fn
        self._prog = None  # the program is no longer needed
        return fn


def _finish(fn: Any, filename: str, source: str, args: list, outputs: Any, **info: Any):
    out = CompiledFunction(fn, source, args, outputs, **info)
    weakref.finalize(out, linecache.cache.pop, filename, None)
    return out


def _from_source(source: str, name: str, args: list, reduce: str | None) -> CompiledFunction:
    fn, filename = _load(source, name)
    info = {"name": name, "backend": "numpy", "reduce": reduce, "float_outputs": "array"}
    return _finish(fn, filename, source, args, None, **info)


def _recompile(outputs, args, backend, reduce, name, float_outputs) -> CompiledFunction:
    return _lambdify(outputs, args, backend, reduce, name, float_outputs=float_outputs)


@paused_gc()
def lambdify(
    outputs: Any,
    args: Any,
    backend: str = "numpy",
    *,
    reduce: str | None = None,
    name: str = "symgrad_fn",
    float_outputs: str = "array",
    timeout: float | None = None,
    cache_dir: str | os.PathLike | None = None,
):
    """Compile expressions into one vectorised NumPy function.

    Note the order: outputs first, then arguments (as in ``value_and_grad(expr, wrt, args)``),
    the reverse of ``sympy.lambdify(args, expr)``; a call in SymPy's order is recognised and
    refused with a hint.

    Args:
        outputs: an expression, or a (nested) list/tuple of expressions, or a SymPy matrix. A
            top-level list gives a tuple of results; a nested list gives a NumPy array stacked
            along a new first axis (a matrix gives a 2-D array), batch axes last.
        args: the arguments, in order: each a symbol (passed as a scalar or an array) or a
            sequence of symbols (passed as one array whose first axis indexes the symbols, e.g.
            a parameter vector of shape ``(n,)`` or a batch of shape ``(n, batch)``).
        backend: ``"numpy"`` (default), ``"c"`` (generated C compiled by the system compiler,
            cached; needs a C compiler and real inputs, raises BackendUnavailableError
            without one), ``"auto"`` (``"c"`` when available and the program is small
            enough to be optimised within the compile budget, where C is faster; else
            ``"numpy"``, with a RuntimeWarning when there is no compiler) or ``"jax"``
            (jax.numpy under ``jax.jit``: dtypes kept, traceable inside the caller's
            ``jax.jit``/``vmap``/``grad``; needs the ``jax`` extra). For NumPy
            and C, calls whose inputs are all Python floats (and 1-D parameter vectors) run a
            pure-Python ``math`` fast path when the function has at most
            :data:`~symgrad.codegen.pyfloat.SCALAR_PATH_LIMIT` operations; where ``math``
            would raise, the NumPy statements give IEEE's answer (``1/0.0`` is ``inf``
            with a RuntimeWarning, as for arrays).
        reduce: ``None`` (default) returns every output for every sample; ``"mean"`` returns
            each output averaged over the batch (the mean loss and mean gradient of a
            training step in one call; the C backend accumulates the sums in its loop and
            never writes per-sample results). A value without batch axes is its own mean.
        name: the name of the generated function (shown in tracebacks): an identifier that
            does not start with ``_`` and is not a builtin, ``numpy`` or ``math``.
        float_outputs: what a call on Python floats returns for stacked outputs (a gradient):
            ``"array"`` (default: a NumPy array, as for every other input) or ``"tuple"``
            (nested tuples of Python floats, like ``sympy.lambdify(modules="math")``'s lists:
            building a NumPy array costs more than the arithmetic of a small function).
        timeout: for ``backend="c"``/``"auto"``: seconds each C compiler process may take
            (default 600, or ``$SYMGRAD_CC_TIMEOUT``); a compiler past it is killed and a
            ``CompilerError`` raised.
        cache_dir: for ``backend="c"``/``"auto"``: the folder of compiled libraries (default:
            ``symgrad/c`` in the user's cache folder); it must belong to the user alone.

    Returns:
        A :class:`CompiledFunction`. Every argument accepts a number or an array; arrays
        broadcast, so one call evaluates a whole batch.

    Raises:
        MissingSymbolError: an output uses a symbol that is not in ``args``.
        UnsupportedFunctionError: an output uses a function that has no NumPy translation.
        BackendUnavailableError: an unknown backend was asked for, or ``"c"`` cannot be built.
        InputTypeError: an argument is not a symbol (with a hint for SymPy's argument order).
        OptionError: an unknown ``reduce`` or an unsafe ``name``.

    >>> import numpy as np
    >>> import sympy as sp
    >>> x, w0, w1 = sp.symbols("x w0 w1")
    >>> f = lambdify(sp.tanh(w0 * x + w1), [x, [w0, w1]])
    >>> f(np.array([0.0, 1.0]), [2.0, 0.5]).round(4)
    array([0.4621, 0.9866])
    >>> mean = lambdify(sp.tanh(w0 * x + w1), [x, [w0, w1]], reduce="mean")
    >>> round(float(mean(np.array([0.0, 1.0]), [2.0, 0.5])), 4)
    0.7244
    """
    c_options = _c_options(backend, timeout, cache_dir)
    return _lambdify(
        outputs, args, backend, reduce, name, float_outputs=float_outputs, c_options=c_options
    )


def _c_options(backend: object, timeout: object, cache_dir: object) -> dict:
    # the C compiler's options, checked: given with another backend they would do nothing
    options = {}
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise OptionError(f"timeout must be a positive number of seconds, got {timeout!r}")
        options["timeout"] = float(timeout)
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, os.PathLike)):
            raise OptionError(f"cache_dir must be a path, got {type(cache_dir).__name__}")
        options["cache_dir"] = cache_dir
    if options and backend not in ("c", "auto"):
        raise OptionError(
            f"{' and '.join(options)} apply to the C compiler: use them with backend='c' or "
            f"'auto', not {backend!r}"
        )
    return options


def _lambdify(
    outputs: Any,
    args: Any,
    backend: str,
    reduce: str | None,
    name: str,
    base: Linear | None = None,
    float_outputs: str = "array",
    c_options: dict | None = None,
    given: Any = None,
    float_path: bool = True,
) -> CompiledFunction:
    # lambdify; ``base``: the linearised DAG the outputs were derived from (not walked again);
    # ``given``: the outputs as the caller gave them, when ``outputs`` is an equal rewrite
    backend = check_choice(backend, BACKENDS, "backend", BackendUnavailableError)
    requested = backend
    reduce = check_choice(reduce, (None, "mean"), "reduce")
    check_name(name)
    float_outputs = check_choice(float_outputs, ("array", "tuple"), "float_outputs")
    if backend in ("auto", "c"):
        # the native target (ctypes, the compiler driver) is imported only when asked for: it
        # is a good part of `import symgrad`, which every `symgrad` command pays
        from . import c as native
    if backend == "auto":
        backend = "c" if native.c_available() else "numpy"
        if backend == "numpy":
            warnings.warn(
                "backend='auto': no C compiler found, using the NumPy backend (install gcc "
                "or clang for the 'c' backend)",
                RuntimeWarning,
                stacklevel=2,
            )
    prog = plan(outputs, args, base)
    c_prog = prog
    if backend == "c" and requested == "auto" and not native.c_pays(prog.n_operations):
        c_prog = pack(prog)  # a network's layers: the C kernel is loops, small at any width
        if not native.c_pays(prog.n_operations, packed=bool(c_prog.packs)):
            backend = "numpy"  # too large to optimise within the compile budget: NumPy is faster
    if backend == "jax":  # the JAX target: jitted, traceable by the caller's jit/vmap/grad
        from .jax import build as build_jax

        fn, source = build_jax(prog, name, reduce == "mean")
        info = {"name": name, "backend": backend, "reduce": reduce, "float_outputs": "array"}
        return CompiledFunction(fn, source, prog.args, given or outputs, **info)
    kernel = None
    if backend == "c":
        kernel = native.build_c_kernel(
            prog.args,
            prog.leaves,
            f"{name}_kernel",
            mean=reduce == "mean",
            program=c_prog,
            **(c_options or {}),
        )
    mean = reduce == "mean"
    source = emit(
        prog, name, mean=mean, kernel=kernel is not None, float_outputs=float_outputs, lazy=True,
        float_path=float_path, trusted=not float_path,
    )  # fmt: skip
    fn, filename = _load(source, name, kernel)
    if float_path and calls_lazy_float_path(prog):  # built on the first call on Python floats
        fn.__globals__["_float_path"] = _LazyFloatPath(prog, float_outputs, fn.__globals__)
    info = {"name": name, "backend": backend, "reduce": reduce, "float_outputs": float_outputs}
    entry = None
    small = float_path and prog.n_operations <= EAGER_LIMIT
    if kernel is not None and small and emit_body(prog, stacked=float_outputs) is not None:
        from .c_float import native_entry

        options = {"timeout": None, "cache_dir": None, **(c_options or {})}
        entry = native_entry(prog, float_outputs, fn, **options)
    out = _finish(entry or fn, filename, source, prog.args, given or outputs, **info)
    if entry is not None:
        out.__dict__["_python"] = fn
    return out


def program(outputs: Any, args: Any) -> Program:
    """The :class:`~symgrad.codegen.plan.Program` every target prints (see ``plan.py``).

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> program(sp.sin(x) ** 2, [x]).n_operations
    2
    """
    return plan(outputs, args)


@paused_gc()
def value_and_grad(
    expr: Any,
    wrt: Any,
    args: Any = None,
    *,
    backend: str = "numpy",
    reduce: str | None = None,
    float_outputs: str = "array",
    timeout: float | None = None,
    cache_dir: str | os.PathLike | None = None,
):
    """One compiled function returning ``(value, gradient)``, sharing their common work.

    The gradient is derived by one reverse sweep (in its raw, fully shared form) and compiled
    together with the value, so each shared subexpression is computed once.

    Args:
        expr: a scalar expression.
        wrt: a symbol, or a sequence of symbols.
        args: the compiled function's arguments (see :func:`lambdify`). Default: ``wrt``
            itself, as one scalar argument or as one vector argument.
        backend: see :func:`lambdify`.
        reduce: see :func:`lambdify`; ``"mean"`` gives the batch-mean value and gradient.
        float_outputs: see :func:`lambdify` (``"tuple"``: the gradient of a call on Python
            floats as a tuple of floats).
        timeout, cache_dir: the C compiler's options, see :func:`lambdify`.

    Returns:
        A :class:`CompiledFunction` returning ``(value, gradient)``; the gradient is a scalar
        for a single symbol, else an array of shape ``(len(wrt), *batch)``.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> f = value_and_grad(x**2 * y, [x, y])
    >>> value, g = f([3.0, 2.0])
    >>> value, g.tolist()
    (18.0, [12.0, 9.0])
    """
    c_options = _c_options(backend, timeout, cache_dir)  # before the sweep: fail fast
    e = as_expr(expr)
    syms, single = as_symbols(wrt, e)
    dag = linearise([e])
    lifts = isinstance(backend, str) and backend == "numpy" and isinstance(reduce, str)
    if lifts and reduce == "mean" and not single and isinstance(args, (list, tuple)):
        # a network's dense layers: the mean gradient as matrix products (lift.py); the
        # scalar program below is compiled only for calls the layers cannot answer
        from .lift import lift

        float_outputs = check_choice(float_outputs, ("array", "tuple"), "float_outputs")
        spec = [list(a) if isinstance(a, (list, tuple)) else a for a in args]
        lifted = lift(
            e, dag, syms, spec, "symgrad_fn", float_outputs,
            lambda: _scalar_value_and_grad(e, syms, single, dag, args, backend, reduce,
                                           float_outputs, c_options),
            (_value_and_grad_again, (e, syms, spec, float_outputs)),
        )  # fmt: skip
        if lifted is not None:
            return lifted
    return _scalar_value_and_grad(
        e, syms, single, dag, args, backend, reduce, float_outputs, c_options
    )


def _value_and_grad_again(expr, wrt, args, float_outputs):
    # unpickling a function compiled by layers: compiled again in this process
    return value_and_grad(expr, wrt, args, reduce="mean", float_outputs=float_outputs)


def _array_value_and_grad(expr: sp.Expr, wrt: Any, args: list) -> Any:
    # value_and_grad for calls on arrays only, as a tape (tape.py; compiled when it cannot be
    # one): the pieces lift.py calls
    e = as_expr(expr)
    single = isinstance(wrt, sp.Symbol)
    syms = [wrt] if single else list(wrt)
    outputs, given, dag = _gradient_outputs(e, syms, single, linearise([e]), args)
    out = tape(plan(outputs, args, dag))
    if out is not None:
        return out
    return _lambdify(outputs, args, "numpy", None, "symgrad_fn", dag, given=given, float_path=False)


def _gradient_outputs(e, syms, single, dag, args):
    # ``[value, gradient]`` by one reverse sweep over the scalar DAG, the outputs as given, and
    # the DAG they were derived over
    split = e
    if not any(n.is_Mul and len(a) > WIDE for n, a in zip(dag.order, dag.args, strict=True)):
        # wide sums split before the sweep, as the planner would split them after it: the
        # gradient is the same (a part of a sum passes its adjoint on), and the planner,
        # finding nothing wide in the forward graph, does not rebuild all the DAG above it.
        # (The partials of a wide product differ once it is split: it is left to the planner.)
        (split,), dag = split_wide_linear([e], dag, WIDE)
    (raw,), dag = _sweep([split], syms, dag=dag)
    gradient = [raw.get(s, sp.S.Zero) for s in syms]
    if args is None:
        extra = [s for s in free_symbols([e]) if s not in set(syms)]
        if extra:
            raise MissingSymbolError(
                f"the expression also depends on {', '.join(map(str, extra[:10]))}; pass "
                "args=[...] listing every symbol the compiled function should take"
            )
    outputs = [split, gradient[0] if single else gradient]
    return outputs, [e, outputs[1]], dag


def _scalar_value_and_grad(e, syms, single, dag, args, backend, reduce, float_outputs, c_options):
    # value_and_grad by one reverse sweep over the scalar DAG, compiled as one program
    outputs, given, dag = _gradient_outputs(e, syms, single, dag, args)
    if args is None:
        args = [syms[0] if single else syms]
    return _lambdify(
        outputs, args, backend, reduce, "symgrad_fn", dag, float_outputs, c_options=c_options,
        given=given,
    )  # fmt: skip
