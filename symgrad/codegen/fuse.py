"""Fusing many scalar products into one vectorised NumPy operation.

A gradient written out over scalars is full of single-use binary products: a sum
``w1*h1 + w2*h2 + ... + wn*hn`` (a neuron's pre-activation, or the adjoint summed over a
layer's outgoing weights), and gradient vectors whose entries are ``adjoint * input``. Printed
term by term, each costs two NumPy calls per evaluation and several AST nodes in Python's
``compile()``. The :class:`Fuser` prints them instead as

- ``_dot(left, right)``: one product of the stacked factors, summed over the first axis;
- ``_gather(shape, where, others, left, right)``: a stacked output whose product entries are
  ``left[i] * right[j]`` for index arrays kept as module-level constants.

A factor list that is a run of one vector argument's entries (``w[k]`` for an arithmetic
progression of ``k``) is printed as a slice of that argument; any other list is stacked once,
in a statement of its own, and shared by every later sum that reads the same nodes.

>>> import sympy as sp
>>> from symgrad.codegen.printers import NumPyTargetPrinter
>>> ws, hs = sp.symbols("w:8"), sp.symbols("h:8")
>>> fuser = Fuser(NumPyTargetPrinter(), {}, {f"_w{k}": ("_w", k) for k in range(8)})
>>> pairs = [_Pair(w * h, [f"_w{k}", f"_h{k}"], [k, 8 + k]) for k, (w, h) in enumerate(zip(ws, hs))]
>>> fuser.node(sp.Add(*[w * h for w, h in zip(ws, hs)]), pairs)
'_dot(_w[0:8], _v0)'
>>> fuser.lines
['_v0 = _rows([_h0, _h1, _h2, _h3, _h4, _h5, _h6, _h7])']
"""

from __future__ import annotations

import itertools
from typing import Any

import sympy as sp

from .printers import Inlined, NumPyTargetPrinter, _doprint, _print_node

__all__ = ["FUSE_MIN", "Fuser", "constant_name"]

#: A sum with at least this many single-use binary products is printed as one ``_dot``, and a
#: stacked output with at least this many product entries as one ``_gather``.
FUSE_MIN = 8


class _Pair:
    """A product of two factors read once, not printed yet: its reader may fuse it.

    ``kids`` are the factors as the code generator prints them (names, inlined texts,
    literals, other pairs); ``positions`` are the factor nodes' positions in the DAG.
    """

    __slots__ = ("kids", "node", "positions")

    def __init__(self, node: sp.Basic, kids: list, positions: list[int]) -> None:
        self.node, self.kids, self.positions = node, kids, positions


class _Terms:
    """A sum read once by a batch-mean output, not printed yet: by linearity of the mean, the
    output may average its terms layer by layer (``mean(a*b + c*d) = mean(a*b) + mean(c*d)``),
    each layer a fused ``_gather_mean``. Anywhere else it is printed as a plain sum."""

    __slots__ = ("kids", "node", "positions")

    def __init__(self, node: sp.Basic, kids: list, positions: list[int] | None = None) -> None:
        self.node, self.kids = node, kids
        self.positions = positions if positions is not None else [None] * len(kids)


