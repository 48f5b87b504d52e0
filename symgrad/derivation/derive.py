"""Derivations: the chain-rule steps of a backward pass, recorded as data.

:func:`derive` runs the one reverse sweep of :mod:`symgrad.autodiff` (the same code that
computes :func:`symgrad.grad`) with an ``on_step`` hook, and keeps every step it reports: the
node, the rule, the contributions summed into its adjoint (several when the node feeds several
parents: the multivariable chain rule, micrograd's ``+=``) and the local partials and
contributions it sends to its children. With numbers (``at=...``, or a ``Value``'s own data) it
also keeps the forward value and the numeric gradient of every node, as micrograd's graph shows.

The views (LaTeX, Markdown, plain text) live in :mod:`symgrad.derivation.views`: it works on
any object shaped like :class:`Derivation`, so this module imports it and not the other way round.

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> d = derive(sp.sin(x * y), at={x: 0, y: 2})
>>> print(d.text())
Derivation of f = sin(u_1) with respect to x, y (4 steps, output first)
<BLANKLINE>
[1] f = sin(u_1)    (derivative of sin)    value 0
    df/df = 1
    local partials: df/du_1 = cos(u_1) = 1
[2] u_1 = x*y    (product rule)    value 0
    df/du_1 = cos(u_1) = 1
    local partials: du_1/dx = y = 2; du_1/dy = x = 0
[3] y (leaf)    value 2
    df/dy = df/du_1 * x = x*cos(u_1) = 0
[4] x (leaf)    value 0
    df/dx = df/du_1 * y = y*cos(u_1) = 2
<BLANKLINE>
Gradients
    df/dx = df/du_1 * y = y*cos(u_1) = y*cos(x*y) = 2
    df/dy = df/du_1 * x = x*cos(u_1) = x*cos(x*y) = 0
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy as sp

from ..autodiff import Step, simplify_result, sweep
from ..errors import InputTypeError, OptionError
from ..files import atomic_write
from ..graph import free_symbols, topo_order
from ..inputs import as_expr, as_symbols, check_choice, describe, point_values
from . import views as fmt
from .names import TARGET_NAMES, node_names, numeric_values

__all__ = ["TARGET_NAMES", "Derivation", "derive", "node_names"]


def _check_step(step: object) -> None:
    if not isinstance(step, Step):
        raise InputTypeError(
            f"step must be one of the derivation's steps (d.steps), got {describe(step)}"
        )


@dataclass(frozen=True, eq=False)
class Derivation:
    """The chain-rule steps of one backward pass, as data; its views are thin printers.

    Attributes:
        target: the differentiated expression.
        wrt: the symbols differentiated with respect to.
        steps: the sweep's :class:`symgrad.autodiff.Step` records, output first.
        names: a readable name for every node (see :func:`node_names`).
        values: the forward value of every node that has one (empty without numbers); also
            holds the values of local partials and adjoint expressions.
        adjoint_values: the numeric gradient ``d target / d node`` of every step's node.
        gradients: the raw gradient of each ``wrt`` symbol (0 where it does not occur).
        simplify: the ``simplify`` option of :func:`symgrad.autodiff.simplify_result` used
            for the simplified gradients.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> d = derive(x**2, at={x: 3})
    >>> [d.names[s.node] for s in d.steps], d.adjoint_values[x]
    (['f', 'x'], 6.0)
    """

    target: sp.Expr
    wrt: tuple[sp.Symbol, ...]
    steps: tuple[Step, ...]
    names: Mapping[sp.Basic, str]
    values: Mapping[sp.Basic, float]
    adjoint_values: Mapping[sp.Basic, float]
    gradients: Mapping[sp.Symbol, sp.Expr]
    simplify: bool | str = "canonical"
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def name(self, node: sp.Basic) -> str:
        """The display name of ``node`` (its printed form if it has no name).

        >>> import sympy as sp
        >>> x = sp.Symbol("x")
        >>> derive(sp.exp(2 * x)).name(2 * x)
        'u_1'
        """
        if not isinstance(node, sp.Basic):
            raise InputTypeError(
                f"node must be a SymPy expression (a node of the derivation), got {describe(node)}"
            )
        return self.names.get(node) or sp.sstr(node)

    def simplified(self, symbol: object) -> sp.Expr:
        """The gradient with respect to ``symbol`` through :func:`symgrad.autodiff.simplify_result`.

        >>> import sympy as sp
        >>> x = sp.Symbol("x")
        >>> derive(sp.sin(x) ** 2 + sp.cos(x) ** 2, simplify="auto").simplified(x)
        0
        """
        (sym,), _ = as_symbols(symbol, self.target, "symbol")
        if sym not in self.gradients:
            raise OptionError(
                f"{sym} is not among the derivation's wrt symbols "
                f"({', '.join(map(str, self.wrt))}); derive again with wrt including it"
            )
        if sym not in self._cache:
            self._cache[sym] = simplify_result(self.gradients[sym], self.simplify)
        return self._cache[sym]

    def contributions(self, step: Step) -> list[tuple[sp.Basic | None, sp.Expr, sp.Expr]]:
        """``(parent, local partial, contribution)`` for each term summed into the step's adjoint.

        The parent is ``None`` for the seed ``d target / d target = 1`` (local partial 1).

        >>> import sympy as sp
        >>> a = sp.Symbol("a")
        >>> d = derive(sp.Add(a, a, evaluate=False))
        >>> d.contributions(d.steps[-1])
        [(a + a, 1, 1), (a + a, 1, 1)]
        """
        _check_step(step)
        locals_of = self._cache.get("_locals")
        if locals_of is None:
            locals_of = {}
            for s in self.steps:
                for child, local, _ in s.outgoing:
                    locals_of.setdefault((s.node, child), []).append(local)
            self._cache["_locals"] = locals_of
        seen: dict[sp.Basic, int] = {}
        out = []
        for parent, contribution in step.incoming:
            if parent is None:
                out.append((None, sp.S.One, contribution))
                continue
            i = seen.get(parent, 0)
            seen[parent] = i + 1
            out.append((parent, locals_of[(parent, step.node)][i], contribution))
        return out

    def kind(self, step: Step) -> tuple:
        """A signature grouping steps "of the same kind" when a view summarises.

        Steps of one kind use the same rule, have as many parents and children on the path,
        and lie at the same height above the leaves: in a network, the same node of every
        neuron of one layer.

        >>> import sympy as sp
        >>> x, y = sp.symbols("x y")
        >>> d = derive(x * y)
        >>> d.kind(d.steps[1]) == d.kind(d.steps[2])
        True
        """
        _check_step(step)
        heights = self._cache.get("_heights")
        if heights is None:
            heights = {}
            for node in topo_order([self.target]):
                heights[node] = 1 + max((heights[a] for a in node.args), default=-1)
            self._cache["_heights"] = heights
        node = step.node
        return (step.rule, len(step.incoming), len(step.outgoing), heights.get(node, 0))

    def text(self, *, max_steps: int | None = None, summarize: bool | str = "auto") -> str:
        """The derivation as plain text for a terminal (see ``derivation.views`` for options).

        >>> import sympy as sp
        >>> x = sp.Symbol("x")
        >>> print(derive(3 * x).text())
        Derivation of f = 3*x with respect to x (2 steps, output first)
        <BLANKLINE>
        [1] f = 3*x    (product rule)
            df/df = 1
            local partials: df/dx = 3
        [2] x (leaf)
            df/dx = 3
        <BLANKLINE>
        Gradients
            df/dx = 3
        """
        return fmt.text(self, max_steps=max_steps, summarize=summarize)

    def latex(
        self,
        *,
        standalone: bool = False,
        max_steps: int | None = None,
        summarize: bool | str = "auto",
    ) -> str:
        r"""The derivation as a LaTeX ``align*`` block, or a complete document.

        >>> import sympy as sp
        >>> x = sp.Symbol("x")
        >>> print(derive(3 * x).latex())
        \begin{align*}
        f &= 3 x && \text{1. product rule} \\
        \frac{\partial f}{\partial f} &= 1 \\
        \frac{\partial f}{\partial x} &= 3 && \text{local partial} \\[4pt]
        \frac{\partial f}{\partial x} &= 3 && \text{2. leaf} \\[4pt]
        &\text{Gradients:} \\
        \frac{\partial f}{\partial x} &= 3
        \end{align*}
        """
        return fmt.latex(self, standalone=standalone, max_steps=max_steps, summarize=summarize)

    def markdown(self, *, max_steps: int | None = None, summarize: bool | str = "auto") -> str:
        """The derivation as Markdown with ``$$`` display maths (Jupyter, GitHub, GitLab).

        >>> import sympy as sp
        >>> x = sp.Symbol("x")
        >>> print(derive(3 * x).markdown().splitlines()[0])
        **Derivation of f = 3\\*x** with respect to x (2 steps, output first)
        """
        return fmt.markdown(self, max_steps=max_steps, summarize=summarize)

    def html(self, path: object = None, *, title: str | None = None) -> str:
        """The explorer page: the graph beside the steps, stepping and live editing in a browser.

        One self-contained HTML file (KaTeX and its fonts inlined; no network request when
        opened). See :mod:`symgrad.derivation.html`.

        Args:
            path: also write the page there (through a temporary file and an atomic rename).
            title: the page's heading.

        Returns:
            The HTML text.

        >>> import sympy as sp
        >>> x = sp.Symbol("x")
        >>> derive(x**2, at={x: 3}).html()[:15]
        '<!DOCTYPE html>'
        """
        from .html import explorer_page

        page = explorer_page(self, title=title)
        if path is not None:
            if not isinstance(path, (str, os.PathLike)):
                raise InputTypeError(f"path must be a file name, got {describe(path)}")
            atomic_write(path, page)
        return page

    def explore(self, *, height: int = 640) -> object:
        """The explorer page for a notebook (shown inline; see :meth:`html`).

        >>> import sympy as sp
        >>> derive(sp.Symbol("x") ** 2).explore()
        <symgrad explorer page, ... KiB>
        """
        from .html import Explorer

        return Explorer(self, height=height)

    def _repr_latex_(self) -> str:
        return fmt.latex(self, environment="aligned")

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __repr__(self) -> str:
        wrt = ", ".join(self.name(s) for s in self.wrt[:5]) + (", ..." if len(self.wrt) > 5 else "")
        return f"<Derivation of {self.name(self.target)} wrt {wrt}: {len(self.steps)} steps>"


def _unpack(target: object) -> tuple[sp.Expr, dict, dict]:
    graph = getattr(target, "_symgrad_graph", None)
    if callable(graph) and not isinstance(target, type):
        got = graph()
        if not (isinstance(got, tuple) and len(got) == 3):
            raise InputTypeError(
                f"{type(target).__name__}._symgrad_graph() must return (expr, labels, values), "
                f"got {describe(got)}"
            )
        expr, labels, values = got
        if not isinstance(labels, Mapping) or not isinstance(values, Mapping):
            raise InputTypeError("_symgrad_graph() must return dicts for labels and values")
        return as_expr(expr, "target"), dict(labels), dict(values)
    return as_expr(target, "target"), {}, {}


def _leaf_values(expr: sp.Expr, at: object, defaults: dict) -> dict[sp.Symbol, float] | None:
    return point_values(at, expr, defaults, "or leave at=None for a purely symbolic derivation")


def derive(
    target: object,
    wrt: object = None,
    at: object = None,
    *,
    labels: Mapping[sp.Basic, str] | None = None,
    simplify: bool | str = "canonical",
) -> Derivation:
    """The backward pass of ``target`` as a :class:`Derivation`: every chain-rule step as data.

    Args:
        target: a scalar SymPy expression, or an object with ``_symgrad_graph()`` (a
            :class:`symgrad.Value`): its labels name the nodes and its data gives the numbers.
        wrt: a symbol (or name) or a sequence of them; default every symbol of ``target``.
            Only nodes on a path from the output to these symbols appear in the steps.
        at: ``{symbol or name: number}``: adds the forward value and the numeric gradient
            of every node. For a ``Value`` the leaves' data is used unless ``at`` overrides it.
        labels: ``{node: name}`` for nodes of ``target`` (added to a ``Value``'s labels);
            other intermediate nodes get generated names ``u_1, u_2, ...``.
        simplify: how the final gradients are simplified for display, as in
            :func:`symgrad.autodiff.simplify_result`: ``"canonical"`` (default: SymPy's
            canonical form, fast), ``"auto"`` (also ``sympy.simplify`` on small results,
            which can take seconds per gradient), ``True`` or ``False``.

    Returns:
        The :class:`Derivation`; print it with ``.text()``, ``.latex()`` or ``.markdown()``.

    Raises:
        InputTypeError: ``target``, ``wrt`` or ``at`` has the wrong type.
        MissingSymbolError: ``at`` misses a symbol of the target (values for symbols the
            target does not contain are ignored, as ``subs`` does).
        OptionError: ``simplify`` is not one of the options.
        UnsupportedFunctionError: a function in ``target`` has no derivative rule.

    >>> import sympy as sp
    >>> a, b = sp.symbols("a b")
    >>> d = derive(a * b + a, at={a: 2, b: -3})
    >>> d.adjoint_values[a], d.adjoint_values[b]
    (-2.0, 2.0)
    """
    simplify = check_choice(simplify, (True, False, "auto", "canonical"), "simplify")
    expr, value_labels, defaults = _unpack(target)
    if labels is not None and not isinstance(labels, Mapping):
        raise InputTypeError(f"labels must be a dict {{node: name}}, got {describe(labels)}")
    for node, name in (labels or {}).items():
        if not isinstance(node, sp.Basic) or not isinstance(name, str) or not name:
            raise InputTypeError(
                f"labels must map SymPy nodes to non-empty names, got {node!r}: {name!r}"
            )
    labels = {**value_labels, **(labels or {})}
    if wrt is None:
        syms = free_symbols([expr])
    else:
        syms, _ = as_symbols(wrt, expr)
    leaves = _leaf_values(expr, at, defaults)
    steps: list[Step] = []
    raw = sweep([expr], syms, on_step=lambda _k, step: steps.append(step))[0]
    gradients = {s: raw.get(s, sp.S.Zero) for s in syms}
    values: dict[sp.Basic, float] = {}
    adjoint_values: dict[sp.Basic, float] = {}
    if leaves is not None:
        exprs: list[sp.Basic] = [expr]
        for s in steps:
            exprs.append(s.adjoint)
            exprs.extend(local for _, local, _ in s.outgoing)
        exprs.extend(gradients.values())
        values = numeric_values(exprs, leaves)
        adjoint_values = {s.node: values[s.adjoint] for s in steps if s.adjoint in values}
    return Derivation(
        target=expr,
        wrt=tuple(syms),
        steps=tuple(steps),
        names=node_names(expr, labels),
        values=values,
        adjoint_values=adjoint_values,
        gradients=gradients,
        simplify=simplify,
    )
