"""A small array program run node by node, without compiling its source.

symgrad's own pieces of a network lifted to matrix products (``lift.py``: the loss over the
outputs and each layer's activation, each with its derivative) are small programs called on
arrays only. Printing and compiling their generated source costs about 20 us per operation,
most of a lifted network's fixed setup. A :class:`Tape` runs the same program from a list of
operations instead: each node is printed by the NumPy target's printer over placeholders (the
text its statement would hold), only the distinct texts are compiled, as one-line functions
(a dozen for a softmax cross-entropy over ten outputs), and a call applies them in order,
dropping each value after its last reader. A tape called :data:`COMPILE_AFTER` times (a
training loop's pieces) is then compiled once into one straight-line function of the same
texts: a setup pays nothing for it, a hot loop saves the interpreter's microsecond per call.
Results are the NumPy target's either way: every node is the same NumPy expression.

>>> import numpy as np, sympy as sp
>>> from symgrad.codegen.plan import plan
>>> x, y = sp.symbols("x y")
>>> t = tape(plan([sp.exp(x) * y, [sp.exp(x) * y, sp.exp(x)]], [x, y]))
>>> value, grad = t(np.array([0.0, 1.0]), np.array([2.0, 3.0]))
>>> value.tolist(), grad.shape
([2.0, 8.154845485377136], (2, 2))
>>> print(t.source)
_r2 = numpy.exp(x)
_r3 = y*_r2
return (_r3, _stack((2,), [_r3, _r2]))
<BLANKLINE>
"""

from __future__ import annotations

import functools
import linecache
import weakref
from typing import Any

import sympy as sp

from . import runtime as _runtime
from .plan import ARGUMENT, LITERAL, SHADOW, Program, rectangular
from .printers import NumPyTargetPrinter, _doprint, _print_node, shared_templates

__all__ = ["Tape", "tape"]

# nodes printed inside their reader (a Piecewise's condition pairs, tuples): not operations
_IN_PLACE = (sp.Tuple, sp.functions.elementary.piecewise.ExprCondPair)
_PLACEHOLDERS = [f"_p{j}" for j in range(64)]
#: A tape is compiled into one straight-line function on this call: a network's pieces run
#: many steps, a setup never calls them (compiling a 57-operation head costs ~0.4 ms; each
#: interpreted call costs ~1 us more than the compiled one).
COMPILE_AFTER = 64


def _placeholder(j: int) -> str:
    return _PLACEHOLDERS[j] if j < len(_PLACEHOLDERS) else f"_p{j}"


_NEGATED: dict[int, sp.Mul] = {}


def _negated(j: int) -> sp.Mul:
    # ``-placeholder``: a negation read by its reader (``a - b`` is one operation)
    out = _NEGATED.get(j)
    if out is None:
        made = sp.Mul(sp.S.NegativeOne, sp.Symbol(_placeholder(j)), evaluate=False)
        out = _NEGATED.setdefault(j, made)
    return out


