"""The C source of a kernel: statements, functions, translation units (the C target's planner).

The outputs are linearised into unique DAG nodes (:func:`symgrad.graph.topo_order`); each node
becomes one statement ``const double tK = ...;`` printed by :class:`~.c_printer.CPrinter` over
the names of its arguments. A kernel of at most :data:`SINGLE` statements is one function with
one loop over the batch. A larger one is cut into chunks of :data:`CHUNK` statements, each a
function of its own, and the chunks into translation units of :data:`UNIT` chunks, which the
builder compiles in parallel, each at the optimisation level its size and kind allow (an
optimiser's time grows faster than linearly in function size; small functions keep it linear
in the program). A value read by a later chunk passes through a scratch array whose slots are
reused once the value is dead; a chunk writes the outputs it computes itself.

Arithmetic-only kernels (``+ - * /``, max, min, heaviside, sign: ReLU networks) are printed as
a loop over four samples at a time (GCC/Clang vector extensions over the same statement text)
when the CPU has AVX, chunked or not.

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> program = generate([x, [y]], [x * y + sp.tanh(x), x - y], "k")
>>> program.n_stmts, program.masks, len(program.units)
(5, [3, 3], 1)
"""

from __future__ import annotations

import re
from typing import NamedTuple

import sympy as sp

from ..errors import ArgumentError
from ..graph import rebuild, topo_order
from .c_printer import PRELUDE, CPrinter, print_c

__all__ = ["CHUNK", "SIMD_LIMIT", "SINGLE", "UNIT", "CProgram", "generate"]

#: Kernels up to this many statements are one function (the optimiser sees all of it: every
#: value stays in a register); micrograd's demo (2-16-16-1, 1,064 statements) is one.
SINGLE = 1200
#: Statements per C function in larger kernels. gcc 12's time and memory per statement grow
#: with function size (8,000 statements of a 2-64-64-1 gradient, -O1: 4.6 s in functions of 100
#: statements, 8.4 s in functions of 1,000, 23 s in functions of 4,000; the 4-sample vector
#: code 6.9 s / 20.5 s and 1 GB at 1,000), so functions stay small.
CHUNK = 250
#: Chunks per translation unit (compiled in parallel, each at its own optimisation level):
#: ~8,000 statements, 110-330 MB of compiler memory each.
UNIT = 32
#: Arithmetic kernels up to this many statements get the 4-sample SIMD loop (larger ones keep
#: the scalar loop: the vector code's compile time stops paying for itself).
SIMD_LIMIT = 400_000

_INLINE = (sp.Tuple, sp.functions.elementary.piecewise.ExprCondPair)
_TOKEN = re.compile(r"_P(\d+)_")
_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")
# The SIMD loop reuses the scalar statements' text: inside it, arithmetic operators work on
# vectors (and on a vector with a scalar), the sg_ helpers are macros for their vector versions,
# and SG_V() splats a scalar.
_SIMD_OPS = {"sg_max": 2, "sg_min": 2, "sg_heaviside": 2, "sg_sign": 1}

