"""Packing a layer: isomorphic statements computed as one array operation.

A network written out over scalars repeats one statement per unit: ``z_k = b_k + sum_i w_ki x_i``
and ``a_k = max(0, z_k)`` forward, ``d_k = (sum_j w_jk e_j) heaviside(z_k)`` backward. Printed
one by one, a 16-unit layer costs 16 small NumPy calls where one would do. This pass (superword
level parallelism, as vectorising compilers call it) finds statements of one shape (the same
operations over the same kinds of operands) and computes each group, a *pack*, as one array
whose last axis holds the members (the batch axes stay in front, so per-member values broadcast
from the right like every other operand):

- an operand that is one node for every member is broadcast (``x[..., None]``);
- entries of one vector argument, one per member, are one gather ``w[..., idx]`` (a slice when
  evenly spaced);
- members of an earlier pack are its columns: the pack itself, or ``p[..., idx]``;
- a sum ``sum_i w[I[i, k]] * u_i`` whose operands ``u`` are the same for every member ``k`` is
  one matrix product ``U @ w[..., I]``;
- any other operand is stacked.

Members of one pack never depend on each other: a statement's class is numbered after the
classes of the statements it reads, so a dependency chain strictly increases class numbers.
Packs are scheduled (Kahn's algorithm over packs and single nodes, in program order otherwise)
after every operand of every member; each member stays a statement (its value is the view
``_P[..., k]``), printed only when something outside the packs reads it by name.

>>> import sympy as sp
>>> from symgrad.codegen.plan import plan
>>> w, x = sp.symbols("w:8"), sp.Symbol("x")
>>> prog = pack(plan([sp.exp(w[k] * x) * sp.sin(w[k] * x) for k in range(8)], [list(w), x]))
>>> len(prog.packs), prog.packs[0].rows
(1, 8)
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from .fuse import _Pair, _Terms, constant_name
from .plan import ARGUMENT, INLINED, LITERAL, SHADOW, STATEMENT, Program, program_of
from .printers import Inlined, _print_node, shared_templates

__all__ = ["Pack", "PackPrinter", "pack", "statement_printer"]

#: A class of isomorphic statements is packed when it has at least this many members.
PACK_MIN = 4

# tree nodes: ("op", node, kids) | ("lin", kids, arg, index rows, operands) | ("bcast", pos) |
# ("col", arg, entries) | ("rows", pack, rows) | ("stack", positions)


@dataclass(eq=False)
class Pack:
    """Isomorphic statements computed as one array (members along its last axis).

    Attributes:
        members: the members' positions in the program, row ``k`` first.
        tree: the packed expression over the members' operands (see the module docstring).

    >>> import sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> w, x = sp.symbols("w:4"), sp.Symbol("x")
    >>> outs = [sp.tanh(w[k] * x) ** 2 - sp.tanh(w[k] * x) for k in range(4)]
    >>> prog = pack(plan(outs, [list(w), x]))
    >>> prog.packs[0].tree[0], prog.packs[0].rows
    ('op', 4)
    """

    members: list[int]
    tree: Any

    @property
    def rows(self) -> int:
        """The number of members."""
        return len(self.members)


def pack(prog: Program, min_rows: int = PACK_MIN) -> Program:
    """``prog`` with its isomorphic statements grouped into packs (``prog`` when none is worth it).

    >>> import sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> x = sp.Symbol("x")
    >>> pack(plan(sp.exp(x), [x])).packs
    []
    """
    order, args_of, kind, source = prog.order, prog.args_of, prog.kind, prog.source
    n = len(order)
    cls = iso_classes(prog)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        if kind[i] == STATEMENT:
            groups.setdefault(cls[i], []).append(i)
    row_of: dict[int, tuple[int, int]] = {}  # member -> (pack, row)
    found: list[tuple[list[int], Any]] = []
    builder = TreeBuilder(prog, cls, row_of)  # reads row_of as packs are found
    for members in groups.values():  # classes in order of their first member: operands first
        if len(members) < min_rows:
            continue
        tree = builder.build(members)
        perm = _aligning(tree, len(members)) if tree is not None else None
        if perm is not None:  # members in the order of an operand pack's columns: no gather
            members = [members[k] for k in perm]
            tree = builder.build(members)
        if tree is None or _cost(tree) >= _cost_each(prog, cls, members[0]) * len(members):
            continue
        p = len(found)
        found.append((members, tree))
        row_of.update((m, (p, r)) for r, m in enumerate(members))
    if not found:
        prog.classes = cls  # a function of the program: the printer's reductions reuse it
        return prog
    new = _schedule(prog, found)
    if len(new) != n:  # not a DAG over packs: cannot happen (see the module docstring)
        return prog
    at = [0] * n
    for k, i in enumerate(new):
        at[i] = k
    packs = [Pack([at[m] for m in members], _renumber(tree, at)) for members, tree in found]
    classes = [cls[i] for i in new]
    prog2 = program_of(
        prog.args, prog.outputs, prog.spec, prog.top, prog.leaves, [order[i] for i in new],
        [[at[a] for a in args_of[i]] for i in new], [source[i] for i in new],
        [at[o] for o in prog.outs], packs, [kind[i] for i in new],
    )  # fmt: skip
    prog2.classes = classes
    return prog2


def iso_classes(prog: Program) -> list[int]:
    """Each node's isomorphism class: equal classes, equal computations over alike operands.

    Leaves: a vector argument's entries share one class per vector; scalar arguments, literals
    and statements that are not the node itself are their own class (a statement's class
    stands for it inside its readers); operands of sums and products are compared as multisets.
    """
    order, args_of, kind, source = prog.order, prog.args_of, prog.kind, prog.source
    table: dict[Any, int] = {}
    cls = [0] * len(order)
    for i, node in enumerate(order):
        src = source[i]
        if src is not None:
            key: Any = ("entry", src[0]) if src[1] >= 0 else ("arg", i)
        elif kind[i] == LITERAL:
            key = ("literal", node)
        else:
            kids = [cls[a] for a in args_of[i]]
            if node.is_Add or node.is_Mul:
                kids.sort()
            key = (type(node), kind[i] == STATEMENT, *kids)
        c = table.get(key)
        if c is None:
            c = table[key] = len(table)
        cls[i] = c
    return cls


class TreeBuilder:
    """Builds the packed tree of one class of statements from its members' expressions."""

    def __init__(self, prog: Program, cls: list[int], row_of: dict) -> None:
        self.prog, self.cls, self.row_of = prog, cls, row_of

    def kids(self, i: int) -> list[int]:
        a = self.prog.args_of[i]
        node = self.prog.order[i]
        if node.is_Add or node.is_Mul:
            return sorted(a, key=self.cls.__getitem__)  # stable: equal classes keep their order
        return list(a)

    def build(self, members: list[int]) -> Any:
        # the members are statements; their inlined operands are expanded in parallel
        return self.expand(members)

    def expand(self, at: list[int]) -> Any:
        prog = self.prog
        node = prog.order[at[0]]
        if isinstance(node, (sp.Tuple, sp.functions.elementary.piecewise.ExprCondPair)):
            return None  # conditions: printed in place by their reader, not packed
        kids = [self.kids(i) for i in at]
        lin = None
        linear = [j for j, t in enumerate(kids[0]) if self.scaled(t)] if node.is_Add else []
        if len(linear) >= 2:
            lin = self.linear(kids, linear)
            if lin is not None and lin[2][0] == "stack" and len(linear) < PACK_MIN:
                lin = None  # a few products of shared operands: cheaper than stacking them
        skip = set(linear) if lin is not None else set()
        parts: list[Any] = []
        for j in range(len(kids[0])):
            if j in skip:
                continue
            sub = self.operand([k[j] for k in kids])
            if sub is None:
                return None
            parts.append(sub)
        if lin is not None:
            return ("lin", parts, *lin)
        return ("op", node, parts)

    def scaled(self, t: int) -> bool:
        """Whether node ``t`` is an inlined ``w[j] * u``: a vector entry times another operand."""
        prog = self.prog
        pair = prog.args_of[t]
        if not (prog.kind[t] == INLINED and prog.order[t].is_Mul and len(pair) == 2):
            return False
        a, b = (_entry(prog, p) for p in pair)
        u = pair[1] if a else pair[0]
        return a != b and prog.kind[u] != INLINED

    def operand(self, at: list[int]) -> Any:
        prog = self.prog
        first = at[0]
        if all(i == first for i in at):
            return ("bcast", first)
        if prog.kind[first] in (INLINED, SHADOW) and all(
            prog.kind[i] in (INLINED, SHADOW) for i in at
        ):
            return self.expand(at)
        src = [prog.source[i] for i in at]
        if all(s is not None and s[1] >= 0 and s[0] == src[0][0] for s in src):
            return ("col", src[0][0], [s[1] for s in src])
        rows = [self.row_of.get(i) for i in at]
        if all(r is not None and r[0] == rows[0][0] for r in rows):
            return ("rows", rows[0][0], [r[1] for r in rows])
        if all(prog.kind[i] in (ARGUMENT, STATEMENT, LITERAL) for i in at):
            return ("stack", list(at))
        return None

    def linear(self, kids: list, linear: list[int]) -> Any:
        """``sum_i w[I[i, k]] * u_i`` over the kids at ``linear`` of every member, as one
        matrix product: ``(vector, I, operands)``, or None when the members' ``u`` differ."""
        prog = self.prog
        vec = None
        terms = []  # per member: {operand: entry}
        for k in kids:
            seen: dict[int, int] = {}
            for j in linear:
                pair = prog.args_of[k[j]]
                e, u = pair if _entry(prog, pair[0]) else pair[::-1]
                src = prog.source[e]
                if vec is None:
                    vec = src[0]
                if src[0] != vec or u in seen:
                    return None
                seen[u] = src[1]
            terms.append(seen)
        first = sorted(terms[0])
        rows = [self.row_of.get(u) for u in first]
        if all(r is not None and r[0] == rows[0][0] for r in rows):
            # operands from one earlier pack: each member must read the same columns of it
            p = rows[0][0]
            cols = sorted(r[1] for r in rows)
            members = self.row_of
            per: list[dict[int, int]] = []
            for t in terms:
                by_col = {members[u][1]: e for u, e in t.items() if members.get(u, (-1,))[0] == p}
                if len(by_col) != len(t) or sorted(by_col) != cols:
                    return None
                per.append(by_col)
            index = [[b[c] for b in per] for c in cols]
            return vec, index, ("rows", p, cols)
        if any(sorted(t) != first for t in terms):
            return None
        index = [[t[u] for t in terms] for u in first]
        return vec, index, ("stack", first)