class Tape:
    """A :class:`~symgrad.codegen.plan.Program` as a list of NumPy operations (see :func:`tape`).

    Calling it with the program's arguments (arrays or floats; a vector argument as a
    sequence) returns the outputs as the NumPy target's function would with ``reduce=None``.
    ``source`` shows the operations as statements.

    >>> import numpy as np, sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> x = sp.Symbol("x")
    >>> t = tape(plan([x**2, -x], [x]))
    >>> [a.tolist() for a in t(np.array([1.0, 3.0]))]
    [[1.0, 9.0], [-1.0, -3.0]]
    """

    def __init__(self, n, inputs, code, result, shown):
        self._n, self._inputs, self._code, self._result = n, inputs, code, result
        self._shown = shown
        self._calls = 0
        self._compiled: Any = None

    def _statements(self, name) -> list[str]:
        # each operation as a statement over the names name(position) gives
        prog, ops, folded, _ = self._shown
        order, args_of, kind = prog.order, prog.args_of, prog.kind
        printer = NumPyTargetPrinter()
        templates = shared_templates(printer)
        lines = []
        for i in ops:
            kids = [
                order[a] if kind[a] == LITERAL
                else sp.Mul(sp.S.NegativeOne, sp.Symbol(name(folded[a])), evaluate=False)
                if a in folded else name(a)
                for a in args_of[i]
            ]  # fmt: skip
            text = (
                _print_node(printer, templates, order[i], kids)
                if kids
                else _doprint(printer, order[i])
            )
            lines.append(f"{name(i)} = {text}")
        return lines

    @functools.cached_property
    def source(self) -> str:
        """The operations as statements (printed when first asked for)."""
        prog, _, _, shown = self._shown
        names = {i: prog.order[i].name for i, src in enumerate(prog.source) if src is not None}

        def name(a: int) -> str:
            return names.get(a, f"_r{a}")

        lines = self._statements(name)
        lines.append(f"return {shown(name)}")
        return "\n".join(lines) + "\n"

    def _compile(self) -> Any:
        # the operations as one straight-line function: the same texts, with the registers'
        # names in place of the placeholders (so the same NumPy calls in the same order)
        from .compile import _load  # compile.py imports this module

        prog, _, _, shown = self._shown
        params = ", ".join(f"_a{k}" for k in range(len(prog.args)))
        lines = [f"def _tape({params}):"]
        for i, a, j in self._inputs:
            lines.append(f"    _r{i} = _a{a}" if j < 0 else f"    _r{i} = _a{a}[{j}]")
        body = self._statements(lambda a: f"_r{a}")
        for line, (*_, dead) in zip(body, self._code, strict=True):
            lines.append(f"    {line}")
            if dead:  # as the tape drops them: a large batch keeps only the live values
                lines.append(f"    del {', '.join(f'_r{k}' for k in dead)}")
        lines.append(f"    return {shown(lambda a: f'_r{a}')}")
        fn, filename = _load("\n".join(lines) + "\n", "_tape")
        weakref.finalize(self, linecache.cache.pop, filename, None)
        return fn

    def __call__(self, *args: Any) -> Any:
        fn = self._compiled
        if fn is not None:
            return fn(*args)
        self._calls += 1
        if self._calls >= COMPILE_AFTER:  # hot: the straight-line function from now on
            fn = self._compiled = self._compile()
            return fn(*args)
        r: list = [None] * self._n
        for i, a, j in self._inputs:
            r[i] = args[a] if j < 0 else args[a][j]
        for fn, i, j, ins, out, dead in self._code:
            # one or two operands (nearly every node) without building an argument list
            r[out] = fn(r[i], r[j]) if j >= 0 else fn(r[i]) if i >= 0 else fn(*[r[k] for k in ins])
            if dead:
                for k in dead:
                    r[k] = None
        return self._result(r)


