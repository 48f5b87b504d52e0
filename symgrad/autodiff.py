"""Reverse-mode symbolic differentiation over the expression DAG.

One backward sweep walks the unique nodes of the expression in reverse topological order,
starting from the adjoint ``{output: 1}``. Each node sums the contributions its parents sent
(the multivariable chain rule), multiplies that adjoint by the local partials from
:mod:`symgrad.rules` and sends the products to its arguments. Only nodes on a path from a
``wrt`` symbol to the output take part. Because partials are written through the forward nodes
and adjoints are built without flattening, gradients share the forward pass's subexpressions.

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> grad(3 * x**2 - 4 * x + 5, x)
6*x - 4
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy as sp

from .construct import add, is_small, is_zero, mul, normalised_sum, sum_of
from .errors import InputTypeError
from .graph import Linear, linearise, paused_gc, post_order, topo_order, tree_size
from .inputs import as_expr, as_exprs, as_symbols
from .rules import lookup

__all__ = ["Step", "grad", "hessian", "jacobian", "simplify_result", "sweep"]

ONE, MUL = sp.S.One, sp.Mul._from_args

#: Results up to this tree size are rebuilt in SymPy's canonical (evaluated) form.
EVALUATE_BUDGET = 4000
#: Results up to this tree size are also run through ``sympy.simplify`` (kept only if shorter).
SIMPLIFY_BUDGET = 40

#: "auto" runs ``cancel`` only where the fully expanded result has at most this many terms:
#: ``cancel`` expands, so ``(x + 1)**1000*(y + 1)**1000`` (a 10-node result) would be 10**6 terms.
EXPAND_BUDGET = 2_000
#: ... and at most this size (terms times the size of one term: its factors and the bits of its
#: coefficient): ``(x + 1)**999`` is only 1,000 terms, but with 300-digit coefficients
#: (``cancel`` takes seconds), and ``expand`` turns ``exp((x + 1)**1000)`` into a product of
#: 1,001 exponentials.
EXPAND_SIZE_BUDGET = 100_000
#: Heaviside, sign, Abs, Max, Min, Piecewise and DiracDelta are evaluated (simplified) only on
#: arguments whose real and imaginary parts expand to at most this many terms.
SIGN_QUERY_TERMS = 64
#: Max/Min of more arguments stay unevaluated when rebuilt: SymPy compares arguments pairwise.
EVALUATE_MAX_ARGS = 4

SimplifyOption = bool | str


@dataclass(frozen=True)
class Step:
    """One node's work in the backward sweep, recorded as data (used by derivations).

    Attributes:
        node: the SymPy node whose adjoint is complete.
        rule: the name of the rule used for its local partials (``"sum"``, ``"tanh"``...).
        incoming: ``(parent, contribution)`` pairs summed into the adjoint (``parent`` is
            ``None`` for the seed ``d output / d output = 1``).
        adjoint: the sum of the incoming contributions.
        outgoing: ``(argument, local partial, contribution)`` for every argument that depends
            on a ``wrt`` symbol; ``contribution = adjoint * local partial``.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> steps = []
    >>> _ = sweep([sp.sin(x) ** 2], [x], on_step=lambda k, step: steps.append(step))
    >>> [(str(s.node), s.rule, str(s.adjoint)) for s in steps]
    [('sin(x)**2', 'power', '1'), ('sin(x)', 'sin', '2*sin(x)'), ('x', 'leaf', '2*sin(x)*cos(x)')]
    """

    node: sp.Basic
    rule: str
    incoming: tuple[tuple[sp.Basic | None, sp.Expr], ...]
    adjoint: sp.Expr
    outgoing: tuple[tuple[sp.Basic, sp.Expr, sp.Expr], ...]


def sweep(
    outputs: Sequence[sp.Expr],
    wrt: Sequence[sp.Symbol],
    on_step: Callable[[int, Step], None] | None = None,
) -> list[dict[sp.Symbol, sp.Expr]]:
    """Raw reverse-mode gradients of each output with respect to ``wrt`` (no simplification).

    The results keep the DAG's sharing: large products and sums are left unevaluated, so they
    are the right input for code generation. Use :func:`grad` for readable formulas.

    Args:
        outputs: scalar SymPy expressions.
        wrt: the symbols to differentiate with respect to.
        on_step: called as ``on_step(output_index, step)`` for every node the sweep processes,
            in the order it processes them (leaves included, with no ``outgoing``).

    Returns:
        For each output, a dict from symbol to gradient; a symbol that the output does not
        depend on is absent (its gradient is zero).

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> g = sweep([x * y + x], [x, y])[0]
    >>> g[x], g[y]
    (y + 1, x)
    """
    return _sweep(outputs, wrt, on_step)[0]


@paused_gc()
def _sweep(
    outputs: Sequence[sp.Expr],
    wrt: Sequence[sp.Symbol],
    on_step: Callable[[int, Step], None] | None = None,
    dag: Linear | None = None,
) -> tuple[list[dict[sp.Symbol, sp.Expr]], Linear]:
    # sweep, also returning the linearised forward DAG (code generation extends it); ``dag``:
    # the outputs' DAG when the caller has it (it must hold every output)
    # Nodes are positions in the forward DAG: hashing a SymPy node is a Python call, and the
    # sweep would otherwise hash every node several times.
    if dag is None:
        dag = linearise(outputs)
    order, args_of = dag.order, dag.args
    for node in order:
        # Warm SymPy's cached assumption bottom-up: building an unevaluated Mul asks it, and a
        # cold query on a deep expression would recurse through all of it.
        node.is_commutative  # noqa: B018
    # the wrt symbol each target leaf stands for: gradients are keyed by the caller's own
    # objects (an equal but distinct leaf, e.g. from SymPy's cache, is compared once, here)
    targets = {s: s for s in wrt}
    target_of: dict[int, sp.Symbol] = {}
    dep = [False] * len(order)  # whether node i depends on a target
    for i, node in enumerate(order):
        a = args_of[i]
        if not a:
            t = targets.get(node)
            if t is not None:
                dep[i] = True
                target_of[i] = t
            continue
        for j in a:
            if dep[j]:
                dep[i] = True
                break
    results: list[dict[sp.Symbol, sp.Expr]] = []
    for k, out in enumerate(outputs):
        grads: dict[sp.Symbol, sp.Expr] = {}
        # Nodes whose adjoint is known to be large: products and sums over it are built
        # unevaluated without measuring it again (measuring dominated the sweep's time).
        large = [False] * len(order)
        # node -> [(parent position, contribution)], filled by parents before it is reached
        adjoints: list[list | None] = [None] * len(order)
        root = dag.index[out]
        if dep[root]:
            adjoints[root] = [(-1, sp.S.One)]
        for i in range(len(order) - 1, -1, -1):
            incoming = adjoints[i]
            if incoming is None:
                continue
            adjoints[i] = None
            node = order[i]
            if len(incoming) == 1:  # one parent: its contribution is the adjoint
                parent, adjoint = incoming[0]
                big = parent >= 0 and large[parent]
            else:
                big = any(large[p] for p, _ in incoming)
                terms = [c for _, c in incoming]
                adjoint = normalised_sum(terms)  # sum_i F*x_i/S with S = sum_i x_i: F
                if adjoint is None:
                    if big and all(isinstance(c, sp.Expr) and not c.is_Number for c in terms):
                        adjoint = sum_of(terms)  # construct.add's result for large terms
                    else:
                        adjoint = add(terms, small=False if big else None)
            if big or (not adjoint.is_Number and not is_small(adjoint)):  # a number is small
                big = large[i] = True
            outgoing = []
            if not args_of[i]:
                name = "leaf"
                if dep[i]:
                    grads[target_of[i]] = adjoint
            elif is_zero(adjoint):
                name = "zero"
            else:
                rule = lookup(node)
                # only the partials in arguments that depend on wrt: a constant order or index
                # (besselj(1, x), zeta(2, x)) is never differentiated; SymPy's one-at-a-time
                # rules (rule.partial) see tuple arguments (hyper, meijerg parameters) element
                # by element
                a_i = args_of[i]
                if rule.partial is None:
                    locals_ = rule.needed(node, [dep[a] for a in a_i])
                    pairs = zip(a_i, locals_, strict=True)  # no tuple partials: flat
                else:
                    wanted = [_wanted(a, order, args_of, dep) for a in a_i]
                    pairs = _pairs(a_i, rule.needed(node, wanted), args_of)
                # a large commutative adjoint times a commutative partial that is not a
                # number: construct.mul's unevaluated pair, built here (the sweep's commonest
                # product, one per edge of a network)
                pair = (
                    big
                    and isinstance(adjoint, sp.Expr)
                    and not adjoint.is_Number
                    and adjoint.is_commutative is True
                )
                for a, local in pairs:
                    if local is ONE:  # a sum's partials: the adjoint passes on (mul(a, 1) == a)
                        contribution = adjoint
                    elif local is None or (local.is_Number and not local):  # is_zero, inlined
                        continue
                    elif (
                        pair
                        and isinstance(local, sp.Expr)
                        and not local.is_Number
                        and local.is_commutative is True
                    ):
                        contribution = MUL((adjoint, local), True)
                    else:
                        contribution = mul(adjoint, local, small=False if big else None)
                    if adjoints[a] is None:
                        adjoints[a] = [(i, contribution)]
                    else:
                        adjoints[a].append((i, contribution))
                    if on_step is not None:
                        outgoing.append((order[a], local, contribution))
                name = rule.name
            if on_step is not None:
                parents = tuple((order[p] if p >= 0 else None, c) for p, c in incoming)
                on_step(k, Step(node, name, parents, adjoint, tuple(outgoing)))
        results.append({s: g for s, g in grads.items() if not is_zero(g)})
    return results, dag


def _wanted(a: int, order: list, args_of: list, dep: list[bool]):
    # a flag, or for a tuple argument that depends on wrt, a nested tuple of flags
    if not dep[a] or not isinstance(order[a], sp.Tuple):
        return dep[a]
    return tuple(_wanted(c, order, args_of, dep) for c in args_of[a])


def _pairs(positions: list[int], locals_: list, args_of: list):
    # (position, partial) for every argument, tuple arguments' elements in place of the tuple
    stack = [(positions, locals_)]
    while stack:
        ps, ls = stack.pop()
        for p, local in zip(ps, ls, strict=True):
            if isinstance(local, tuple):
                stack.append((args_of[p], local))
            else:
                yield p, local


def _evaluated(expr: sp.Basic, memo: tuple[dict, dict] | None = None) -> sp.Basic:
    # Rebuild bottom-up with SymPy's evaluating constructors: canonical form, linear in the DAG
    # (wide Max/Min excepted: evaluating them is quadratic in their arguments). ``memo`` holds
    # the nodes already rebuilt, shared by the results of one gradient.
    new, width = memo if memo is not None else ({}, {})
    # width: for Max/Min, the number of arguments evaluation would flatten into one
    for node in post_order([expr], lambda n: () if n in new else n.args):
        if node in new:
            continue
        if not node.args:
            new[node] = node
            continue
        args = [new[a] for a in node.args]
        if isinstance(node, (sp.Max, sp.Min)):
            width[node] = sum(width[a] if isinstance(a, node.func) else 1 for a in node.args)
            if width[node] > EVALUATE_MAX_ARGS:
                new[node] = node.func._from_args(args)  # unevaluated, unsorted: linear
                continue
        if isinstance(node, _SIGN_QUERIES) and _costly_sign_query(args):
            new[node] = node.func(*args, evaluate=False)
            continue
        new[node] = node.func(*args)
    return new[expr]


# Heads whose evaluation queries the sign or zero-ness of their arguments.
_SIGN_QUERIES = (sp.Heaviside, sp.sign, sp.Abs, sp.Max, sp.Min, sp.Piecewise, sp.DiracDelta)


def _costly_sign_query(args: Sequence[sp.Basic]) -> bool:
    # Evaluating a sign query asks for the sign of whole argument trees (SymPy's assumption
    # system, deep and unbounded) and for their imaginary part, which expands x**200 as
    # (re(x) + I*im(x))**200 (seconds): only small arguments of low degree are evaluated.
    return any(
        tree_size(a, SIMPLIFY_BUDGET) > SIMPLIFY_BUDGET
        or _expansion(a, SIGN_QUERY_TERMS, complex_parts=True)[0] > SIGN_QUERY_TERMS
        for a in args
    )


def _expanded_terms(expr: sp.Basic, limit: int) -> int:
    """An upper bound on the number of terms of ``expr`` multiplied out (capped at limit + 1).

    Bottom-up over the DAG: a sum has the terms of its arguments, a product their product, an
    integer power ``b**k`` (or ``b**-k``, whose denominator expands) at most C(t + k - 1, k) for
    t terms in ``b``; anything else is one term (``cancel`` treats it as a generator).
    """
    return _expansion(expr, limit)[0]


def _expansion(expr: sp.Basic, limit: int, complex_parts: bool = False) -> tuple[int, int]:
    """Upper bounds on the terms and the size of ``expr`` multiplied out, each capped at
    limit + 1 (see :func:`_expanded_terms`); with ``complex_parts``, of its real and imaginary
    parts, where a symbol not known to be real is the two terms ``re(x) + I*im(x)``.

    The size is terms times the size of one term: a term of a product holds a term of every
    factor; a term of ``b**k`` is ``k`` terms of ``b`` with a multinomial coefficient below
    ``t**k`` (``k log2 t`` more bits); a number counts its bits; a function (or a non-integer
    power) is one term holding its arguments expanded, as ``expand`` rewrites inside them.
    """
    cap = limit + 1
    terms: dict[sp.Basic, int] = {}
    width: dict[sp.Basic, int] = {}  # the size of one term
    worst_terms = worst_size = 1
    for node in topo_order([expr]):
        args = node.args
        if node.is_Add:
            t, w = sum(terms[a] for a in args), max(width[a] for a in args)
        elif node.is_Mul:
            t, w = 1, sum(width[a] for a in args)
            for a in args:
                t = min(t * terms[a], cap)
        elif node.is_Pow and node.exp.is_Integer:
            base, k = terms[node.base], abs(int(node.exp))
            t = 1 if base == 1 else cap if k >= cap else math.comb(base + k - 1, k)
            w = k * width[node.base] + k * (base - 1).bit_length()
        elif node.is_Rational:
            w = int(node.p).bit_length() + int(node.q).bit_length()
            t = 1
        elif node.is_Symbol:
            t, w = (2, 2) if complex_parts and not node.is_extended_real else (1, 1)
        else:
            t, w = 1, 1 + sum(terms[a] * width[a] for a in args)
        terms[node], width[node] = min(t, cap), min(w, cap)
        worst_terms = max(worst_terms, terms[node])
        worst_size = max(worst_size, min(terms[node] * width[node], cap))
    return worst_terms, worst_size


def simplify_result(expr: sp.Expr, simplify: SimplifyOption = "auto") -> sp.Expr:
    """Make a raw gradient readable, within a budget.

    Args:
        expr: a result of :func:`sweep`.
        simplify: ``False`` returns ``expr`` unchanged (shared, partly unevaluated structure:
            best for code generation). ``"auto"`` (default) rebuilds results of tree size up to
            ``EVALUATE_BUDGET`` in SymPy's canonical form (Max/Min of more than
            ``EVALUATE_MAX_ARGS`` arguments left as they are), and on results up to
            ``SIMPLIFY_BUDGET`` nodes also tries a few bounded rewrites (``cancel`` only where
            the expanded result has at most ``EXPAND_BUDGET`` terms, ``factor_terms``,
            ``sin**2 -> 1 - cos**2``), keeping the shortest. Its time is bounded by these
            sizes, whatever the expression.
            ``"canonical"`` does only the first. ``True`` uses ``sympy.simplify`` whatever the
            size: its cost has no bound (minutes on some 40-node results).

    Returns:
        An expression equal to ``expr``.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> simplify_result(sp.sin(x)**2 + sp.cos(x)**2)
    1
    """
    return _simplify_all([expr], simplify)[0]


def _simplify_all(exprs: Sequence[sp.Expr], simplify: SimplifyOption) -> list[sp.Expr]:
    """:func:`simplify_result` of several results, rebuilding their shared nodes once."""
    named = isinstance(simplify, str) and simplify in ("auto", "canonical")
    if not (simplify is True or simplify is False or named):
        raise InputTypeError(
            f"simplify must be True, False, 'auto' or 'canonical', got {simplify!r}"
        )
    if simplify is False:
        return list(exprs)
    memo: tuple[dict, dict] = ({}, {})
    return [_simplify_one(e, simplify, memo) for e in exprs]


def _simplify_one(expr: sp.Expr, simplify: SimplifyOption, memo: tuple[dict, dict]) -> sp.Expr:
    if simplify is True or tree_size(expr, EVALUATE_BUDGET) <= EVALUATE_BUDGET:
        expr = _evaluated(expr, memo)
    if simplify == "canonical":
        return expr
    if simplify is True:
        candidates = [sp.simplify(expr)]
    elif tree_size(expr, SIMPLIFY_BUDGET) <= SIMPLIFY_BUDGET:
        if any(
            isinstance(n, _SIGN_QUERIES) and _costly_sign_query(n.args) for n in topo_order([expr])
        ):
            return expr  # every rewrite rebuilds (evaluates) the sign queries left unevaluated
        n_terms, size = _expansion(expr, EXPAND_SIZE_BUDGET)
        small = n_terms <= EXPAND_BUDGET and size <= EXPAND_SIZE_BUDGET
        candidates = [rewrite(expr) for rewrite in _TIDY if small or rewrite is not sp.cancel]
    else:
        return expr
    best = min(candidates, key=sp.count_ops)
    return best if sp.count_ops(best) < sp.count_ops(expr) else expr


def _pythagorean(expr: sp.Expr) -> sp.Expr:
    # sin(u)**2k -> (1 - cos(u)**2)**k and sinh(u)**2k -> (cosh(u)**2 - 1)**k, then SymPy's
    # canonical sums cancel what they can: sin(x)**2 + cos(x)**2 becomes 1. One linear pass.
    def even_power(e: sp.Basic) -> bool:
        return (
            e.is_Pow
            and isinstance(e.base, (sp.sin, sp.sinh))
            and e.exp.is_Integer
            and e.exp > 0
            and e.exp % 2 == 0
        )

    def rewrite(e: sp.Pow) -> sp.Expr:
        u = e.base.args[0]
        square = 1 - sp.cos(u) ** 2 if isinstance(e.base, sp.sin) else sp.cosh(u) ** 2 - 1
        return square ** (e.exp // 2)

    return expr.replace(even_power, rewrite)


# "auto" tries these rewrites, each polynomial in the size of a small result, and keeps the
# shortest. Not sympy.simplify or trigsimp: their exponential and algebraic-extension
# rewrites have no bound even on 40-node results (a random 40-node sine/rational gradient ran
# for over 20 minutes in simplify, factoring over QQ<I>; a 24-node tanh/log one for over 10 s
# in trigsimp).
_TIDY = (sp.cancel, sp.factor_terms, _pythagorean)


def grad(expr: object, wrt: object, *, simplify: SimplifyOption = "auto"):
    """The exact gradient of a scalar expression by one reverse sweep over its DAG.

    Args:
        expr: a SymPy expression (or a number, or a :class:`symgrad.Value`).
        wrt: a Symbol (or its name), or a sequence of them.
        simplify: see :func:`simplify_result`; ``False`` gives the raw, fully shared form.

    Returns:
        One expression if ``wrt`` is a single symbol, else a list in the order of ``wrt``.

    Raises:
        InputTypeError: ``expr`` is not an expression or ``wrt`` not symbols.
        UnsupportedFunctionError: the expression contains a function with no derivative rule.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> grad(sp.sin(x * y), [x, y])
    [y*cos(x*y), x*cos(x*y)]
    >>> grad(sp.Max(0, x), x)  # ReLU: derivative 0 at 0, as in PyTorch
    Heaviside(x, 0)
    """
    e = as_expr(expr)
    syms, single = as_symbols(wrt, e)
    raw = sweep([e], syms)[0]
    out = _simplify_all([raw.get(s, sp.S.Zero) for s in syms], simplify)
    return out[0] if single else out


def jacobian(exprs: object, wrt: object, *, simplify: SimplifyOption = "auto") -> sp.Matrix:
    """The Jacobian matrix ``J[i, j] = d exprs[i] / d wrt[j]`` (one reverse sweep per output).

    Args:
        exprs: an expression, a sequence of expressions or a SymPy matrix (read row by row).
        wrt: a symbol or a sequence of symbols.
        simplify: see :func:`simplify_result`.

    Returns:
        A ``len(exprs) x len(wrt)`` SymPy matrix.

    >>> import sympy as sp
    >>> r, t = sp.symbols("r t")
    >>> jacobian([r * sp.cos(t), r * sp.sin(t)], [r, t])
    Matrix([
    [cos(t), -r*sin(t)],
    [sin(t),  r*cos(t)]])
    """
    es = as_exprs(exprs)
    syms, _ = as_symbols(wrt, sp.Tuple(*es))
    rows = sweep(es, syms)
    return sp.Matrix([[simplify_result(r.get(s, sp.S.Zero), simplify) for s in syms] for r in rows])


def hessian(expr: object, wrt: object, *, simplify: SimplifyOption = "auto") -> sp.Matrix:
    """The Hessian ``H[i, j] = d^2 expr / d wrt[i] d wrt[j]``: reverse mode over the gradient.

    Args:
        expr: a scalar expression.
        wrt: a symbol or a sequence of symbols.
        simplify: see :func:`simplify_result`.

    Returns:
        A square SymPy matrix.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> hessian(x**3 * y, [x, y])
    Matrix([
    [ 6*x*y, 3*x**2],
    [3*x**2,      0]])
    """
    e = as_expr(expr)
    syms, _ = as_symbols(wrt, e)
    first = sweep([e], syms)[0]
    gradient = [first.get(s, sp.S.Zero) for s in syms]
    rows = sweep(gradient, syms)
    return sp.Matrix([[simplify_result(r.get(s, sp.S.Zero), simplify) for s in syms] for r in rows])