def _aligning(tree: Any, m: int) -> list[int] | None:
    # the member order that reads the columns of an operand pack in order, if one does
    for leaf in tree_leaves(tree):
        if leaf[0] == "rows" and sorted(leaf[2]) == list(range(m)) and leaf[2] != list(range(m)):
            perm = [0] * m
            for k, r in enumerate(leaf[2]):
                perm[r] = k
            return perm
    return None


def _entry(prog: Program, i: int) -> bool:
    s = prog.source[i]
    return s is not None and s[1] >= 0


def _cost(tree: Any) -> int:
    # array operations of the packed tree (a gather or a stack is one)
    tag = tree[0]
    if tag == "op":
        return 1 + sum(_cost(t) for t in tree[2])
    if tag == "lin":
        return 2 + len(tree[1]) + sum(_cost(t) for t in tree[1])
    if tag == "rows":
        return 0
    return 0 if tag == "bcast" else 1


def _cost_each(prog: Program, cls: list[int], i: int) -> int:
    """Array operations of one member printed alone, its inlined operands included.

    A sum of many isomorphic inlined terms counts as one term and one sum: printed alone it
    is one packed sum (:meth:`PackPrinter.reduction`).
    """
    count, todo = 0, [i]
    while todo:
        j = todo.pop()
        count += 1
        inner = [a for a in prog.args_of[j] if prog.kind[a] in (INLINED, SHADOW)]
        if prog.order[j].is_Add and len(inner) >= PACK_MIN:
            by_class: dict[int, int] = {}
            for a in inner:
                by_class.setdefault(cls[a], a)
            if len(by_class) < len(inner):
                inner = list(by_class.values())
        todo += inner
    return count