SIMD_PRELUDE = """\
typedef double sg_vd __attribute__((vector_size(32)));
typedef long long sg_vl __attribute__((vector_size(32)));
static inline sg_vd sg_splat(double x) { return (sg_vd){x, x, x, x}; }
static inline sg_vd sg_same(sg_vd x) { return x; }
/* x is written once (a statement expression): nested sg_max(sg_max(...), ...) stays linear */
#define SG_V(x) __extension__({ __auto_type sg_v_ = (x); \
    _Generic(sg_v_, double: sg_splat, default: sg_same)(sg_v_); })
static inline sg_vd sg_sel(sg_vl m, sg_vd a, sg_vd b) {
    return (sg_vd)((m & (sg_vl)a) | (~m & (sg_vl)b));
}
static inline sg_vd sg_vmax(sg_vd a, sg_vd b) { return sg_sel((a > b) | (a != a), a, b); }
static inline sg_vd sg_vmin(sg_vd a, sg_vd b) { return sg_sel((a < b) | (a != a), a, b); }
static inline sg_vd sg_vheaviside(sg_vd x, sg_vd h0) {
    return sg_sel(x > 0, sg_splat(1.0), sg_sel(x < 0, sg_splat(0.0), sg_sel(x == 0, h0, x)));
}
static inline sg_vd sg_vsign(sg_vd x) {
    const sg_vd zero = sg_splat(0.0);
    return sg_sel(x > 0, sg_splat(1.0), sg_sel(x < 0, sg_splat(-1.0), sg_sel(x == 0, zero, x)));
}
/* lanes past the end of the batch repeat its last sample; their results are never stored */
static inline sg_vd sg_load(const double *p, int64_t c, int64_t i, int64_t n) {
    if (c == 0) return sg_splat(*p);
    sg_vd r;
    if (c == 1 && i + 4 <= n) { __builtin_memcpy(&r, p + i, sizeof r); return r; }
    for (int l = 0; l < 4; ++l) r[l] = p[(i + l < n ? i + l : n - 1) * c];
    return r;
}
static inline void sg_store(double *p, sg_vd x, int64_t i, int64_t n) {
    if (i + 4 <= n) { __builtin_memcpy(p + i, &x, sizeof x); return; }
    for (int l = 0; i + l < n; ++l) p[i + l] = x[l];
}
static inline sg_vd sg_valid(int64_t i, int64_t n) {
    const sg_vl m = {-(i < n), -(i + 1 < n), -(i + 2 < n), -(i + 3 < n)};
    return (sg_vd)m;
}
#define sg_max(x, y) sg_vmax(SG_V(x), SG_V(y))
#define sg_min(x, y) sg_vmin(SG_V(x), SG_V(y))
#define sg_heaviside(x, y) sg_vheaviside(SG_V(x), SG_V(y))
#define sg_sign(x) sg_vsign(SG_V(x))
"""


class CProgram(NamedTuple):
    """A kernel's C source, ready for the builder.

    Attributes:
        units: ``(source, kind, statements)`` per translation unit; the first holds the entry
            function. ``kind`` is ``"scalar"`` or ``"simd"``.
        n_stmts: the number of statements.
        simd: whether the loop takes four samples at a time.
        masks: per output, the arguments it depends on (bit ``j`` for argument ``j``).

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> generate([x, y], [x + 1, y * 2], "k").masks
    [1, 2]
    """

    units: list[tuple[str, str, int]]
    n_stmts: int
    simd: bool
    masks: list[int]


class _Plan(NamedTuple):
    loads: list[tuple[str, int, int]]  # (C name, argument, row)
    stmts: list[tuple[str, str, tuple[int, ...]]]  # (name, expression, values it reads)
    results: list[tuple[str, int]]  # per output: its text, and its value (-1: a literal)
    masks: list[int]
    arithmetic: bool  # only + - * / and the sg_ helpers that have vector forms
    stmt_masks: list[int]  # per statement, the arguments it depends on


