"""The plan: outputs over arguments turned once into a :class:`Program` every target prints.

The planner linearises all outputs into one DAG of unique nodes and decides, independently of
any target, how each node is printed (an argument, a literal, a shadow printed at every use, an
expression inlined into its only reader, or a statement of its own), which statements' values
are dead after which statement (so a temporary *slot* is reused), which single-use products a
reader may fuse, and which entries of each vector argument are read. An emitter (NumPy, the
Python-float path, JavaScript, ...) then walks the program once and prints it.

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> prog = plan([sp.sin(x * y) + sp.cos(x * y), x], [[x, y]])
>>> prog.order
[x, y, x*y, cos(x*y), sin(x*y), sin(x*y) + cos(x*y)]
>>> [KIND_NAMES[k] for k in prog.kind]
['argument', 'argument', 'statement', 'inlined', 'inlined', 'inlined']
>>> prog.entries_read()
{0: [0, 1]}
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef

from ..errors import InputTypeError, MissingSymbolError, UnsupportedFunctionError
from ..graph import Linear, linearise, rebuild, split_wide_linear
from ..inputs import as_expr, as_symbols
from .printers import Inlined

__all__ = ["KIND_NAMES", "Program", "plan", "walk"]

#: How a node is printed (see :func:`plan`).
ARGUMENT, LITERAL, SHADOW, INLINED, STATEMENT = range(5)
KIND_NAMES = ("argument", "literal", "shadow", "inlined", "statement")
WIDE = 256  # sums and products wider than this are split before printing
#: A node read once is printed inside its reader when it has at most this many arguments and
#: nests at most this many inlined nodes: fewer statements (Python's compile() costs ~4 us per
#: statement) with bounded expression depth.
INLINE_ARGS = 8
INLINE_DEPTH = 4
# Nodes that are printed inside their parent instead of getting a statement of their own.
_INLINE = (sp.Tuple, sp.functions.elementary.piecewise.ExprCondPair)
_UNCOMPILABLE = (sp.Derivative, sp.Subs, sp.Integral, AppliedUndef)


@dataclass(eq=False)
class Program:
    """Outputs over arguments, planned once; every target prints it.

    Attributes:
        args: per argument, a Symbol or a list of symbols (a vector argument).
        outputs: the output structure as given.
        spec: ``outputs`` with every expression replaced by its index in ``leaves``.
        top: whether the top level is a tuple of results (False for a top-level matrix).
        leaves: the output expressions, flat.
        order: the unique DAG nodes, arguments first where they occur, children first.
        args_of: each node's arguments as positions in ``order``.
        kind: each node's kind: ``ARGUMENT``, ``LITERAL``, ``SHADOW``, ``INLINED`` or
            ``STATEMENT``.
        slot: each statement's temporary (reused once the value it held is dead), else -1.
        n_slots: the number of temporaries.
        source: each argument node's ``(argument index, entry)`` (entry -1 for a scalar
            argument), else None.
        outs: the position of each leaf.
        pair: single-use binary products (a reader may fuse many of them, see ``fuse.py``).

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> prog = plan([sp.exp(x) + 1, sp.exp(x)], [x])
    >>> prog.order, prog.slot, prog.n_slots
    ([1, x, exp(x), exp(x) + 1], [-1, -1, 0, -1], 1)
    """

    args: list
    outputs: Any
    spec: Any
    top: bool
    leaves: list
    order: list
    args_of: list
    kind: list
    source: list
    outs: list
    pair: list
    #: groups of isomorphic statements computed as one array each (see ``pack.py``); the
    #: members of a pack are consecutive in ``order``
    packs: list = field(default_factory=list)
    #: each node's isomorphism class, when the packing pass computed them
    classes: list | None = None

    @functools.cached_property
    def _slot_info(self) -> tuple[list[int], int]:
        # found when first printed: a program that is packed is printed in its packed order
        return _slots(self.kind, _deaths(self.args_of, self.kind, self.outs))

    @property
    def slot(self) -> list[int]:
        """Each statement's temporary (reused once the value it held is dead), else -1."""
        return self._slot_info[0]

    @property
    def n_slots(self) -> int:
        """The number of temporaries."""
        return self._slot_info[1]

    @property
    def n_statements(self) -> int:
        """The number of statements (nodes computed into a temporary)."""
        return sum(1 for k in self.kind if k == STATEMENT)

    @property
    def n_operations(self) -> int:
        """Statements and inlined operations: the size of the program."""
        return sum(1 for k in self.kind if k >= INLINED)

    def entries_read(self) -> dict[int, list[int]]:
        """For each vector argument, the entries some node reads (sorted)."""
        read: dict[int, list[int]] = {i: [] for i, a in enumerate(self.args) if isinstance(a, list)}
        for src in self.source:
            if src is not None and src[1] >= 0:
                read[src[0]].append(src[1])
        return {i: sorted(v) for i, v in read.items()}