def _schedule(prog: Program, found: list) -> list[int]:
    """A topological order with each pack's members together, otherwise in program order.

    Kahn's algorithm over units (packs and single nodes), always taking the ready unit of
    least priority (a node's position; a pack's, that of its last member). Program order is
    topological, so a scan of the units by priority finds them ready, except a unit reading
    a pack that comes later: such a unit waits, counting the units it still waits for, and
    joins a heap when they are done; a waiting unit passed by the scan has a lower priority
    than any unit ahead of it, so the heap is served first. Linear but for the waiting units.
    """
    n = len(prog.order)
    args_of = prog.args_of
    unit = list(range(n))  # a pack's unit is its first member
    last: dict[int, int] = {}  # a pack's last member -> the pack
    for p, (members, _) in enumerate(found):
        for m in members:
            unit[m] = members[0]
        last[members[-1]] = p
    members_of: dict[int, list[int]] = {members[0]: members for members, _ in found}
    done = [False] * n  # per unit
    waiting: dict[int, int] = {}  # a waiting unit -> the number of units it still waits for
    waiters: dict[int, list[int]] = {}  # a unit -> the waiting units that read it
    priority: dict[int, int] = {}  # of the waiting units
    heap: list[tuple[int, int]] = []
    out: list[int] = []

    def emit(u: int, nodes: list[int]) -> None:
        done[u] = True
        out.extend(nodes)
        if waiters:
            for v in waiters.pop(u, ()):
                waiting[v] -= 1
                if waiting[v] == 0:
                    del waiting[v]
                    heapq.heappush(heap, (priority[v], v))

    for i in range(n):
        p = last.get(i)
        if p is not None:
            nodes = found[p][0]
        elif unit[i] != i or i in members_of:
            continue  # a pack member other than the last: the pack is scheduled at its last
        else:
            nodes = [i]
        u = nodes[0]
        ready = p is None  # a single node: usually ready, checked without building a set
        if ready:
            for j in args_of[i]:
                if not done[unit[j]]:
                    ready = False
                    break
        if not ready:
            # the units this one reads that are not done yet
            blocked = {unit[j] for m in nodes for j in args_of[m] if not done[unit[j]]}
            blocked.discard(u)
            ready = not blocked
        if ready and not waiters and p is None:  # the commonest case, emit() inline
            done[i] = True
            out.append(i)
        elif ready:
            emit(u, nodes)
        else:
            priority[u] = i
            waiting[u] = len(blocked)
            for b in blocked:
                waiters.setdefault(b, []).append(u)
        while heap:
            _, v = heapq.heappop(heap)
            emit(v, members_of.get(v, [v]))
    return out