class Fuser:
    """Prints nodes over their arguments, fusing single-use products where many meet.

    Args:
        printer: the NumPy printer.
        templates: its template cache (see :func:`symgrad.codegen.printers._print_node`).
        elements: the name of each vector argument's entry -> ``(vector name, index)``.

    Attributes:
        lines: statements (stacked factor lists) to emit before the next statement that reads
            the texts returned so far; the caller empties it.
        constants: module-level lines (the index arrays of ``_gather``).

    >>> import sympy as sp
    >>> from symgrad.codegen.printers import NumPyTargetPrinter
    >>> a, xs = sp.Symbol("a"), sp.symbols("x:8")
    >>> fuser = Fuser(NumPyTargetPrinter(), {}, {})
    >>> products = [_Pair(a * x, ["_a", f"_x{k}"], [0, 1 + k]) for k, x in enumerate(xs)]
    >>> fuser.stacked((9,), [*products, "_b"])
    '_gather((9,), _g0, [_b], _v0, _v1)'
    >>> fuser.lines
    ['_v0 = _rows([_a])', '_v1 = _rows([_x0, _x1, _x2, _x3, _x4, _x5, _x6, _x7])']
    >>> fuser.constants
    ['_g0 = (_indices("0,1,2,3,4,5,6,7"), _indices("0,0,0,0,0,0,0,0"), ..., _indices("8"))']
    """

    def __init__(
        self, printer: NumPyTargetPrinter, templates: dict, elements: dict[str, tuple[str, int]]
    ):
        self.printer, self.templates, self.elements = printer, templates, elements
        self.lines: list[str] = []
        self.constants: list[str] = []
        self._stacked: dict[tuple[int, ...], str] = {}
        #: the vector-entry names printed so far (entries read only through slices are not)
        self.used: set[str] = set()
        #: ``packed(kids, positions, lines)``: a stacked text from packs, or None (``pack.py``)
        self.packed: Any = None

    def _mark(self, kids: list, into: set | None = None) -> None:
        used = self.used if into is None else into
        for k in kids:
            if type(k) is str:
                if k in self.elements:
                    used.add(k)
            elif type(k) is Inlined:
                used.update(k.marks)
            elif isinstance(k, sp.Basic) and not k.is_Number:  # a shadow: -name, a tuple, ...
                used.update(s.name for s in k.free_symbols if s.name in self.elements)

    def text(self, kid: Any) -> str:
        """A factor as text: a pair is printed as a plain product."""
        if type(kid) is _Pair or type(kid) is _Terms:
            return Inlined.of(self.node(kid.node, kid.kids), kid.node)  # a product never fuses
        self._mark([kid])  # a name, or a shadow over names (-name): its entries are read
        if isinstance(kid, str):
            return kid
        return _doprint(self.printer, kid)

    def node(self, node: sp.Basic, kids: list, inline: bool = False) -> str:
        """``node`` printed over ``kids``; a sum of many single-use products becomes a ``_dot``.

        With ``inline`` (a node printed inside its reader), the vector entries it names are
        marked as read only when its text is (see :class:`Inlined`): a reader that computes it
        otherwise (a pack) does not unpack them.
        """
        if inline and not any(type(k) in (_Pair, _Terms) for k in kids):
            marks: set[str] = set()
            self._mark(kids, marks)
            out = Inlined.of(_print_node(self.printer, self.templates, node, kids), node)
            out.marks = frozenset(marks)
            return out
        if any(type(k) is _Terms for k in kids):
            kids = [self.text(k) if type(k) is _Terms else k for k in kids]
        pairs = [k for k in kids if type(k) is _Pair]
        if not pairs:
            self._mark(kids)
            return _print_node(self.printer, self.templates, node, kids)
        if node.is_Add and len(pairs) >= FUSE_MIN:
            dot = f"_dot({self._factors(pairs, 0)}, {self._factors(pairs, 1)})"
            rest = [k for k in kids if type(k) is not _Pair]
            self._mark(rest)
            if not rest:
                return dot
            return _print_node(self.printer, self.templates, node, [*rest, dot])
        kids = [self.text(k) if type(k) is _Pair else k for k in kids]
        self._mark(kids)
        return _print_node(self.printer, self.templates, node, kids)

    def stacked(
        self, shape: tuple[int, ...], kids: list, mean: bool = False, positions: list | None = None
    ) -> str:
        """A rectangular output of ``shape`` from its flat leaves: ``_stack`` or ``_gather``.

        With ``mean``, the output's batch mean (``_gather_mean`` never forms the per-sample
        products: their means are entries of one matrix product); entries that are sums
        (:class:`_Terms`) are averaged term by term, one fused layer per term. ``positions``:
        the leaves' positions in the program (None where unknown), for :attr:`packed`.
        """
        placed = [None] * len(kids) if positions is None else positions
        if mean and any(type(k) is _Terms for k in kids):
            terms = [_layered(k, a) for k, a in zip(kids, placed, strict=True)]
            layers = [
                [t[j] if j < len(t) else (sp.S.Zero, None) for t in terms]
                for j in range(max(len(t) for t in terms))
            ]
            return " + ".join(
                f"({self.stacked(shape, [k for k, _ in layer], True, [a for _, a in layer])})"
                for layer in layers
            )
        pairs = [k for k in kids if type(k) is _Pair]
        if len(pairs) < FUSE_MIN:
            text = f"_stack({shape}, [{', '.join(self.text(k) for k in kids)}])"
            return f"_batch_mean({text}, {len(shape)})" if mean else text
        at = [pos for pos, k in enumerate(kids) if type(k) is _Pair]
        rest = [pos for pos, k in enumerate(kids) if type(k) is not _Pair]
        sides = []
        for side in (0, 1):
            # each distinct factor is stacked once; the index array picks it per entry
            first: dict[int, int] = {}
            unique: list[_Pair] = []
            picks = []
            for p in pairs:
                key = p.positions[side]
                if key not in first:
                    first[key] = len(unique)
                    unique.append(p)
                picks.append(first[key])
            sides.append((self._factors(unique, side), picks))
        everything = list(range(len(kids)))
        for one, every in ((0, 1), (1, 0)):
            # every entry one factor times the next entry of a list (an L2 term's c * p)
            if at == everything and not any(sides[one][1]) and sides[every][1] == everything:
                left, right = sides[one][0], sides[every][0]
                return f"_scaled({shape}, {left}, {right}, {mean})"
        g = f"_g{len(self.constants)}"
        where = (at, sides[0][1], sides[1][1], rest)
        self.constants.append(f"{g} = ({', '.join(_index_text(w) for w in where)})")
        others = None
        if self.packed is not None and len(rest) >= FUSE_MIN and None not in placed:
            others = self._shared([kids[p] for p in rest], tuple(placed[p] for p in rest))
        if others is None:
            others = f"[{', '.join(self.text(kids[pos]) for pos in rest)}]"
        call = "_gather_mean" if mean else "_gather"
        blocks = _blocks(sides[0][1], sides[1][1], at) if mean else None
        extra = ""
        if blocks is not None:
            b = f"_b{len(self.constants)}"
            self.constants.append(f"{b} = {blocks}")
            extra = f", blocks={b}"
        return f"{call}({shape}, {g}, {others}, {sides[0][0]}, {sides[1][0]}{extra})"

    def _factors(self, pairs: list[_Pair], side: int) -> str:
        """One side's factors as one stacked operand: a slice, or a shared stacked list."""
        kids = [p.kids[side] for p in pairs]
        run = _run([self.elements.get(k) if type(k) is str else None for k in kids])
        if run is not None:
            return run
        return self._shared(kids, tuple(p.positions[side] for p in pairs))

    def _shared(self, kids: list, key: tuple) -> str:
        # the nodes at positions ``key`` stacked once, in a statement every reader shares
        name = self._stacked.get(key)
        if name is None:
            name = self._stacked[key] = f"_v{len(self._stacked)}"
            self.lines.append(f"{name} = {self.rows_text(kids, list(key))}")
        return name

    def rows_text(self, kids: list, at: list | None = None) -> str:
        """``kids`` stacked along a new first axis: ``_rows([...])``, or the packs' columns.

        Args:
            kids: printed forms.
            at: their positions in the program (None where unknown), for :attr:`packed`.
        """
        if self.packed is not None and at is not None:
            text = self.packed(kids, at, self.lines)
            if text is not None:
                return text
        if len(kids) >= FUSE_MIN and all(isinstance(k, sp.Basic) and k.is_Number for k in kids):
            # numbers only (an L2 term's coefficients): one module-level array
            name = constant_name(self.constants, "_K")
            values = ", ".join(_doprint(self.printer, k) for k in kids)
            self.constants.append(f"{name} = _rows([{values}])")
            return name
        return f"_rows([{', '.join(self.text(k) for k in kids)}])"