def describe_args(args: list) -> str:
    """The argument list for messages: names, and ``[n symbols]`` for vectors."""
    return ", ".join(str(a) if isinstance(a, sp.Symbol) else f"[{len(a)} symbols]" for a in args)


def _looks_like_symbols(obj: Any) -> bool:
    if isinstance(obj, sp.Symbol):
        return True
    if isinstance(obj, (list, tuple)) and obj:
        return all(_looks_like_symbols(o) for o in obj)
    return False


def normalise_args(args: Any, outputs: Any = None) -> list:
    """``args`` as a list of symbols and symbol lists (each symbol at most once).

    Raises:
        InputTypeError: a non-symbol argument (with a hint when the call looks like SymPy's
            ``lambdify(args, expr)`` order), or a symbol listed twice.
    """
    if isinstance(args, (sp.Symbol, str)) or not isinstance(args, (list, tuple, sp.MatrixBase)):
        args = [args]
    spec: list = []
    seen: dict[sp.Symbol, int] = {}
    for i, item in enumerate(args):
        vector = isinstance(item, (list, tuple, sp.MatrixBase))
        try:
            if vector:
                syms = as_symbols(list(item), None, f"args[{i}]")[0] if len(item) else []
            else:
                syms, _ = as_symbols(item, None, f"args[{i}]")
        except InputTypeError as exc:
            if _looks_like_symbols(outputs):
                raise InputTypeError(
                    "the outputs are symbols and the arguments are not: did you mean "
                    "lambdify(outputs, args)? symgrad takes the outputs first (like "
                    "value_and_grad(expr, wrt, args)), the reverse of sympy.lambdify(args, "
                    f"expr) ({exc})"
                ) from None
            raise
        for s in syms:
            if s in seen:
                raise InputTypeError(
                    f"symbol {s} appears twice in args (arguments {seen[s]} and {i}); list each "
                    "symbol once"
                )
            seen[s] = i
        spec.append(syms if vector else syms[0])
    return spec


def _normalise_outputs(outputs: Any, leaves: list[sp.Expr], top: bool = True) -> Any:
    """Replace every expression in a nested output structure by its index in ``leaves``."""
    if isinstance(outputs, sp.MatrixBase):
        if 0 in outputs.shape:
            raise InputTypeError(
                f"an output matrix is empty (shape {outputs.rows}x{outputs.cols}); give at least "
                "one expression"
            )
        return [
            [_normalise_outputs(outputs[i, j], leaves, False) for j in range(outputs.cols)]
            for i in range(outputs.rows)
        ]
    if isinstance(outputs, (list, tuple)):
        if not outputs and not top:
            raise InputTypeError("an output list is empty; give at least one expression")
        return [_normalise_outputs(o, leaves, False) for o in outputs]
    leaves.append(as_expr(outputs, "output"))
    return len(leaves) - 1


def rectangular(spec: list) -> tuple[tuple[int, ...], list[int]]:
    """The shape and flat leaf indices of a nested output list (which must be rectangular)."""
    shape: list[int] = []
    level: list = [spec]
    while isinstance(level[0], list):
        sizes = {len(item) if isinstance(item, list) else -1 for item in level}
        if len(sizes) != 1 or -1 in sizes:
            raise InputTypeError(
                "nested outputs must be rectangular (every inner list of the same length, "
                "expressions only at the deepest level); return ragged results as separate outputs"
            )
        shape.append(sizes.pop())
        level = [child for item in level for child in item]
    return tuple(shape), level