def _renumber(tree: Any, at: list[int]) -> Any:
    tag = tree[0]
    if tag == "op":
        return ("op", tree[1], [_renumber(t, at) for t in tree[2]])
    if tag == "lin":
        return (
            "lin",
            [_renumber(t, at) for t in tree[1]],
            tree[2],
            tree[3],
            _renumber(tree[4], at),
        )
    if tag == "bcast":
        return ("bcast", at[tree[1]])
    if tag == "stack":
        return ("stack", [at[i] for i in tree[1]])
    return tree


def tree_leaves(tree: Any) -> Any:
    tag = tree[0]
    if tag == "op":
        for t in tree[2]:
            yield from tree_leaves(t)
    elif tag == "lin":
        for t in tree[1]:
            yield from tree_leaves(t)
        yield from tree_leaves(tree[4])
    else:
        yield tree


def membership(prog: Program) -> tuple[dict[int, tuple[int, int]], list[int]]:
    """Each member's ``(pack, row)``, and the statement each inlined node is printed in."""
    member: dict[int, tuple[int, int]] = {}
    for p, pk in enumerate(prog.packs):
        for r, m in enumerate(pk.members):
            member[m] = (p, r)
    kind, args_of = prog.kind, prog.args_of
    host = [-1] * len(kind)
    for i in range(len(kind) - 1, -1, -1):
        if kind[i] == STATEMENT:
            host[i] = i
        for a in args_of[i]:
            if kind[a] == INLINED:
                host[a] = host[i]
    return member, host