def constant_name(constants: list[str], prefix: str) -> str:
    """The next free name ``prefix<k>`` among a generated module's constant lines.

    >>> constant_name(["_K0 = 1", "_I0 = 2"], "_K")
    '_K1'
    """
    return f"{prefix}{sum(1 for c in constants if c.startswith(prefix))}"


def _layered(kid: Any, position: int | None) -> list[tuple[Any, int | None]]:
    # An entry's terms (with their positions) in the order its layer is chosen: products of
    # two computed factors first, then other terms, then products with a number (an L2 term's
    # c*p) last, so that alike terms of many entries meet in one layer (c*p[k] for every k:
    # one slice of p).
    if type(kid) is not _Terms:
        return [(kid, position)]
    ranks: tuple[list, list, list] = ([], [], [])  # a stable sort by rank, in one pass
    for k, a in zip(kid.kids, kid.positions, strict=True):
        ranks[(2 if _has_number(k) else 0) if type(k) is _Pair else 1].append((k, a))
    return ranks[0] + ranks[1] + ranks[2]


#: A batch mean of products is computed block by block when the blocks' area is at most this
#: fraction of the full product of the two factor lists, in at most :data:`BLOCKS` blocks, and
#: the full product has at least :data:`BLOCK_MIN` entries (below, one product and one gather
#: cost less than several: micrograd's demo, 33 x 34).
BLOCK_AREA, BLOCKS, BLOCK_MIN = 0.5, 16, 4096