def tape(prog: Program) -> Tape | None:
    """``prog`` as a :class:`Tape`, or None when it holds nodes printed in place (Piecewise).

    >>> import sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> x = sp.Symbol("x")
    >>> float(tape(plan(sp.Max(0, x), [x]))(-2.0))
    0.0
    """
    order, args_of, kind = prog.order, prog.args_of, prog.kind
    if any(isinstance(node, _IN_PLACE) for node in order):
        return None
    printer = NumPyTargetPrinter()
    templates = shared_templates(printer)
    outs = set(prog.outs)
    texts: dict[str, int] = {}  # text -> its function's index
    arity: list[int] = []  # per function, its number of arguments
    ops: list[tuple[int, list[int], int]] = []
    last: dict[int, int] = {}  # node -> the operation reading it last
    folded = {}  # negations -t read inside their readers: -> t
    for i, k in enumerate(kind):
        if k == SHADOW:
            rest = [b for b in args_of[i] if kind[b] != LITERAL]
            if len(rest) == 1 and i not in outs:
                folded[i] = rest[0]
    for i, node in enumerate(order):
        k = kind[i]
        if k == ARGUMENT or (k == LITERAL and i not in outs) or i in folded:
            continue
        kids: list = []
        ins: list[int] = []
        for a in args_of[i]:
            if kind[a] == LITERAL:
                kids.append(order[a])  # printed into the text, as the generated code has it
            elif a in folded:  # a negation -t: printed inside its reader
                kids.append(_negated(len(ins)))
                ins.append(folded[a])
                last[folded[a]] = len(ops)
            else:
                kids.append(_placeholder(len(ins)))
                ins.append(a)
                last[a] = len(ops)
        if args_of[i]:
            text = _print_node(printer, templates, node, kids)
        else:  # a literal output
            text = _doprint(printer, node)
        f = texts.get(text)
        if f is None:
            f = texts[text] = len(arity)
            arity.append(len(ins))
        ops.append((f, ins, i))
    functions = _functions(texts, arity)
    dead: list[list[int]] = [[] for _ in ops]
    for a, at in last.items():
        if a not in outs and kind[a] != ARGUMENT:
            dead[at].append(a)
    code = []
    for (f, ins, out), d in zip(ops, dead, strict=True):
        i, j = (ins[0], ins[1] if len(ins) == 2 else -1) if 1 <= len(ins) <= 2 else (-1, -1)
        code.append((functions[f], i, j, tuple(ins), out, tuple(d)))
    inputs = [(i, *prog.source[i]) for i in range(len(order)) if kind[i] == ARGUMENT]
    result, shown = _result(prog)
    return Tape(len(order), inputs, code, result, (prog, [i for _, _, i in ops], folded, shown))


#: Each distinct text's compiled function, shared by every tape (as the printer's templates
#: are by every program), up to this many (then started afresh).
COMPILED_MAX = 4096
_COMPILED: dict[str, Any] = {}


def _functions(texts: dict[str, int], arity: list[int]) -> list:
    # per text, ``_f(_p0, _p1, ...)`` returning it; the texts not compiled yet are compiled
    # together, as one generated module
    from .compile import _load  # compile.py imports this module

    if len(_COMPILED) > COMPILED_MAX:
        _COMPILED.clear()
    new = [(t, f) for t, f in texts.items() if t not in _COMPILED]
    if new:
        lines = []
        for k, (text, f) in enumerate(new):
            params = ", ".join(_placeholder(j) for j in range(arity[f]))
            lines.append(f"def _f{k}({params}):\n    return {text}\n")
        first, _ = _load("".join(lines), "_f0")  # kept in linecache, as the functions are
        namespace = first.__globals__
        for k, (text, _f) in enumerate(new):
            _COMPILED[text] = namespace[f"_f{k}"]
    return [_COMPILED[t] for t in texts]


def _result(prog: Program):
    # the outputs from the registers, and how they read (for ``source``): each output one leaf
    # or one stacked array, in a tuple unless the program has a single output or is a matrix
    outs = prog.outs

    def part(spec: Any) -> tuple:
        if isinstance(spec, int):
            return None, outs[spec]
        shape, flat = rectangular(spec)
        return shape, [outs[j] for j in flat]

    spec = prog.spec
    tupled = prog.top and isinstance(spec, list)
    parts = [part(s) for s in spec] if tupled else [part(spec)]
    stack = _runtime._stack

    def call(r: list) -> Any:
        out = [r[p] if shape is None else stack(shape, [r[q] for q in p]) for shape, p in parts]
        return tuple(out) if tupled else out[0]

    def shown(name) -> str:
        texts = [
            name(p) if shape is None else f"_stack({shape}, [{', '.join(map(name, p))}])"
            for shape, p in parts
        ]
        return f"({', '.join(texts)}{',' if len(texts) == 1 else ''})" if tupled else texts[0]

    return call, shown