class PackPrinter:
    """Prints the packs of a program for an array target (NumPy, JAX) during ``walk``.

    Args:
        prog: a packed program.
        printer: the target's printer.
        kid: the list ``walk`` fills with each node's printed form.
        text: prints a printed form (a name, a literal, a shadow) as text, marking the vector
            entries it names as read (``Fuser.text``).
        constants: module-level lines (index arrays are appended).

    >>> import sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> from symgrad.codegen.printers import NumPyTargetPrinter
    >>> w, x = sp.symbols("w:4"), sp.Symbol("x")
    >>> outs = [sp.tanh(w[k] * x) ** 2 - sp.tanh(w[k] * x) for k in range(4)]
    >>> prog = pack(plan(outs, [list(w), x]))
    >>> names = ["_a0_0", "_a0_1", "_a0_2", "_a0_3", "_a1"]
    >>> kid = [names[s[1] if s[1] >= 0 else 4] if s else None for s in prog.source]
    >>> printer = PackPrinter(prog, NumPyTargetPrinter(), kid, str, [])
    >>> first = prog.packs[0].members[0]
    >>> printer.text_of(first)
    (None, ['_a0m = _last(_a0)', '_P0 = numpy.tanh(_a0m[..., 0:4]*_a1[..., None])'])
    >>> kid[first]
    '_P0[..., 0]'
    """

    def __init__(self, prog: Program, printer: Any, kid: list, text: Any, constants: list):
        self.prog, self.printer, self.kid, self.text = prog, printer, kid, text
        self.constants = constants
        self.templates = shared_templates(printer)
        self.moved: set[int] = set()
        self.member, self.host = membership(prog)
        self.cls: list[int] | None = prog.classes  # isomorphism classes (computed when needed)
        self.outs = set(prog.outs)

    def text_of(self, i: int) -> Any:
        """``(text, lines)`` for node ``i`` when a pack prints it, else None.

        A member has no statement of its own: its readers read its column of the pack; the
        pack's statement comes with its first member. An inlined operand of a member prints
        nothing.
        """
        prog = self.prog
        where = self.member.get(i)
        if where is None:
            if prog.kind[i] == INLINED and self.host[i] in self.member:
                return _UNUSED, ()
            return None
        p, row = where
        pk = prog.packs[p]
        lines: list[str] = []
        if row == 0:
            body = self.tree(pk.tree, lines)
            lines.append(f"_P{p} = {body}")
        # read as a column of the pack at every use; an output gets a NumPy scalar, not a
        # 0-d view, when the pack has no batch axes
        self.kid[i] = f"_P{p}[..., {row}]" + ("[()]" if i in self.outs else "")
        return None, lines

    def tree(self, t: Any, lines: list) -> str:
        tag = t[0]
        if tag == "op":
            kids = [self.tree(k, lines) if k[0] != "bcast" else self.bcast(k[1]) for k in t[2]]
            return Inlined.of(_print_node(self.printer, self.templates, t[1], kids), t[1])
        if tag == "lin":
            _, parts, vec, index, operands = t
            w = f"{self.moved_vector(vec, lines)}[..., {self.index(index)}]"
            mm = f"_mm({self.tree(operands, lines)}, {w})"
            if not parts:
                return mm
            kids = [self.tree(k, lines) if k[0] != "bcast" else self.bcast(k[1]) for k in parts]
            out = Inlined(" + ".join([*(_paren(k, _ADD) for k in kids), mm]))
            out.prec = _ADD
            return out
        if tag == "bcast":
            return self.bcast(t[1])
        if tag == "col":
            return f"{self.moved_vector(t[1], lines)}[..., {self.index(t[2])}]"
        if tag == "rows":
            return self.rows_text(t[1], t[2])
        return f"_cat([{', '.join(self.text(self.kid[i]) for i in t[1])}])"

    def reduction(self, i: int, node: sp.Basic, kids: list) -> tuple[list, list] | None:
        """A sum with many isomorphic terms (``sum_k p_k**2``): the terms as one packed sum.

        Returns:
            ``(kids, lines)``: the sum's other terms and ``_total(packed)``, and the lines the
            packed text needs; None when no class of terms is worth packing.
        """
        prog = self.prog
        if not node.is_Add or len(kids) < PACK_MIN:
            return None
        args = prog.args_of[i]
        if self.cls is None:
            self.cls = iso_classes(prog)
        by_class: dict[int, list[int]] = {}
        for j, a in enumerate(args):
            if prog.kind[a] == INLINED and not prog.pair[a]:  # products fuse into _dot
                by_class.setdefault(self.cls[a], []).append(j)
        lines: list[str] = []
        packed: set[int] = set()
        totals: list[str] = []
        for js in by_class.values():
            if len(js) < PACK_MIN:
                continue
            tree = TreeBuilder(prog, self.cls, self.member).operand([args[j] for j in js])
            if tree is None or tree[0] not in ("op", "lin", "col"):
                continue
            totals.append(f"_total({self.tree(tree, lines)})")
            packed.update(js)
        if not totals:
            return None
        return [k for j, k in enumerate(kids) if j not in packed] + totals, lines

    def rows_of(self, kids: list, at: list, lines: list) -> str | None:
        """``kids`` stacked along a new first axis from packs, or None when no pack helps.

        Runs of one pack's members are its columns; a run of isomorphic inlined nodes (an
        L2 term's ``p_k**2``) is packed on the spot; anything else is stacked as ``_rows``.

        Args:
            kids: printed forms.
            at: their positions in the program (None where unknown).
            lines: where statements the text needs go (before the statement that reads it).
        """
        n = len(kids)
        if n < PACK_MIN:
            return None
        member = self.member
        segments: list[str] = []
        helped = False
        i = 0
        while i < n:
            where = member.get(at[i]) if at[i] is not None else None
            j = i + 1
            if where is not None:
                while j < n and at[j] is not None and member.get(at[j], (-1,))[0] == where[0]:
                    j += 1
                rows = [member[a][1] for a in at[i:j]]
                segments.append(f"_first({self.rows_text(where[0], rows)})")
                helped = True
            else:
                while j < n and (at[j] is None or at[j] not in member):
                    j += 1
                text = self.alike(at[i:j], lines)
                helped = helped or text is not None
                if text is None:
                    text = f"_rows([{', '.join(self.text(k) for k in kids[i:j])}])"
                segments.append(text)
            i = j
        if not helped:
            return None
        return segments[0] if len(segments) == 1 else f"_join([{', '.join(segments)}])"

    def alike(self, at: list, lines: list) -> str | None:
        # isomorphic inlined nodes (or entries of one vector) as one packed operand
        if len(at) < PACK_MIN or None in at:
            return None
        if self.cls is None:
            self.cls = iso_classes(self.prog)
        c = self.cls[at[0]]
        if any(self.cls[a] != c for a in at):
            return None
        tree = TreeBuilder(self.prog, self.cls, self.member).operand(list(at))
        if tree is None or tree[0] not in ("op", "lin", "col"):
            return None
        return f"_first({self.tree(tree, lines)})"

    def rows_text(self, p: int, rows: list[int]) -> str:
        """Columns ``rows`` of pack ``p`` (the pack itself when they are all, in order)."""
        if rows == list(range(self.prog.packs[p].rows)):
            return f"_P{p}"
        return f"_P{p}[..., {self.index(rows)}]"

    def bcast(self, i: int) -> Any:
        k = self.kid[i]
        if isinstance(k, sp.Basic) and k.is_Number:
            return k
        return f"{_paren(self.text(k), _ATOM)}[..., None]"

    def moved_vector(self, vec: int, lines: list) -> str:
        # a vector argument with its entries on the last axis (batch axes first, as packs)
        if vec not in self.moved:
            self.moved.add(vec)
            lines.append(f"_a{vec}m = _last(_a{vec})")
        return f"_a{vec}m"

    def index(self, values: list) -> str:
        flat = [v for row in values for v in row] if isinstance(values[0], list) else values
        if not isinstance(values[0], list):
            run = _run(flat)
            if run is not None:
                return run
        name = constant_name(self.constants, "_I")
        text = f'_indices("{",".join(map(str, flat))}")'
        if isinstance(values[0], list):
            text += f".reshape({len(values)}, {len(values[0])})"
        self.constants.append(f"{name} = {text}")
        return name