def _blocks(left: list[int], right: list[int], at: list[int]) -> str | None:
    """The products ``left[k] x right[k]`` as rectangles of left rows x right rows (text).

    A gradient's weight entries pair each layer's adjoints with that layer's inputs only: the
    full product of all adjoints with all inputs is mostly entries no output reads (3/4 of it
    for a 2-h-h-1 network). Left rows that pair with the same right rows form one block, one
    matrix product each; ``_gather_mean`` places the entries the outputs read (all of a block,
    row by row, when they are its every entry in that order) at their places ``at``. None
    when the blocks would save little.

    >>> print(_blocks([0, 0, 1, 1], [0, 1, 0, 1], [0, 1, 2, 3]))
    None
    >>> pairs = [(i, j) for i in range(64) for j in range(64)] + [(64 + i, 64) for i in range(64)]
    >>> text = _blocks([i for i, _ in pairs], [j for _, j in pairs], list(range(len(pairs))))
    >>> text.count("slice("), text.count("None")
    (4, 4)
    """
    cols: dict[int, set[int]] = {}
    for lf, rt in zip(left, right, strict=True):
        cols.setdefault(lf, set()).add(rt)
    rows_of: dict[tuple[int, ...], list[int]] = {}
    for lf, rs in cols.items():
        rows_of.setdefault(tuple(sorted(rs)), []).append(lf)
    full = (max(left) + 1) * (max(right) + 1)
    if not 2 <= len(rows_of) <= BLOCKS or full < BLOCK_MIN:
        return None
    if sum(len(c) * len(r) for c, r in rows_of.items()) > BLOCK_AREA * full:
        return None
    place: dict[int, tuple[int, dict, dict]] = {}  # left row -> (block, row places, col places)
    blocks: list[tuple[list[int], list[int], list[int], list[int], list[int]]] = []
    for cs, rows in rows_of.items():
        rows.sort()
        rpos = {lf: i for i, lf in enumerate(rows)}
        cpos = {rt: j for j, rt in enumerate(cs)}
        place.update((lf, (len(blocks), rpos, cpos)) for lf in rows)
        blocks.append((rows, list(cs), [], [], []))
    for k, (lf, rt) in enumerate(zip(left, right, strict=True)):
        b, rpos, cpos = place[lf]
        blocks[b][2].append(rpos[lf])
        blocks[b][3].append(cpos[rt])
        blocks[b][4].append(at[k])
    texts, places = [], []
    for rows, cs, li, ri, outs in blocks:
        width = len(cs)
        whole = [i * width + j for i, j in zip(li, ri, strict=True)] == list(
            range(len(rows) * width)
        )
        picks = "None, None" if whole else f"{_index_text(li)}, {_index_text(ri)}"
        texts.append(f"({_range_text(rows)}, {_range_text(cs)}, {picks})")
        places += outs
    return f"(({', '.join(texts)},), {_index_text(places)})"


def _range_text(values: list[int]) -> str:
    # consecutive indices as a slice (a view), any others as an index array
    if values == list(range(values[0], values[-1] + 1)):
        return f"slice({values[0]}, {values[-1] + 1})"
    return _index_text(values)


def _has_number(pair: _Pair) -> bool:
    return any(isinstance(k, sp.Basic) and k.is_Number for k in pair.kids)


def _index_text(values: list[int]) -> str:
    # an index array as one string constant: cheap to compile however long
    return f'_indices("{",".join(map(str, values))}")'


def _run(entries: list[tuple[str, int] | None]) -> str | None:
    """``vector[start:stop:step]`` when the entries are an arithmetic run of one vector."""
    if None in entries or len({vec for vec, _ in entries}) != 1:  # type: ignore[misc]
        return None
    vec = entries[0][0]  # type: ignore[index]
    idx = [k for _, k in entries]  # type: ignore[misc]
    if len(idx) == 1:
        return f"{vec}[{idx[0]}:{idx[0] + 1}]"
    step = idx[1] - idx[0]
    if step == 0 or any(b - a != step for a, b in itertools.pairwise(idx)):
        return None
    stop = idx[-1] + step
    if stop < 0:
        return f"{vec}[{idx[0]}::{step}]"
    return f"{vec}[{idx[0]}:{stop}]" if step == 1 else f"{vec}[{idx[0]}:{stop}:{step}]"