def _plan(arg_spec: list, outputs: list[sp.Expr]) -> _Plan:
    # values are numbered: loads first (0 .. L-1), then statements (L ..)
    value: dict[sp.Basic, int] = {}
    names: list[str] = []
    mask: dict[sp.Basic, int] = {}
    loads: list[tuple[str, int, int]] = []
    for j, item in enumerate(arg_spec):
        for r, s in enumerate([item] if isinstance(item, sp.Symbol) else item):
            if s not in value:
                value[s] = len(names)
                names.append(f"a{j}_{r}")
                loads.append((names[-1], j, r))
            mask[s] = mask.get(s, 0) | 1 << j
    printer = CPrinter()
    templates: dict[tuple, str] = {}
    shadow: dict[sp.Basic, sp.Basic] = {}  # literals, and tuples / condition pairs over names
    reads_of: dict[sp.Basic, tuple[int, ...]] = {}  # shadow -> the values it names
    stmts: list[tuple[str, str, tuple[int, ...]]] = []
    stmt_masks: list[int] = []
    placeholder: dict[sp.Basic, sp.Symbol] = {}
    arithmetic = True

    for node in topo_order(outputs):
        if node in value:
            continue
        if not node.args:
            if isinstance(node, sp.Symbol):
                raise ArgumentError(f"symbol {node} is used by an output but is not an argument")
            shadow[node] = node
            mask[node] = 0
            continue
        kids = []
        reads: list[int] = []
        m = 0
        for a in node.args:
            m |= mask[a]
            if a in shadow:
                kids.append(shadow[a])
                reads += reads_of.get(a, ())
            else:
                p = placeholder.get(a)
                if p is None:
                    p = placeholder[a] = sp.Symbol(names[value[a]])
                kids.append(p)
                reads.append(value[a])
        mask[node] = m
        if isinstance(node, _INLINE):
            shadow[node] = node.func(*kids)
            reads_of[node] = tuple(reads)
            continue
        value[node] = len(names)
        names.append(f"t{len(stmts)}")
        text = _print_node(printer, templates, node, kids)
        if arithmetic and not _vectorisable(text):
            arithmetic = False
        stmts.append((names[-1], text, tuple(dict.fromkeys(reads))))
        stmt_masks.append(m)
    results = []
    for o in outputs:
        if o in value:
            results.append((names[value[o]], value[o]))
        else:
            results.append((print_c(printer, shadow[o]), -1))
    masks = [mask[o] for o in outputs]
    return _Plan(loads, stmts, results, masks, arithmetic, stmt_masks)


def _vectorisable(text: str) -> bool:
    # conditionals (Piecewise prints ?:) and math library calls have no vector form here:
    # mapping libm calls lane by lane was measured slower than the scalar loop
    if any(c in text for c in "?<>=&|!"):
        return False
    return all(name in _SIMD_OPS for name in _CALL.findall(text))


def generate(
    arg_spec: list, outputs: list[sp.Expr], name: str, mean: bool = False, simd: bool = False
) -> CProgram:
    """The C source of a kernel computing ``outputs`` over a batch.

    Args:
        arg_spec: the arguments: each a symbol, or a list of symbols passed as one array.
        outputs: scalar real expressions over the argument symbols.
        name: the entry function's name (a C identifier).
        mean: accumulate each output's batch mean instead of storing every sample's value.
        simd: the target has AVX: print arithmetic-only kernels as a 4-sample vector loop.

    Returns:
        A :class:`CProgram`. The entry function is
        ``int name(int64_t n, const int64_t *meta, double *out)`` (0 on success, 1 when out of
        memory): ``meta`` holds the input pointers, then each input's row stride, then its
        batch step (0 for a broadcast input).

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> print(generate([x], [sp.exp(x) + 1], "k").units[0][0].splitlines()[-5])
            const double t1 = t0 + 1.0;
    """
    plan = _plan(arg_spec, list(outputs))
    vector = simd and plan.arithmetic and len(plan.stmts) <= SIMD_LIMIT
    nargs = len(arg_spec)
    vectors = sum(1 << j for j, a in enumerate(arg_spec) if not isinstance(a, sp.Symbol))
    if len(plan.stmts) <= SINGLE:
        body = _single(name, nargs, plan, mean, vector, vectors)
        units = [(body, "simd" if vector else "scalar", len(plan.stmts))]
    else:
        units = _chunked(name, nargs, plan, mean, vector, vectors)
    return CProgram(units, len(plan.stmts), vector, plan.masks)