def _run(idx: list[int]) -> str | None:
    # an evenly spaced index list as a slice (a view, no copy)
    if len(idx) == 1:
        return f"{idx[0]}:{idx[0] + 1}"
    step = idx[1] - idx[0]
    if step <= 0 or any(b - a != step for a, b in itertools.pairwise(idx)):
        return None
    return f"{idx[0]}:{idx[-1] + 1}" + (f":{step}" if step > 1 else "")


_ADD, _ATOM = PRECEDENCE["Add"], PRECEDENCE["Atom"]
_UNUSED = Inlined("")  # the text of a member's inlined operand (the pack prints the member)


def _paren(text: Any, prec: int) -> str:
    # text as an operand of an operator of precedence ``prec``
    if isinstance(text, sp.Basic):
        return str(text) if text.is_Number and text >= 0 else f"({text})"
    if text.isidentifier():
        return text
    if type(text) is Inlined and text.prec >= prec and prec < _ATOM:
        return text
    return f"({text})"


def statement_printer(
    prog: Program, fuser: Any, mean: bool, constants: list | None = None
) -> tuple[Any, list, list[int]]:
    """The ``text_of`` of :func:`~symgrad.codegen.plan.walk` for the array targets, the list
    of printed forms to give ``walk`` (its packs read it) and the nodes it need not visit
    (``walk``'s ``skip``: the operands of the packs' members, which the packs print).

    A node is printed by its pack (a member, or a sum of many isomorphic terms), left for its
    reader to fuse (a single-use product: ``_dot``/``_gather``; a batch-mean output's sum,
    averaged term by term), or printed by the :class:`~symgrad.codegen.fuse.Fuser`, whose
    factor lists then read packs too. The packs' index arrays go to ``constants`` (the
    module-level lines; the Fuser's own by default).

    >>> import sympy as sp
    >>> from symgrad.codegen.fuse import Fuser
    >>> from symgrad.codegen.plan import plan, walk
    >>> from symgrad.codegen.printers import NumPyTargetPrinter
    >>> x = sp.Symbol("x")
    >>> prog = plan(sp.exp(x) + x, [x])
    >>> fuser = Fuser(NumPyTargetPrinter(), {}, {})
    >>> text_of, kid, skip = statement_printer(prog, fuser, False)
    >>> walk(prog, ["_a0", None, None], [], text_of, kid, skip)[1][-1]
    '_a0 + numpy.exp(_a0)'
    """
    kid: list = []
    lines = fuser.constants if constants is None else constants
    packs = PackPrinter(prog, fuser.printer, kid, fuser.text, lines)
    fuser.packed = packs.rows_of
    pair, kind, args_of = prog.pair, prog.kind, prog.args_of
    # batch-mean leaves read nowhere else: their sums may be averaged term by term
    leaves = {o for o in prog.outs if kind[o] == INLINED} if mean else set()

    member, host = packs.member, packs.host

    def text_of(i: int, node: sp.Basic, kids: list) -> tuple[Any, Any]:
        lines: list[str] = []
        if kind[i] == INLINED and host[i] in member:
            return _UNUSED, ()  # an operand of a pack's member: the pack prints it
        if i in member:
            return packs.text_of(i)
        total = packs.reduction(i, node, kids) if node.is_Add else None
        if total is not None:
            kids, lines = total
        if pair[i] and not lines:
            # a product read once: printed by its reader, which may fuse it (_dot, _gather)
            return _Pair(node, kids, args_of[i]), ()
        if i in leaves and not lines and node.is_Add and any(type(k) is _Pair for k in kids):
            return _Terms(node, kids, args_of[i]), ()
        text = fuser.node(node, kids, inline=kind[i] == INLINED)
        lines += fuser.lines
        fuser.lines = []
        return text, lines

    skip = [i for i, h in enumerate(host) if h != i and h in member] if member else []
    return text_of, kid, skip
