r"""Views of a derivation: LaTeX, Markdown and plain text.

The three formats share one view model (:class:`_View`): which steps are shown (all, or the
first few of each kind with a count of the others), and what each step shows (its definition
and value, the chain rule for its gradient, each ``+=`` when several contributions are added,
its local partials). The maths is printed by :mod:`symgrad.derivation.printers`; this module only
joins printed pieces with ``&=``, ``\\`` and newlines.

It works on any object shaped like :class:`symgrad.derivation.Derivation` (duck typing) and
imports no module of the derivation group but ``derivation.printers``, so ``derivation`` can import
it without a cycle.

>>> import sympy as sp
>>> from symgrad import derive
>>> x = sp.Symbol("x")
>>> print(text(derive(sp.exp(2 * x))).splitlines()[0])
Derivation of f = exp(u_1) with respect to x (3 steps, output first)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy as sp

from ..errors import OptionError
from ..graph import tree_size
from ..inputs import check_choice
from .printers import (
    Chain,
    LatexNamePrinter,
    Partial,
    Terms,
    TextPrinter,
    md_code,
    md_text,
    tex_text,
)

__all__ = ["latex", "markdown", "text"]

#: Above this many steps, ``summarize="auto"`` shows only the first steps of each kind.
SUMMARY_THRESHOLD = 40
#: How many steps of each kind a summary shows.
PER_KIND = 3
#: A summary shows at most this many gradients.
MAX_GRADIENTS = 12
#: Expressions with more nodes than this (named nodes count as one) are not printed.
PRINT_BUDGET = 60
#: A node with more contributions than this shows their sum only, not each ``+=``.
MAX_ADDED = 8
#: Shown instead of an expression that is too large to print.
TOO_LARGE = "(too large to show)"


# ---------------------------------------------------------------------------------------------
# the view model: what each step shows, independent of the output format
# ---------------------------------------------------------------------------------------------


@dataclass
class _StepView:
    index: int
    rule: str
    definition: sp.Basic | None  # the node, printed with root=True; None for a leaf
    value: sp.Float | None
    adjoint: tuple[sp.Basic, list]  # (lhs, items) of d target / d node
    parents: int = 1  # how many contributions are added into the adjoint
    added: list = field(default_factory=list)  # (lhs, items) of each += when several
    local: list = field(default_factory=list)  # (lhs, items) of each local partial


def _rule_text(rule: str, node: sp.Basic) -> str:
    if rule == "product" and any(
        isinstance(a, sp.Pow) and a.exp.is_Number and a.exp < 0 for a in node.args
    ):
        return "quotient rule"
    if rule in ("sum", "product", "power"):
        return f"{rule} rule"
    return "leaf" if rule == "leaf" else f"derivative of {rule}"


def _size(expr: sp.Basic, display: Mapping, cap: int) -> int:
    # Printed size: named nodes (the root too) and partials count as one (iterative; capped).
    count, stack = 0, [expr]
    while stack and count <= cap:
        node = stack.pop()
        count += 1
        if node not in display and not isinstance(node, Partial):
            stack.extend(node.args)
    return count


def _number(values: Mapping, expr: sp.Basic) -> sp.Float | None:
    v = values.get(expr)
    return None if v is None else sp.Float(v)


def _same(a: sp.Basic, b: sp.Basic) -> bool:
    # cached hashes first: SymPy's == walks both trees recursively, deep ones past the limit
    return a is b or (hash(a) == hash(b) and a == b)


def _items(*candidates, display: Mapping) -> list:
    # Drop missing and oversized items, and a number after an expression that is one already.
    out = []
    for c in candidates:
        if c is None or (out and _same(out[-1], c)):
            continue
        if isinstance(c, sp.Float) and out and out[-1].is_Number:
            continue
        if _size(c, display, PRINT_BUDGET) > PRINT_BUDGET:
            continue
        out.append(c)
    return out


class _View:
    """Everything the three formats share: names, selected steps, notes, gradient rows."""

    def __init__(self, d, max_steps, summarize):
        if max_steps is not None and (
            isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1
        ):
            raise OptionError(f"max_steps must be a positive int or None, got {max_steps!r}")
        summarize = check_choice(summarize, (True, False, "auto"), "summarize")
        self.d = d
        self.display = {n: sp.Symbol(s) for n, s in d.names.items() if n.args}
        top = d.names.get(d.target, "f")
        self.top = self.display.get(d.target, sp.Symbol(top))
        on = summarize is True or (summarize == "auto" and len(d.steps) > SUMMARY_THRESHOLD)
        self.notes: list[tuple[str, list[str]]] = []
        counts: dict = {}
        hidden: dict = {}
        first: dict = {}
        shown = []
        for i, step in enumerate(d.steps):
            kind = d.kind(step)
            first.setdefault(kind, step)
            counts[kind] = counts.get(kind, 0) + 1
            if on and counts[kind] > PER_KIND:
                hidden.setdefault(kind, []).append(step)
            else:
                shown.append(i)
        for steps in hidden.values():
            like = d.name(first[d.kind(steps[0])].node)
            rule = _rule_text(steps[0].rule, steps[0].node)
            text = f"{len(steps)} more steps like {like} ({rule}) not shown"
            self.notes.append((text, [d.name(s.node) for s in steps]))
        if max_steps is not None and len(shown) > max_steps:
            cut = shown[max_steps:]
            shown = shown[:max_steps]
            self.notes.append(
                (
                    f"{len(cut)} more steps not shown (max_steps={max_steps})",
                    [d.name(d.steps[i].node) for i in cut],
                )
            )
        self.steps = [self._step(i) for i in shown]
        self.wrt = list(d.wrt)
        if on and len(self.wrt) > MAX_GRADIENTS:
            self.notes.append(
                (
                    f"{len(self.wrt) - MAX_GRADIENTS} more gradients not shown",
                    [d.name(s) for s in self.wrt[MAX_GRADIENTS:]],
                )
            )
            self.wrt = self.wrt[:MAX_GRADIENTS]

    def symbol(self, node: sp.Basic) -> sp.Basic:
        return self.display.get(node, node)

    def _step(self, i: int) -> _StepView:
        d, step = self.d, self.d.steps[i]
        node, values = step.node, self.d.values
        partial = Partial(self.top, self.symbol(node))
        view = _StepView(
            index=i + 1,
            rule=_rule_text(step.rule, node),
            definition=node if node.args else None,
            value=_number(values, node),
            adjoint=(partial, []),
            parents=len(step.incoming),
        )
        contributions = d.contributions(step)
        terms = self._terms(contributions)
        chain = terms[0] if len(terms) == 1 else Terms(*terms)
        adjoint_value = d.adjoint_values.get(node)
        view.adjoint[1].extend(
            _items(
                chain,
                step.adjoint,
                None if adjoint_value is None else sp.Float(adjoint_value),
                display=self.display,
            )
        )
        if 1 < len(contributions) <= MAX_ADDED:
            for (parent, local, _), term in zip(contributions, terms, strict=True):
                pv, lv = d.adjoint_values.get(parent), values.get(local)
                number = None if pv is None or lv is None else sp.Float(pv * lv)
                view.added.append((partial, _items(term, number, display=self.display)))
        for child, local, _ in step.outgoing:
            lhs = Partial(self.symbol(node), self.symbol(child))
            view.local.append((lhs, _items(local, _number(values, local), display=self.display)))
        return view

    def _terms(self, contributions: list) -> list[sp.Basic]:
        # each contribution as "incoming gradient * local partial" (the chain rule's terms)
        terms: list[sp.Basic] = []
        for parent, local, _ in contributions:
            if parent is None:
                terms.append(sp.S.One)
            elif parent is self.d.target:  # the sweep's own node object
                terms.append(local)  # d target / d target = 1: the local partial alone
            else:
                terms.append(Chain(Partial(self.top, self.symbol(parent)), local))
        return terms

    def gradient_rows(self) -> list[tuple[sp.Basic, list, list]]:
        """(lhs, items printed with names, items printed without names) per gradient."""
        d, rows = self.d, []
        leaf_steps = {st.node: st for st in d.steps if not st.node.args}
        for s in self.wrt:
            raw = d.gradients[s]
            chain = []
            if s in leaf_steps:
                terms = self._terms(d.contributions(leaf_steps[s]))
                chain = _items(terms[0] if len(terms) == 1 else Terms(*terms), display=self.display)
            cap = 4 * PRINT_BUDGET
            simplified = d.simplified(s) if tree_size(raw, cap) <= cap else raw
            named = chain + _items(raw, display=self.display)
            plain = _items(simplified, display={})
            value = _number(d.values, raw)
            last = (named + plain)[-1:] or [sp.S.Zero]
            if value is not None and not last[0].is_Number:
                plain.append(value)
            rows.append((Partial(self.top, s), named, plain))
        return rows

    def title(self) -> str:
        d = self.d
        target = TextPrinter(self.display).show(d.target, root=True)
        wrt = ", ".join(d.name(s) for s in d.wrt) or "nothing"
        if len(d.wrt) > MAX_GRADIENTS:
            wrt = f"{len(d.wrt)} symbols"
        name = d.name(d.target)
        head = f"{name} = {target}" if d.target.args and len(target) < 80 else name
        steps = f"{len(d.steps)} step{'' if len(d.steps) == 1 else 's'}"
        return f"{head} with respect to {wrt} ({steps}, output first)"


# ---------------------------------------------------------------------------------------------
# the three formats
# ---------------------------------------------------------------------------------------------


def _tex_rows(view: _View, p: LatexNamePrinter, steps: list, notes: bool) -> list:
    # (row, gap after it?) pairs; a gap separates steps
    rows: list[list] = []

    def row(lhs: str, rel: str, items: list[str], note: str = "", always: bool = False) -> None:
        # the step's own note is in a heading where there is one; "local partial" always shows
        tail = f" && \\text{{{tex_text(note)}}}" if note and (notes or always) else ""
        shown = " = ".join(items) or rf"\text{{{TOO_LARGE}}}"
        rows.append([f"{lhs} &{rel} {shown}{tail}", False])

    for s in steps:
        note = f"{s.index}. {s.rule}"
        if s.definition is not None:
            items = [p.show(s.definition, root=True)]
            items += [p.show(s.value)] if s.value is not None else []
            row(p.show(view.symbol(s.definition)), "=", items, note)
            note = ""
        elif s.parents > 1:
            note += f", {s.parents} contributions added"
        for add_lhs, add_items in s.added:
            row(p.show(add_lhs), r"\mathrel{+}=", [p.show(i) for i in add_items])
        lhs, items = s.adjoint
        row(p.show(lhs), "=", [p.show(i) for i in items], note)
        for lhs, items in s.local:
            row(p.show(lhs), "=", [p.show(i) for i in items], "local partial", always=True)
        rows[-1][1] = True
    return rows


def _tex_gradients(view: _View, p: LatexNamePrinter) -> list:
    plain = LatexNamePrinter({})
    out = []
    for lhs, named, other in view.gradient_rows():
        items = _dedupe([p.show(i) for i in named] + [plain.show(i) for i in other])
        shown = " = ".join(items) or rf"\text{{{TOO_LARGE}}}"
        out.append([f"{p.show(lhs)} &= {shown}", False])
    return out


def _dedupe(items: list[str]) -> list[str]:
    return [s for i, s in enumerate(items) if i == 0 or s != items[i - 1]]


def _join(rows: list) -> str:
    parts = []
    for i, (row, gap) in enumerate(rows):
        parts.append(row)
        if i < len(rows) - 1:
            parts.append(" \\\\[4pt]\n" if gap else " \\\\\n")
    return "".join(parts)


def latex(
    d, *, standalone: bool = False, max_steps=None, summarize="auto", environment="align*"
) -> str:
    """The derivation as one LaTeX ``align*`` block (or ``aligned``), or a whole document.

    Args:
        d: a :class:`symgrad.Derivation`.
        standalone: return a complete document (``article`` with ``amsmath``).
        max_steps: see :func:`text`.
        summarize: see :func:`text`.
        environment: ``"align*"``, or ``"aligned"`` inside ``$$`` (for notebooks).

    >>> import sympy as sp
    >>> from symgrad import derive
    >>> x = sp.Symbol("x")
    >>> print(latex(derive(x**2), standalone=True).splitlines()[0])
    \\documentclass{article}
    """
    environment = check_choice(environment, ("align*", "aligned"), "environment")
    standalone = check_choice(standalone, (True, False), "standalone")
    view = _View(d, max_steps, summarize)
    p = LatexNamePrinter(view.display)
    rows = _tex_rows(view, p, view.steps, notes=True)
    rows += [[rf"&\text{{{tex_text(note)}}}", True] for note, _ in view.notes]
    rows += [[r"&\text{Gradients:}", False], *_tex_gradients(view, p)]
    block = f"\\begin{{{environment}}}\n{_join(rows)}\n\\end{{{environment}}}"
    if environment == "aligned":
        return f"$$\n{block}\n$$"
    if not standalone:
        return block
    return (
        "\\documentclass{article}\n\\usepackage{amsmath}\n\\allowdisplaybreaks\n"
        "\\begin{document}\n\\section*{Derivation}\n"
        f"Backward pass, output first: {len(d.steps)} steps.\n{block}\n\\end{{document}}\n"
    )


def markdown(d, *, max_steps=None, summarize="auto") -> str:
    """The derivation as Markdown: a heading per step and ``$$`` blocks of ``aligned`` maths.

    >>> import sympy as sp
    >>> from symgrad import derive
    >>> x = sp.Symbol("x")
    >>> print(markdown(derive(x**2)).splitlines()[2])
    **Step 1.** `f = x**2` (power rule)
    """
    view = _View(d, max_steps, summarize)
    p, t = LatexNamePrinter(view.display), TextPrinter(view.display)
    head, _, rest = view.title().partition(" with respect to ")
    out = [f"**Derivation of {md_text(head)}** with respect to {md_text(rest)}", ""]
    for s in view.steps:
        what = t.show(s.definition, root=True) if s.definition is not None else "leaf"
        name = t.show(view.symbol(s.definition)) if s.definition is not None else ""
        used = f", used by {s.parents} nodes" if s.parents > 1 else ""
        leaf = f"{md_code(t.show(s.adjoint[0].args[1]))} (leaf{used})"
        head = f"{md_code(f'{name} = {what}')} ({s.rule})" if name else leaf
        rows = _join(_tex_rows(view, p, [s], notes=False))
        out += [f"**Step {s.index}.** {head}", "", "$$", r"\begin{aligned}", rows]
        out += [r"\end{aligned}", "$$", ""]
    for note, names in view.notes:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        out += [f"*{md_text(f'{note}: {shown}')}*", ""]
    grads = _join(_tex_gradients(view, p))
    out += ["**Gradients**", "", "$$", r"\begin{aligned}", grads, r"\end{aligned}", "$$", ""]
    return "\n".join(out)


def _eq(printer: TextPrinter, items: list) -> str:
    return " = ".join(printer.show(i) for i in items) or TOO_LARGE


def text(d, *, max_steps=None, summarize="auto") -> str:
    """The derivation as plain text for a terminal: one block per step, then the gradients.

    Args:
        d: a :class:`symgrad.Derivation`.
        max_steps: show at most this many steps (default all that the summary keeps).
        summarize: ``True`` shows only the first steps of each kind and counts the others;
            ``"auto"`` (default) does so above ``SUMMARY_THRESHOLD`` steps.

    >>> import sympy as sp
    >>> from symgrad import derive
    >>> x = sp.Symbol("x")
    >>> print(text(derive(x**2)).splitlines()[-1])
        df/dx = 2*x
    """
    view = _View(d, max_steps, summarize)
    t = TextPrinter(view.display)
    out = [f"Derivation of {view.title()}", ""]
    for s in view.steps:
        value = f"    value {t.show(s.value)}" if s.value is not None else ""
        if s.definition is not None:
            name = t.show(view.symbol(s.definition))
            what = t.show(s.definition, root=True)
            out.append(f"[{s.index}] {name} = {what}    ({s.rule}){value}")
        else:
            extra = f", used by {s.parents} nodes" if s.parents > 1 else ""
            out.append(f"[{s.index}] {t.show(s.adjoint[0].args[1])} (leaf{extra}){value}")
        for lhs, items in s.added:
            out.append(f"    {t.show(lhs)} += {_eq(t, items)}")
        lhs, items = s.adjoint
        total = "    (contributions added) " if s.parents > 1 else "    "
        out.append(f"{total}{t.show(lhs)} = {_eq(t, items)}")
        texts = [_eq(t, items) for _, items in s.local]
        if len(texts) > 3 and len(set(texts)) == 1:
            # a wide sum: d(a_1 + ... + a_n)/da_i = 1 for every term
            out.append(f"    local partials: {texts[0]} for each of the {len(texts)} terms")
        elif texts:
            parts = "; ".join(
                f"{t.show(lhs)} = {tx}" for (lhs, _), tx in zip(s.local, texts, strict=True)
            )
            out.append(f"    local partials: {parts}")
    for note, names in view.notes:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        out += ["", f"... {note}: {shown}"]
    out += ["", "Gradients" if view.wrt else "Gradients: none (no wrt symbols)"]
    plain = TextPrinter({})
    for lhs, named, other in view.gradient_rows():
        items = _dedupe([t.show(i) for i in named] + [plain.show(i) for i in other])
        out.append(f"    {t.show(lhs)} = {' = '.join(items) or TOO_LARGE}")
    return "\n".join(out)


def latex_steps(d) -> tuple[list[tuple[str, str]], str]:
    r"""Every step as ``(rule, aligned block)`` (no summary), and the gradients as one block.

    For pages that show one step at a time (the explorer).

    >>> import sympy as sp
    >>> from symgrad import derive
    >>> x = sp.Symbol("x")
    >>> steps, grads = latex_steps(derive(3 * x))
    >>> steps[1]
    ('leaf', '\\begin{aligned}\n\\frac{\\partial f}{\\partial x} &= 3\n\\end{aligned}')
    """
    view = _View(d, None, False)
    p = LatexNamePrinter(view.display)

    def block(rows: list) -> str:
        return f"\\begin{{aligned}}\n{_join(rows)}\n\\end{{aligned}}"

    steps = [(s.rule, block(_tex_rows(view, p, [s], notes=False))) for s in view.steps]
    return steps, block(_tex_gradients(view, p))