class _Dialect(NamedTuple):
    """What differs between the scalar and the 4-sample loop: types, loads, stores."""

    type: str
    step: int
    wrap: str  # around a statement's text

    def load(self, j: int, r: int) -> str:
        if self.step == 1:  # p{j}: argument j at sample i (see bases)
            return f"p{j}[{r} * rs[{j}]]" if r else f"p{j}[0]"
        return f"sg_load(&in[{j}][{r} * rs[{j}]], cs[{j}], i, n)"

    def bases(self, args: list[int], indent: str) -> list[str]:
        if self.step > 1:
            return []
        return [f"{indent}const double *const p{j} = in[{j}] + i * cs[{j}];" for j in args]

    def expr(self, text: str) -> str:
        return f"SG_V({text})" if self.step > 1 else text

    def store(self, k: int, text: str, mean: bool) -> str:
        if mean:
            if self.step > 1:  # lanes past the end add +0.0
                return f"acc[{k}] += (sg_vd)((sg_vl)SG_V({text}) & (sg_vl)sg_valid(i, n));"
            return f"acc[{k}] += {text};"
        if self.step > 1:
            return f"sg_store(out + {k} * n, SG_V({text}), i, n);"
        return f"out[{k} * n + i] = {text};"


_SCALAR = _Dialect("double", 1, "")
_VECTOR = _Dialect("sg_vd", 4, "SG_V")

_META = [
    "    const double *const *in = (const double *const *)meta;",
    "    const int64_t *rs = meta + {nargs}, *cs = meta + {twice};",
]


def _header(vector: bool) -> list[str]:
    return [PRELUDE, SIMD_PRELUDE] if vector else [PRELUDE]


def _finish(nout: int, d: _Dialect) -> list[str]:
    # the means, from the accumulated sums (one loop: a gradient has an output per parameter)
    total = "acc[k][0] + acc[k][1] + acc[k][2] + acc[k][3]" if d.step > 1 else "acc[k]"
    return [f"    for (int64_t k = 0; k < {nout}; ++k) out[k] = ({total}) / (double)n;"]


def _single(name: str, nargs: int, plan: _Plan, mean: bool, vector: bool, vectors: int) -> str:
    # Statements over parameter vectors only (``vectors``: their argument bits), such as an L2
    # term, are the same for every sample when those arguments have no batch axes: they are
    # computed for the first sample only (and for every sample when a vector has a batch).
    d = _VECTOR if vector else _SCALAR
    nout = len(plan.results)
    fixed = [not m & ~vectors for m in plan.stmt_masks] if vectors else [False] * len(plan.stmts)
    fixed_loads = [bool(vectors >> j & 1) for _, j, _ in plan.loads]
    lines = _header(vector)
    lines += [f"int {name}(int64_t n, const int64_t *meta, double *out)", "{"]
    lines += [m.format(nargs=nargs, twice=2 * nargs) for m in _META]
    if mean:
        lines.append(f"    {d.type} acc[{max(nout, 1)}] = {{0}};")
    hoisted = any(fixed)
    if hoisted:
        args = [j for j in range(nargs) if vectors >> j & 1]
        lines.append(f"    const int once = {' && '.join(f'cs[{j}] == 0' for j in args)};")
        names = [v for (v, _, _), f in zip(plan.loads, fixed_loads, strict=True) if f]
        names += [t for (t, _, _), f in zip(plan.stmts, fixed, strict=True) if f]
        lines += [f"    {d.type} {v};" for v in names]
    lines.append(f"    for (int64_t i = 0; i < n; i += {d.step}) {{")
    if hoisted:
        lines.append("        if (i == 0 || !once) {")
        used = sorted({j for (_, j, _), f in zip(plan.loads, fixed_loads, strict=True) if f})
        lines += d.bases(used, "            ")
        lines += [
            f"            {v} = {d.load(j, r)};"
            for (v, j, r), f in zip(plan.loads, fixed_loads, strict=True)
            if f
        ]
        lines += [
            f"            {t} = {d.expr(e)};"
            for (t, e, _), f in zip(plan.stmts, fixed, strict=True)
            if f
        ]
        lines.append("        }")
    else:
        fixed_loads = [False] * len(plan.loads)
    rest = [(v, j, r) for (v, j, r), f in zip(plan.loads, fixed_loads, strict=True) if not f]
    lines += d.bases(sorted({j for _, j, _ in rest}), "        ")
    lines += [f"        const {d.type} {v} = {d.load(j, r)};" for v, j, r in rest]
    lines += [
        f"        const {d.type} {t} = {d.expr(e)};"
        for (t, e, _), f in zip(plan.stmts, fixed, strict=True)
        if not f
    ]
    lines += [f"        {d.store(k, r, mean)}" for k, (r, _) in enumerate(plan.results)]
    lines.append("    }")
    lines += _finish(nout, d) if mean else []
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines)