def plan(outputs: Any, args: Any, base: Linear | None = None) -> Program:
    """Plan the computation of ``outputs`` over ``args`` (see :func:`symgrad.lambdify`).

    Args:
        outputs: an expression or a nested list/tuple of them, or a SymPy matrix.
        args: symbols and lists of symbols (vector arguments), in call order.
        base: the linearised DAG the outputs were derived from (not walked again).

    Returns:
        The :class:`Program`.

    Raises:
        MissingSymbolError: an output uses a symbol that is not an argument.
        UnsupportedFunctionError: an undefined function or an unevaluated derivative/integral.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> plan(x + 1, [x]).n_operations
    1
    """
    arg_spec = normalise_args(args, outputs)
    leaves: list[sp.Expr] = []
    spec = _normalise_outputs(outputs, leaves)
    top = not isinstance(outputs, sp.MatrixBase)
    dag = linearise(leaves, base)
    if any(len(a) > WIDE for a in dag.args) and any(
        (n.is_Add or n.is_Mul) and len(a) > WIDE for n, a in zip(dag.order, dag.args, strict=True)
    ):
        # bounded statements: Python's own compiler recurses on a + b + ... + z
        leaves, dag = split_wide_linear(leaves, dag, WIDE)
    order, args_of = dag.order, dag.args
    bad = [t for t in {type(n) for n in order} if issubclass(t, _UNCOMPILABLE)]
    if bad:
        n = next(n for n in order if isinstance(n, tuple(bad)))
        raise UnsupportedFunctionError(
            type(n).__name__,
            f"cannot compile {sp.sstr(n)[:60]}: it is an undefined function or an "
            "unevaluated derivative/integral; substitute a concrete function first",
        )
    where: dict[sp.Symbol, tuple[int, int]] = {}
    for i, item in enumerate(arg_spec):
        if isinstance(item, sp.Symbol):
            where[item] = (i, -1)
        else:
            where.update((s, (i, j)) for j, s in enumerate(item))
    by_id = {id(s): v for s, v in where.items()}  # the argument symbols themselves: no hashing
    source: list[tuple[int, int] | None] = [None] * len(order)
    missing = []
    for i, n in enumerate(order):
        if args_of[i]:
            continue
        v = by_id.get(id(n))
        if v is None and n.is_Symbol:
            v = where.get(n)  # an equal symbol object of its own
            if v is None:
                missing.append(n)
        source[i] = v
    if missing:
        shown = ", ".join(sorted(str(s) for s in missing)[:10])
        raise MissingSymbolError(
            f"the outputs use symbols that are not arguments: {shown}; add them to args "
            f"(or substitute values for them first)"
        )
    outs = [dag.index[leaf] for leaf in leaves]
    return program_of(arg_spec, outputs, spec, top, leaves, order, args_of, source, outs)


def program_of(
    arg_spec: list, outputs: Any, spec: Any, top: bool, leaves: list, order: list,
    args_of: list, source: list, outs: list, packs: list | None = None,
    kind: list | None = None,
) -> Program:  # fmt: skip
    """The :class:`Program` of a linearised DAG in ``order``: node kinds, fusable pairs (and
    slots, when first asked for).

    ``kind``: the nodes' kinds when known (the same DAG planned in another order).
    """
    if kind is None:
        kind = _kinds(order, args_of, source, outs)
    pair = [
        k == INLINED and node.is_Mul and len(a) == 2
        for k, node, a in zip(kind, order, args_of, strict=True)
    ]
    return Program(
        arg_spec, outputs, spec, top, leaves, order, args_of, kind, source, outs, pair,
        packs or [],
    )  # fmt: skip


def _kinds(
    order: list[sp.Basic], args_of: list[list[int]], source: list, outs: list[int]
) -> list[int]:
    """How each node is printed.

    Literals are printed in place; shadows (tuples, condition pairs, negations) inside every
    user; a node read exactly once (and small) is inlined into its reader; everything else is
    a statement.
    """
    n = len(order)
    uses = [0] * n
    pinned = [False] * n  # arguments of shadows: a shadow is printed at every use
    neg = sp.S.NegativeOne
    shadowy = [  # negations -t: a product of -1 and one factor
        node.is_Mul and len(a) == 2 and order[a[0]] is neg
        for node, a in zip(order, args_of, strict=True)
    ]
    inline = tuple(t for t in {type(node) for node in order} if issubclass(t, _INLINE))
    if inline:
        shadowy = [s or isinstance(node, inline) for s, node in zip(shadowy, order, strict=True)]
    for i, positions in enumerate(args_of):
        for a in positions:
            uses[a] += 1
        if shadowy[i]:
            for a in positions:
                pinned[a] = True
    for o in outs:
        uses[o] += 1
    kind = [ARGUMENT] * n
    depth = [0] * n  # inlined node -> inlined nodes nested in it, itself included
    for i in range(n):
        if source[i] is not None:
            continue
        if not args_of[i]:
            kind[i] = LITERAL
            continue
        d = 1
        for a in args_of[i]:
            if kind[a] == INLINED and depth[a] >= d:
                d = depth[a] + 1
        if shadowy[i]:
            kind[i] = SHADOW
        elif (
            uses[i] == 1 and not pinned[i] and d <= INLINE_DEPTH and len(args_of[i]) <= INLINE_ARGS
        ):
            kind[i], depth[i] = INLINED, d
        else:
            kind[i] = STATEMENT
    return kind


def _deaths(args_of: list[list[int]], kind: list[int], outs: list[int]) -> dict[int, list[int]]:
    # for each statement, the statements it reads for the last time (through inlined nodes)
    reads: dict[int, list[int]] = {}
    last: dict[int, int] = {}
    for i, k in enumerate(kind):
        if k < SHADOW:
            continue
        r: list[int] = []
        for a in args_of[i]:
            ka = kind[a]
            if ka == STATEMENT:
                r.append(a)
            elif ka in (INLINED, SHADOW):
                r += reads[a]
        if k == STATEMENT:
            for m in r:
                last[m] = i
        else:
            reads[i] = r
    for o in outs:
        for m in [o] if kind[o] == STATEMENT else reads.get(o, ()):
            last[m] = -1
    dies: dict[int, list[int]] = {}
    for m, i in last.items():
        if i >= 0:
            dies.setdefault(i, []).append(m)
    return dies


def _slots(kind: list[int], dies: dict[int, list[int]]) -> tuple[list[int], int]:
    # a statement takes the slot of a value read here for the last time, else a new one
    slot = [-1] * len(kind)
    free: list[int] = []
    n = 0
    for i, k in enumerate(kind):
        if k != STATEMENT:
            continue
        free += [slot[d] for d in dies.get(i, ())]
        if free:
            slot[i] = free.pop()
        else:
            slot[i], n = n, n + 1
    return slot, n


def as_symbol(kid: Any) -> sp.Basic:
    """A printed name as a symbol (for shadows rebuilt over names), anything else unchanged."""
    return sp.Symbol(kid) if isinstance(kid, str) else kid


def walk(
    prog: Program,
    names: list,
    slots: list[str],
    text_of: Any,
    kid: list | None = None,
    skip: list[int] | None = None,
) -> tuple[list, list]:
    """Print every node of ``prog`` once, in order: the common loop of every emitter.

    Args:
        prog: the program.
        names: each node's target name for arguments (None elsewhere).
        slots: the target's name of each temporary.
        text_of: ``text_of(i, node, kids) -> (text, lines)``: node ``i`` printed over its
            arguments' printed forms (names, :class:`Inlined` texts, SymPy literals or shadows),
            and any lines the target needs before the statement that reads it. A statement
            whose text is None gets no line: ``text_of`` has put its printed form in ``kid``
            (a pack member, read as a column of its pack at every use).
        kid: the list to fill with each node's printed form (initially ``names``), given when
            ``text_of`` reads the printed forms of nodes other than its arguments.
        skip: inlined nodes nothing prints (their readers compute them otherwise: the
            operands of a pack's members): not printed, their printed form left None.

    Returns:
        ``(body, kid)``: the body as ``(slot name or None, text)`` pairs (None: a line of its
        own), and each node's printed form for its readers.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> prog = plan([sp.exp(x) + 1, sp.exp(x)], [x])
    >>> def text_of(i, node, kids):
    ...     return f"{type(node).__name__}({', '.join(map(str, kids))})", ()
    >>> body, kid = walk(prog, [None, "x", None, None], ["t0"], text_of)
    >>> body
    [('t0', 'exp(x)')]
    """
    if kid is None:
        kid = list(names)
    else:
        kid[:] = names
    body: list[tuple[str | None, str]] = []
    order, args_of, kind = prog.order, prog.args_of, prog.kind
    if skip:
        kind = list(kind)
        for i in skip:
            kind[i] = ARGUMENT  # passed over, as arguments are
    for i, node in enumerate(order):
        k = kind[i]
        if k == ARGUMENT:
            continue
        if k == LITERAL:  # numbers and named constants are printed in place
            kid[i] = node
            continue
        if k == SHADOW:  # a Tuple / (expr, cond) pair, or a negation printed as ``-t``
            kid[i] = rebuild(node, [as_symbol(kid[a]) for a in args_of[i]])
            continue
        text, lines = text_of(i, node, [kid[a] for a in args_of[i]])
        if lines:
            body += [(None, ln) for ln in lines]
        if k == INLINED:
            kid[i] = Inlined.of(text, node) if type(text) is str else text
            continue
        if text is None:
            continue
        kid[i] = slots[prog.slot[i]]
        body.append((kid[i], text))
    return body, kid