def _chunked(name: str, nargs: int, plan: _Plan, mean: bool, vector: bool, vectors: int) -> list:
    d = _VECTOR if vector else _SCALAR
    nload = len(plan.loads)
    stmts = plan.stmts
    # statements over parameter vectors only (see _single) come first, in chunks of their own
    # that run for the first sample only when those vectors have no batch axes
    fixed = [bool(vectors) and not m & ~vectors for m in plan.stmt_masks]
    chunks: list[list[int]] = []
    for part in (
        [k for k in range(len(stmts)) if fixed[k]],
        [k for k in range(len(stmts)) if not fixed[k]],
    ):
        chunks += [part[a : a + CHUNK] for a in range(0, len(part), CHUNK)]
    n_fixed = sum(1 for ch in chunks if fixed[ch[0]])
    chunk_of = [0] * len(stmts)
    for c, ch in enumerate(chunks):
        for k in ch:
            chunk_of[k] = c
    # the last chunk reading each statement's value (outputs are written where they are made)
    last = [-1] * len(stmts)
    for k, (_, _, reads) in enumerate(stmts):
        c = chunk_of[k]
        for v in reads:
            if v >= nload and chunk_of[v - nload] != c:
                last[v - nload] = max(last[v - nload], c)
    writes: dict[int, list[int]] = {}  # chunk -> outputs it stores
    pinned = [False] * len(stmts)  # values kept for every sample: computed once, read always
    for k, (_, v) in enumerate(plan.results):
        if v >= nload:
            if fixed[v - nload]:
                pinned[v - nload] = True
            else:
                writes.setdefault(chunk_of[v - nload], []).append(k)
    for k in range(len(stmts)):
        if fixed[k] and last[k] >= 0:
            pinned[k] = True
    # scratch slots: a value read by a later chunk holds one until its last reader is done
    slot: dict[int, int] = {}
    free: list[int] = []
    expiring: dict[int, list[int]] = {}
    n_slots = 0
    n_chunks = len(chunks)
    for c in range(n_chunks):
        free += expiring.pop(c, [])
        for k in chunks[c]:
            if last[k] > c or pinned[k]:
                if free and not pinned[k]:
                    slot[k] = free.pop()
                else:
                    slot[k], n_slots = n_slots, n_slots + 1
                if not pinned[k]:
                    expiring.setdefault(last[k] + 1, []).append(slot[k])
    sig = "(const int64_t *restrict meta, int64_t n, int64_t i, {t} *restrict t, {a} *restrict {o})"
    proto = sig.format(t=d.type, a=d.type if mean else "double", o="acc" if mean else "out")
    units: list[tuple[str, str, int]] = []
    kind = "simd" if vector else "scalar"
    for u in range(0, n_chunks, UNIT):
        lines = _header(vector)
        count = 0
        for c in range(u, min(n_chunks, u + UNIT)):
            count += len(chunks[c])
            needed_loads: dict[int, None] = {}
            needed_prev: dict[int, None] = {}
            for k in chunks[c]:
                for v in stmts[k][2]:
                    if v < nload:
                        needed_loads[v] = None
                    elif chunk_of[v - nload] != c:
                        needed_prev[v - nload] = None
            lines += [f"void {name}_c{c}{proto}", "{"]
            if needed_loads:
                lines += [m.format(nargs=nargs, twice=2 * nargs) for m in _META]
                lines += d.bases(sorted({plan.loads[v][1] for v in needed_loads}), "    ")
            for v in needed_loads:
                var, j, r = plan.loads[v]
                lines.append(f"    const {d.type} {var} = {d.load(j, r)};")
            lines += [f"    const {d.type} {stmts[k][0]} = t[{slot[k]}];" for k in needed_prev]
            for k in chunks[c]:
                t, e, _ = stmts[k]
                lines.append(f"    const {d.type} {t} = {d.expr(e)};")
                if k in slot:
                    lines.append(f"    t[{slot[k]}] = {t};")
            for o in writes.get(c, ()):
                lines.append(f"    {d.store(o, plan.results[o][0], mean)}")
            lines += ["}", ""]
        units.append(("\n".join(lines), kind, count))
    # the entry function: the batch loop calling every chunk, and the outputs no chunk writes
    nout = len(plan.results)
    lines = _header(vector)
    lines += [f"void {name}_c{c}{proto};" for c in range(n_chunks)]
    lines += ["#include <stdlib.h>", f"int {name}(int64_t n, const int64_t *meta, double *out)"]
    lines += ["{", *[m.format(nargs=nargs, twice=2 * nargs) for m in _META]]
    size = f"{max(n_slots, 1)} * sizeof({d.type})"  # a multiple of 32 for the vector types
    if vector:  # 32-byte vectors: aligned storage
        lines.append(f"    {d.type} *t = aligned_alloc(32, {size});")
    else:
        lines.append(f"    {d.type} *t = malloc({size});")
    if mean:  # zeroed accumulators, aligned like t
        nacc = -(-max(nout, 1) // 4) * 4  # aligned_alloc takes a multiple of the alignment
        lines.append(f"    {d.type} *acc = aligned_alloc(32, {nacc} * sizeof({d.type}));")
        zero = d.expr("0.0")
        lines.append(f"    if (acc) for (int64_t k = 0; k < {nacc}; ++k) acc[k] = {zero};")
    lines.append(
        "    if (!t) return 1;"
        if not mean
        else "    if (!t || !acc) { free(t); free(acc); return 1; }"
    )
    if n_fixed:
        args = [j for j in range(nargs) if vectors >> j & 1]
        lines.append(f"    const int once = {' && '.join(f'cs[{j}] == 0' for j in args)};")
    lines.append(f"    for (int64_t i = 0; i < n; i += {d.step}) {{")
    direct = [(k, r) for k, (r, v) in enumerate(plan.results) if v < nload]
    direct += [
        (k, f"t[{slot[v - nload]}]")
        for k, (_, v) in enumerate(plan.results)
        if v >= nload and fixed[v - nload]
    ]
    used = {v for _, v in plan.results if 0 <= v < nload}
    lines += d.bases(sorted({plan.loads[v][1] for v in used}), "        ")
    for v in sorted(used):
        var, j, r = plan.loads[v]
        lines.append(f"        const {d.type} {var} = {d.load(j, r)};")
    target = "acc" if mean else "out"
    call = "        {name}_c{c}(meta, n, i, t, {target});"
    if n_fixed:
        lines.append("        if (i == 0 || !once) {")
        lines += ["    " + call.format(name=name, c=c, target=target) for c in range(n_fixed)]
        lines.append("        }")
    lines += [call.format(name=name, c=c, target=target) for c in range(n_fixed, n_chunks)]
    lines += [f"        {d.store(k, r, mean)}" for k, r in direct]
    lines.append("    }")
    lines += _finish(nout, d) if mean else []
    lines += ["    free(t);", "    free(acc);"] if mean else ["    free(t);"]
    lines += ["    return 0;", "}", ""]
    units.insert(0, ("\n".join(lines), kind, len(direct)))
    return units


def _print_node(printer: CPrinter, templates: dict, node: sp.Basic, kids: list) -> str:
    # Print each (head, numbers) shape once as a template over placeholder names
    if all(isinstance(k, sp.Symbol) or k.is_Number for k in kids):
        key = (node.func, tuple(k if k.is_Number else None for k in kids))
        template = templates.get(key)
        if template is None:
            tokens = [k if k.is_Number else sp.Symbol(f"_P{i}_") for i, k in enumerate(kids)]
            template = templates[key] = print_c(printer, rebuild(node, tokens))
        names = [k.name if k.is_Symbol else "" for k in kids]
        return _TOKEN.sub(lambda m: names[int(m.group(1))], template)
    return print_c(printer, rebuild(node, kids))
