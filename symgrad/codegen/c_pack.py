"""The C source of a packed program: a layer is a loop, not one statement per unit.

:func:`symgrad.codegen.pack.pack` groups a layer's isomorphic statements into packs (see that
module). Printed one statement per node (:mod:`.c_source`), a 2-256-256-1 network's gradient is
200,000 C statements: minutes to generate and compile, and code the optimiser cannot keep in
registers. Here the source is O(packs + statements outside packs): index tables carry the
per-unit data.

The kernel runs over the batch in blocks of :data:`BLOCK` samples. Every value is an array over
the block: a statement outside the packs is ``t[slot * BLOCK + b]``; a pack of ``m`` members is
``P[b * m + k]`` (its members contiguous, so the member loop vectorises). Per block:

- a pack is one loop ``for b, for k: P[b*m + k] = <its expression at member k>``;
- a sum ``sum_i w[I[i, k]] u_i`` of a pack (``"lin"``) is a blocked matrix product with the
  weights gathered once per call into a contiguous ``[i][k]`` array: each weight row is used
  by every sample of the block while it is in cache;
- a sum of many isomorphic terms (an L2 term's ``p_k**2``) is a loop over the terms;
- outputs that are sums of products of two factors (pack members, named values, parameter
  entries), such as every weight gradient ``d_j a_k``, are grouped by the kind of their
  factors: with ``reduce="mean"`` each group is a rank-1 update of a contiguous accumulator per
  block of samples, scattered into ``out`` through an index table at the end.

Gathers from a vector argument happen once per call when that argument has no batch axes; when
it has, the kernel takes one sample per block and gathers per sample (the same code, correct
for every call). Anything this generator does not handle makes :func:`generate_packed` return
None and the caller print the program statement by statement (:mod:`.c_source`): a program
without packs, with more than :data:`MAX_SCALARS` statements left outside them, or with
conditions (Piecewise) inside a pack, which :mod:`.pack` never builds.

>>> import sympy as sp
>>> from symgrad.codegen.plan import plan
>>> w, x = sp.symbols("w:8"), sp.Symbol("x")
>>> prog = plan([sp.exp(w[k] * x) * sp.sin(w[k] * x) for k in range(8)], [list(w), x])
>>> program = generate_packed(prog, "k", mean=False)
>>> len(program.units), program.masks[:2]
(1, [3, 3])
>>> print([ln.strip() for ln in program.units[0][0].splitlines() if "P0[b" in ln][0])
for (int64_t b = 0; b < nb; ++b) for (int64_t k = 0; k < 8; ++k) P0[b * 16 + k] = C0[k]*t[0 + b];
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import sympy as sp

from ..graph import rebuild
from .c_printer import PRELUDE, CPrinter, print_c
from .c_source import CProgram
from .pack import PACK_MIN, TreeBuilder, iso_classes, membership, pack, tree_leaves
from .plan import ARGUMENT, INLINED, LITERAL, SHADOW, STATEMENT, Program

__all__ = ["BLOCK", "MAX_SCALARS", "VECTOR_MATH", "generate_packed", "tanh_source"]

#: Samples per block: a gathered weight row (and an accumulator row of a rank-1 update) is
#: read once per block from cache, by every sample of the block.
BLOCK = 16
#: Programs with more statements left outside their packs are printed statement by statement
#: (chunked and compiled in parallel by :mod:`.c_source`): this kernel is one function.
MAX_SCALARS = 1500


def _lin_tile(rows: int) -> str:
    # the register tile of sg_lin: ``rows`` samples x two vectors of members, summed over i
    acc = [f"a{r}{c}" for r in range(rows) for c in range(2)]
    lines = [f"            sg_vw {', '.join(f'{a} = {{0}}' for a in acc)};"]
    lines.append("            for (int64_t i = 0; i < ni; ++i, w += mp) {")
    lines.append("                const sg_vw w0 = sg_ld(w), w1 = sg_ld(w + SG_W);")
    for r in range(rows):
        u = f"u[{r} * us + i]" if r else "u[i]"
        lines.append(f"                a{r}0 += w0 * {u}; a{r}1 += w1 * {u};")
    lines.append("            }")
    for r in range(rows):
        at = f"l + {r} * mp" if r else "l"
        lines.append(f"            sg_st({at}, a{r}0); sg_st({at} + SG_W, a{r}1);")
    return "\n".join(lines)


_LIN8, _LIN4 = _lin_tile(8), _lin_tile(4)

#: The blocked matrix kernels every packed unit starts with (GCC/Clang vector extensions: the
#: widest vectors the target has, AVX-512 or AVX; sixteen accumulators in registers; products
#: and sums fused as BLAS does). Rows hold a multiple of 16 doubles; ``nb`` samples (rows of U,
#: X, Y at strides ``us``, ``xs``, ``ys``; stride 0: one row for every sample).
PACK_PRELUDE = (
    """\
#include <stdlib.h>
static const double sg_one = 1.0;
#if defined(__GNUC__) && !defined(SG_PORTABLE)
#if defined(__AVX512F__)
#define SG_W 8
#define SG_B 8
#else
#define SG_W 4
#define SG_B 4
#endif
#if defined(__GNUC__) && !defined(__clang__)
#define SG_FUSED __attribute__((optimize("fp-contract=fast")))
#define SG_CONTRACT
#else /* Clang: the same contraction, as a pragma at the top of the function body */
#define SG_FUSED
#define SG_CONTRACT _Pragma("clang fp contract(fast)")
#endif
typedef double sg_vw __attribute__((vector_size(SG_W * sizeof(double))));
static inline sg_vw sg_ld(const double *p) { sg_vw v; __builtin_memcpy(&v, p, sizeof v); return v; }
static inline void sg_st(double *p, sg_vw v) { __builtin_memcpy(p, &v, sizeof v); }
/* L[b, k] = sum_i W[i, k] U[b, i]: SG_B samples by two vectors of members in registers (eight
   by sixteen with AVX-512's 32 registers, four by eight with AVX's 16); the rows past nb (up
   to a multiple of SG_B) are scratch the caller allocated and never reads */
SG_FUSED static void sg_lin(const double *restrict W, int64_t ni, int64_t mp,
                            const double *restrict U, int64_t us, double *restrict L, int64_t nb) {
    SG_CONTRACT
    for (int64_t b = 0; b < nb; b += SG_B) {
        const double *u = U + b * us;
        for (int64_t k = 0; k < mp; k += 2 * SG_W) {
            const double *w = W + k;
            double *l = L + b * mp + k;
#if SG_B == 8
"""
    + _LIN8
    + """
#else
"""
    + _LIN4
    + """
#endif
        }
    }
}
/* G[r, c] += sum_b X[b, r] Y[b, c] over the block's nb samples: two rows at a time (four
   independent sums in flight) */
SG_FUSED static void sg_outer(double *restrict G, int64_t nr, int64_t cp,
                              const double *restrict X, int64_t xs, const double *restrict Y,
                              int64_t ys, int64_t nb) {
    SG_CONTRACT
    int64_t r = 0;
    for (; r + 1 < nr; r += 2) {
        double *g = G + r * cp, *h = g + cp;
        for (int64_t c = 0; c < cp; c += 2 * SG_W) {
            sg_vw a0 = sg_ld(g + c), a1 = sg_ld(g + c + SG_W);
            sg_vw a2 = sg_ld(h + c), a3 = sg_ld(h + c + SG_W);
            for (int64_t b = 0; b < nb; ++b) {
                const double x = X[b * xs + r], z = X[b * xs + r + 1];
                const sg_vw y0 = sg_ld(Y + b * ys + c), y1 = sg_ld(Y + b * ys + c + SG_W);
                a0 += y0 * x; a1 += y1 * x;
                a2 += y0 * z; a3 += y1 * z;
            }
            sg_st(g + c, a0); sg_st(g + c + SG_W, a1);
            sg_st(h + c, a2); sg_st(h + c + SG_W, a3);
        }
    }
    for (; r < nr; ++r) {
        double *g = G + r * cp;
        for (int64_t c = 0; c < cp; c += 2 * SG_W) {
            sg_vw a0 = sg_ld(g + c), a1 = sg_ld(g + c + SG_W);
            for (int64_t b = 0; b < nb; ++b) {
                const double x = X[b * xs + r];
                a0 += sg_ld(Y + b * ys + c) * x;
                a1 += sg_ld(Y + b * ys + c + SG_W) * x;
            }
            sg_st(g + c, a0); sg_st(g + c + SG_W, a1);
        }
    }
}
#else /* plain C99 (other compilers, or -DSG_PORTABLE): the same products, one at a time */
static void sg_lin(const double *restrict W, int64_t ni, int64_t mp, const double *restrict U,
                   int64_t us, double *restrict L, int64_t nb) {
    for (int64_t b = 0; b < nb; ++b) {
        for (int64_t k = 0; k < mp; ++k) L[b * mp + k] = 0.0;
        for (int64_t i = 0; i < ni; ++i)
            for (int64_t k = 0; k < mp; ++k) L[b * mp + k] += W[i * mp + k] * U[b * us + i];
    }
}
static void sg_outer(double *restrict G, int64_t nr, int64_t cp, const double *restrict X,
                     int64_t xs, const double *restrict Y, int64_t ys, int64_t nb) {
    for (int64_t r = 0; r < nr; ++r)
        for (int64_t b = 0; b < nb; ++b)
            for (int64_t c = 0; c < cp; ++c) G[r * cp + c] += X[b * xs + r] * Y[b * ys + c];
}
#endif
"""
)

#: With glibc's vector math library linked (``-lmvec``, see ``c_build.Target.mvec``): GCC
#: vectorises member loops over these functions into calls of their 4/8-lane versions.
VECTOR_MATH = "\n".join(
    f'double {f}(double) __attribute__((simd("notinbranch")));'
    for f in ("exp", "log", "sin", "cos", "tanh")
)

#: tanh(x) = -expm1(-2|x|) / (expm1(-2|x|) + 2), signed as x: no cancellation near 0 and no
#: overflow (the exponent is <= 0), within 3 ulp of NumPy's tanh, with tanh(+-inf) = +-1,
#: tanh(-0) = -0 and NaN kept. ``expm1`` is libmvec's where it links (8 lanes: 0.7x the time of
#: NumPy's tanh on 256 x 256, libmvec's own tanh 1.35x, measured); else ``sg_expm1`` below.
_TANH = """\
static inline double sg_tanh(double x) {
    const double e = SG_EXPM1(-2.0 * fabs(x));
    return copysign(-e / (e + 2.0), x);
}
"""
#: expm1(t) for t <= 0 (NaN kept) with arithmetic and bit operations only, so loops over it
#: vectorise without a vector math library (Clang: ~2 ns per entry; a scalar libm call ~17 ns):
#: t = k ln2 + r with |r| <= ln2/2; expm1(r) by its Taylor series to r**13 (error < 1e-17);
#: expm1(t) = 2**k (1 + expm1(r)) - 1, 2**k from the rounding constant's low bits; t < -40
#: gives -1 (as exactly in doubles).
_EXPM1 = """\
#include <string.h>
static inline double sg_expm1(double t) {
    t = t < -40.0 ? -40.0 : t;
    const double big = t * 1.4426950408889634 + 0x1.8p52;
    uint64_t bits;
    memcpy(&bits, &big, sizeof bits);
    const double kf = big - 0x1.8p52;
    const double r = (t - kf * 0x1.62e42fee00000p-1) - kf * 0x1.a39ef35793c76p-33;
    const double p = r + r * r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120
        + r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880
        + r * (1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600
        + r * (1.0 / 6227020800.0))))))))))));
    const uint64_t sb = (bits + 1023) << 52;
    double s;
    memcpy(&s, &sb, sizeof s);
    return s * p + (s - 1.0);
}
"""


def tanh_source(vector_math: bool) -> str:
    """The C definition of ``sg_tanh`` (see :data:`_TANH`), over libmvec's ``expm1`` or not.

    >>> "sg_expm1(double t)" in tanh_source(False), "simd(" in tanh_source(True)
    (True, True)
    """
    if vector_math:
        head = (
            'double expm1(double) __attribute__((simd("notinbranch")));\n#define SG_EXPM1 expm1\n'
        )
    else:
        head = _EXPM1 + "#define SG_EXPM1 sg_expm1\n"
    return head + _TANH


_INLINE = (sp.Tuple, sp.functions.elementary.piecewise.ExprCondPair)


class _Group(NamedTuple):
    """Outputs of the form ``coef * X[ix] * Y[iy]``, one term each (see :func:`_terms`)."""

    coef: str
    x: tuple  # a factor source: ("pack", p) | ("vals", q) | ("vec", j) | ("one",)
    y: tuple
    terms: list  # (output, ix, iy)


def generate_packed(
    prog: Program, name: str, mean: bool, vector_math: bool = False
) -> CProgram | None:
    """The C kernel of ``prog`` over its packs, or None when it has none worth it.

    Args:
        prog: the planned program (packed here unless it is already).
        name: the entry function's name (a C identifier).
        mean: accumulate each output's batch mean (see :func:`.c_source.generate`).
        vector_math: the library is linked with glibc's vector math library (``-lmvec``):
            member loops over ``exp``, ``log``, ``sin``, ``cos``, ``tanh`` call its 4- or
            8-lane versions (within 4 ulp, NaN and infinities as the scalar functions).

    Returns:
        A :class:`~.c_source.CProgram` of one translation unit of kind ``"packed"``, with the
        entry function of :func:`.c_source.generate`; None to fall back to it.

    >>> import sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> x = sp.Symbol("x")
    >>> generate_packed(plan(sp.exp(x), [x]), "k", mean=False) is None
    True
    """
    prog = prog if prog.packs else pack(prog)
    if not prog.packs:
        return None
    return _Kernel(prog, name, mean, vector_math).source()


def _masks(prog: Program) -> list[int]:
    # per node, the arguments it depends on (bit j for argument j)
    mask = [0] * len(prog.order)
    for i, a in enumerate(prog.args_of):
        src = prog.source[i]
        if src is not None:
            mask[i] = 1 << src[0]
        for j in a:
            mask[i] |= mask[j]
    return mask


def _table(values: list[int]) -> tuple[int, int] | None:
    # an evenly spaced index list as (start, step)
    if len(values) == 1:
        return values[0], 1
    step = values[1] - values[0]
    if all(b - a == step for a, b in itertools.pairwise(values)):
        return values[0], step
    return None


class _Kernel:
    """One packed program printed as C (see the module docstring)."""

    def __init__(self, prog: Program, name: str, mean: bool, vector_math: bool) -> None:
        self.prog, self.name, self.mean, self.vector_math = prog, name, mean, vector_math
        self.member, _ = membership(prog)
        self.cls: list[int] | None = prog.classes  # set by pack(); computed when absent
        self.printer = CPrinter()
        self.tables: list[str] = []  # file-scope index tables
        self.arrays: list[tuple[str, int]] = []  # scratch arrays: (name, doubles)
        self.gathers: list[str] = []  # lines run once per call (per sample with batch axes)
        self.gathered: set[int] = set()  # vector arguments read through gathers
        self.slot: dict[int, int] = {}  # scalar value -> its slot in t
        self.reductions: dict[int, list] = {}  # Add statement -> [(tree, argument indices)]
        self.coefficients: dict[tuple, str] = {}
        self.products: dict[tuple, str] = {}  # ("prod", p, q) -> its array
        self.masks: list[int] = []
        self.shadow: dict[int, Any] = {}  # Tuple/condition pair -> rebuilt over its kids
        self.fixed: set[int] = set()  # values the same for every sample
        self.fixed_packs: set[int] = set()  # packs the same for every sample

    # -- names and index tables -------------------------------------------------------------

    def array(self, prefix: str, size: int) -> str:
        name = f"{prefix}{sum(1 for a, _ in self.arrays if a.startswith(prefix))}"
        self.arrays.append((name, max(size, 1)))
        return name

    def index(self, values: list[int], var: str) -> str:
        """``values[var]`` in C: an affine expression when evenly spaced, else a table."""
        run = _table(values)
        if run is not None:
            start, step = run
            text = var if step == 1 or var.isidentifier() else f"({var})"
            text = text if step == 1 else f"{step} * {text}"
            return text if start == 0 else f"{start} + {text}"
        name = f"X{len(self.tables)}"
        self.tables.append(
            f"static const int64_t {name}[{len(values)}] = {{{', '.join(map(str, values))}}};"
        )
        return f"{name}[{var}]"

    def index2(self, values: list[list[int]], vi: str, vk: str) -> str:
        """``values[vi][vk]`` in C: affine in both when it is (a layer's weights), else a table."""
        rows, cols = len(values), len(values[0])
        v0 = values[0][0]
        si = values[1][0] - v0 if rows > 1 else 0
        sk = values[0][1] - v0 if cols > 1 else 0
        if all(
            v == v0 + i * si + k * sk for i, row in enumerate(values) for k, v in enumerate(row)
        ):
            terms = [str(v0)] if v0 else []
            terms += [f"{si} * {vi}" if si != 1 else vi] if si else []
            terms += [f"{sk} * {vk}" if sk != 1 else vk] if sk else []
            return " + ".join(terms) or "0"
        return self.index([v for row in values for v in row], f"{vi} * {cols} + {vk}")

    # -- values -------------------------------------------------------------------------------

    def kid(self, i: int) -> Any:
        """Node ``i`` at sample ``b`` of the block, for a printer: a symbol, a literal, a shadow."""
        prog = self.prog
        where = self.member.get(i)
        if where is not None:
            p, r = where
            return sp.Symbol(f"P{p}[{self.row(p)}{r}]")
        k = prog.kind[i]
        if k == LITERAL:
            return prog.order[i]
        if i in self.shadow:
            return self.shadow[i]
        return sp.Symbol(self.target(i))

    def target(self, i: int) -> str:
        # a value the same for every sample (see source) has one entry, written at b = 0
        if i in self.fixed:
            return f"t[{self.slot[i] * BLOCK}]"
        return f"t[{self.slot[i] * BLOCK} + b]"

    def text(self, i: int) -> str:
        return print_c(self.printer, self.kid(i))

    def print_node(self, node: sp.Basic, kids: list) -> str:
        if len(kids) == 1 and (node.is_Add or node.is_Mul):
            return print_c(self.printer, kids[0])
        return print_c(self.printer, rebuild(node, kids))

    # -- planning: outputs, demanded values, reductions ----------------------------------------

    def factor(self, f: int) -> tuple[Any, tuple | None, int]:
        """A factor of an output term: ``(literal or None, source, index)``; None: not one."""
        prog = self.prog
        where = self.member.get(f)
        if where is not None:
            return None, ("pack", where[0]), where[1]
        k = prog.kind[f]
        if k == LITERAL and prog.order[f].is_number:
            return prog.order[f], ("one",), 0
        src = prog.source[f]
        if src is not None and src[1] >= 0:
            return None, ("vec", src[0]), src[1]
        if k in (ARGUMENT, STATEMENT) and not isinstance(prog.order[f], _INLINE):
            return None, ("val",), f
        return None, None, 0

    def terms(self, o: int) -> list | None:
        """Output ``o`` as terms ``(coef, [(source, index), ...])`` with at most two factors."""
        prog = self.prog
        node = prog.order[o]
        parts = [o]
        if o not in self.member and node.is_Add and prog.kind[o] in (INLINED, STATEMENT):
            parts = list(prog.args_of[o])
        out = []
        for t in parts:
            # the factors of a product, nested inlined products and negations (-x) flattened
            factors, todo = [], [t]
            while todo:
                f = todo.pop()
                if (
                    f not in self.member
                    and prog.order[f].is_Mul
                    and prog.kind[f] in (INLINED, SHADOW)
                ):
                    todo += prog.args_of[f]
                else:
                    factors.append(f)
                if len(factors) > 3:
                    return None
            found = []
            lits = []
            for f in factors:
                lit, src, idx = self.factor(f)
                if src is None:
                    return None
                if lit is not None:
                    lits.append(lit)
                else:
                    found.append((src, idx))
            if len(found) == 3:  # x_i d_k s_k: the two columns of one row as one product
                found = _merged(found, self.prog)
            if found is None or len(found) > 2:
                return None
            while len(found) < 2:
                found.append((("one",), 0))
            out.append((self.coefficient(tuple(lits)), found))
        return out

    def coefficient(self, lits: tuple) -> str:
        """The C text of a product of literals (printed once per distinct product)."""
        text = self.coefficients.get(lits)
        if text is None:
            text = self.coefficients[lits] = print_c(self.printer, sp.Mul(*lits))
        return text

    def plan_outputs(self) -> tuple[list[_Group], list[int]]:
        """Grouped outputs, and the outputs printed as scalar statements."""
        prog = self.prog
        groups: dict[tuple, _Group] = {}
        scalar: list[int] = []
        seen: set[int] = set()
        for k, o in enumerate(prog.outs):
            found = self.terms(o) if o not in seen else None
            seen.add(o)
            if found is None or not found:
                scalar.append(k)
                continue
            for coef, ((sx, ix), (sy, iy)) in found:
                if _rank(sx) > _rank(sy):
                    (sx, ix), (sy, iy) = (sy, iy), (sx, ix)
                key = (coef, sx, sy)
                g = groups.get(key)
                if g is None:
                    g = groups[key] = _Group(key[0], sx, sy, [])
                g.terms.append((k, ix, iy))
        return list(groups.values()), scalar

    def demand(self, roots: set[int]) -> list[int]:
        """The values computed as scalar statements (ascending), reductions decided."""
        prog = self.prog
        needed = set(roots)
        for pk in prog.packs:
            needed.update(self.leaf_positions(pk.tree))
        for i in range(len(prog.order) - 1, -1, -1):
            if i not in needed or i in self.member:
                continue
            k = prog.kind[i]
            if k in (ARGUMENT, LITERAL):
                continue
            args = prog.args_of[i]
            skip: set[int] = set()
            if prog.order[i].is_Add and len(args) >= PACK_MIN:
                for tree, js in self.reduction(i):
                    skip.update(js)
                    needed.update(self.leaf_positions(tree))
            needed.update(a for j, a in enumerate(args) if j not in skip)
        return sorted(i for i in needed if i not in self.member and prog.kind[i] != LITERAL)

    def reduction(self, i: int) -> list:
        # classes of many isomorphic inlined terms of the sum i, each as one packed tree
        prog = self.prog
        if self.cls is None:
            self.cls = iso_classes(prog)
        args = prog.args_of[i]
        by_class: dict[int, list[int]] = {}
        for j, a in enumerate(args):
            if prog.kind[a] == INLINED and a not in self.member:
                by_class.setdefault(self.cls[a], []).append(j)
        found = []
        for js in by_class.values():
            if len(js) < PACK_MIN:
                continue
            tree = TreeBuilder(prog, self.cls, self.member).operand([args[j] for j in js])
            if tree is None or tree[0] not in ("op", "col"):
                continue
            if any(leaf[0] == "lin" for leaf in _nodes(tree)):
                continue
            found.append((tree, js))
        self.reductions[i] = found
        return found

    @staticmethod
    def leaf_positions(tree: Any) -> list[int]:
        out: list[int] = []
        for leaf in tree_leaves(tree):
            if leaf[0] == "bcast":
                out.append(leaf[1])
            elif leaf[0] == "stack":
                out += leaf[1]
        return out

    # -- printing -----------------------------------------------------------------------------

    def gather(self, vec: int, entries: list[int], var: str) -> str:
        """``entries`` of vector argument ``vec`` at this block's first sample, indexed by var."""
        return self.entry(vec, self.index(entries, var))

    def entry(self, vec: int, index: str) -> str:
        self.gathered.add(vec)
        return f"in[{vec}][({index}) * rs[{vec}] + i0 * cs[{vec}]]"

    def tree(self, t: Any, m: int, pre: list[str]) -> Any:
        """A packed tree at member ``k`` of sample ``b``, as a SymPy expression over names."""
        tag = t[0]
        if tag == "op":
            return rebuild(t[1], [self.tree(s, m, pre) for s in t[2]])
        if tag == "bcast":
            return self.kid(t[1])
        if tag == "col":
            g = self.array("C", m)
            self.gathers.append(f"for (int64_t k = 0; k < {m}; ++k) {g}[k] = ")
            self.gathers[-1] += self.gather(t[1], t[2], "k") + ";"
            return sp.Symbol(f"{g}[k]")
        if tag == "rows":
            p, rows = t[1], t[2]
            return sp.Symbol(f"P{p}[{self.row(p)}{self.index(rows, 'k')}]")
        if tag == "stack":
            s = self.stack(t[1], pre)
            return sp.Symbol(f"{s}[b * {len(t[1])} + k]")
        # ("lin", parts, vector, index rows, operands): parts + the blocked product
        _, parts, vec, index, operands = t
        lin = self.lin(vec, index, operands, m, pre)
        if not parts:
            return lin
        return sp.Add._from_args([*(self.tree(s, m, pre) for s in parts), lin])

    def stack(self, positions: list[int], pre: list[str]) -> str:
        s = self.array("S", BLOCK * len(positions))
        body = " ".join(
            f"{s}[b * {len(positions)} + {r}] = {self.text(i)};" for r, i in enumerate(positions)
        )
        pre.append(f"    for (int64_t b = 0; b < nb; ++b) {{ {body} }}")
        return s

    def lin(self, vec: int, index: list, operands: Any, m: int, pre: list[str]) -> sp.Symbol:
        """``L[b, k] = sum_i W[i, k] U[b, i]``, the weights gathered once (see the module)."""
        ni, mp = len(index), _padded(m)
        w = self.array("W", ni * mp)
        # W's rows are padded to mp with zeros (the scratch starts zeroed; pads never written)
        self.gathers.append(
            f"for (int64_t i = 0; i < {ni}; ++i) for (int64_t k = 0; k < {m}; ++k) "
            f"{w}[i * {mp} + k] = {self.entry(vec, self.index2(index, 'i', 'k'))};"
        )
        if operands[0] == "rows" and operands[2] == list(range(self.prog.packs[operands[1]].rows)):
            p = operands[1]
            u, us = f"P{p}", 0 if p in self.fixed_packs else _padded(self.prog.packs[p].rows)
        elif operands[0] == "rows":
            p, cols = operands[1], operands[2]
            u, us = self.array("S", BLOCK * ni), ni
            pre.append(
                f"    for (int64_t b = 0; b < nb; ++b) for (int64_t i = 0; i < {ni}; ++i) "
                f"{u}[b * {ni} + i] = P{p}[{self.row(p)}{self.index(cols, 'i')}];"
            )
        else:
            u, us = self.stack(operands[1], pre), ni
        lin = self.array("L", BLOCK * mp)
        pre.append(f"    sg_lin({w}, {ni}, {mp}, {u}, {us}, {lin}, nb);")
        return sp.Symbol(f"{lin}[b * {mp} + k]")

    def pack_lines(self, p: int) -> list[str]:
        pk = self.prog.packs[p]
        m = pk.rows
        pre: list[str] = []
        expr = self.tree(pk.tree, m, pre)
        self.arrays.append((f"P{p}", BLOCK * _padded(m)))
        text = print_c(self.printer, expr)
        loop = f"for (int64_t k = 0; k < {m}; ++k) P{p}[{self.row(p)}k] = {text};"
        if p in self.fixed_packs:
            return [*pre, f"    if (i0 == 0 || !once) {{ const int64_t b = 0; {loop} }}"]
        return [*pre, f"    for (int64_t b = 0; b < nb; ++b) {loop}"]

    def row(self, p: int) -> str:
        # where sample b's members of pack p start (one row for a pack over parameters only)
        return "" if p in self.fixed_packs else f"b * {_padded(self.prog.packs[p].rows)} + "

    def statement(self, i: int) -> str:
        """Scalar value ``i`` at sample ``b`` (a line inside the block's sample loop)."""
        prog = self.prog
        node = prog.order[i]
        target = self.target(i)
        src = prog.source[i]
        if src is not None:
            j, r = src
            row = f"{r} * rs[{j}] + " if r > 0 else ""
            return self.once(i, f"{target} = in[{j}][{row}(i0 + b) * cs[{j}]];")
        args = prog.args_of[i]
        found = self.reductions.get(i, [])
        skip = {j for _, js in found for j in js}
        kids = [self.kid(a) for j, a in enumerate(args) if j not in skip]
        head = []
        for q, (tree, js) in enumerate(found):
            pre: list[str] = []
            term = print_c(self.printer, self.tree(tree, len(js), pre))
            assert not pre  # reductions never stack or multiply (see reduction)
            head.append(
                f"double r{q} = 0.0; for (int64_t k = 0; k < {len(js)}; ++k) r{q} += {term};"
            )
            kids.append(sp.Symbol(f"r{q}"))
        text = f"{target} = {self.print_node(node, kids)};"
        return self.once(i, f"{{ {' '.join(head)} {text} }}" if head else text)

    def once(self, i: int, line: str) -> str:
        if i not in self.fixed:
            return line
        return f"if (b == 0 && (i0 == 0 || !once)) {line}"

    def group_lines(self, g: _Group) -> tuple[list[str], list[str]]:
        """Per block, and at the end: the lines of one output group (see the module)."""
        mean, nt = self.mean, len(g.terms)
        vals = self.values_of(g)

        block: list[str] = []

        def at(src: tuple, idx: str, stack: str | None) -> str:
            if src[0] in ("pack", "prod"):
                name, stride = self.columns(src, block)
                return f"{name}[{f'b * {stride} + ' if stride else ''}{idx}]"
            if src[0] == "val":
                return f"{stack}[b * {len(vals)} + {idx}]"
            if src[0] == "vec":
                self.gathered.add(src[1])
                return f"in[{src[1]}][({idx}) * rs[{src[1]}] + i0 * cs[{src[1]}]]"
            return "1.0"

        stack = None
        if vals:
            stack = self.array("Z", BLOCK * len(vals))
            body = " ".join(
                f"{stack}[b * {len(vals)} + {r}] = {self.text(v)};" for r, v in enumerate(vals)
            )
            block.append(f"    for (int64_t b = 0; b < nb; ++b) {{ {body} }}")
        pos = {v: r for r, v in enumerate(vals)}

        def idx(src: tuple, i: int) -> int:
            return pos[i] if src[0] == "val" else i

        # in the order of the accumulator: x's index, then y's
        terms = sorted((idx(g.x, x), idx(g.y, y), o) for o, x, y in g.terms)
        ix, iy, outs = ([t[j] for t in terms] for j in range(3))
        coef = "" if g.coef == "1.0" else f"{g.coef} * "
        fixed = g.x[0] in ("vec", "one") and g.y[0] in ("vec", "one")
        if not mean:
            o = self.index(outs, "q")
            x, y = at(g.x, self.index(ix, "q"), stack), at(g.y, self.index(iy, "q"), stack)
            block.append(
                f"    for (int64_t b = 0; b < nb; ++b) for (int64_t q = 0; q < {nt}; ++q) "
                f"out[({o}) * n + i0 + b] += {coef}{x} * {y};"
            )
            return block, []
        rows = sorted(set(ix))
        cols = sorted(set(iy))
        pairs = len(set(zip(ix, iy, strict=True)))
        dense = pairs == len(rows) * len(cols) == nt and len(cols) >= PACK_MIN and not fixed
        whole = g.y[0] in ("pack", "prod") and cols == list(range(self.prog.packs[g.y[1]].rows))
        xs = self.outer_rows(g, rows, stack, len(vals), block)
        if dense and whole and xs is not None:
            # a rank-1 update per sample, acc[r, c] += x[r] y[c], a block of samples at a time
            nc, cp = len(cols), _padded(len(cols))
            acc = self.array("G", len(rows) * cp)
            y, ys = self.columns(g.y, block)
            block.append(
                f"    sg_outer({acc}, {len(rows)}, {cp}, {xs[0]}, {xs[1]}, {y}, {ys}, nb);"
            )
            o = self.index2([outs[r * nc : (r + 1) * nc] for r in range(len(rows))], "r", "c")
            end = [
                f"    for (int64_t r = 0; r < {len(rows)}; ++r) for (int64_t c = 0; c < {nc}; ++c) "
                f"out[{o}] += {coef}{acc}[r * {cp} + c] * (1.0 / (double)n);"
            ]
            return block, end
        acc = self.array("G", nt)
        x, y = at(g.x, self.index(ix, "q"), stack), at(g.y, self.index(iy, "q"), stack)
        loop = f"for (int64_t q = 0; q < {nt}; ++q) {acc}[q] += {x} * {y};"
        if fixed:  # the same every sample: once per call when the vectors have no batch
            block.append(f"    if (i0 == 0 || !once) {{ const int64_t b = 0; {loop} }}")
        else:
            block.append(f"    for (int64_t b = 0; b < nb; ++b) {loop}")
        scale = "(once ? 1.0 : 1.0 / (double)n)" if fixed else "(1.0 / (double)n)"
        o = self.index(outs, "q")
        end = [f"    for (int64_t q = 0; q < {nt}; ++q) out[{o}] += {coef}{acc}[q] * {scale};"]
        return block, end

    def outer_rows(
        self, g: _Group, rows: list[int], stack: str | None, nz: int, block: list[str]
    ) -> Any:
        """The x side of a rank-1 update as ``(array, row stride)``, or None."""
        if g.x[0] == "one":
            return "&sg_one", 0
        if g.x[0] == "val" and rows == list(range(nz)):
            return stack, nz
        if g.x[0] in ("pack", "prod") and rows == list(range(self.prog.packs[g.x[1]].rows)):
            return self.columns(g.x, block)
        return None

    def columns(self, src: tuple, block: list[str]) -> tuple[str, int]:
        """A pack (or the product of two packs' columns) as ``(array, row stride)``."""
        p = src[1]
        m = self.prog.packs[p].rows
        if src[0] == "pack":
            return f"P{p}", 0 if p in self.fixed_packs else _padded(m)
        name = self.products.get(src)
        if name is None:  # computed once per block, before the first group that reads it
            name = self.products[src] = self.array("V", BLOCK * _padded(m))
            q = src[2]
            block.append(
                f"    for (int64_t b = 0; b < nb; ++b) for (int64_t k = 0; k < {m}; ++k) "
                f"{name}[b * {_padded(m)} + k] = P{p}[{self.row(p)}k] * P{q}[{self.row(q)}k];"
            )
        return name, _padded(m)

    def values_of(self, g: _Group) -> list[int]:
        vals: list[int] = []
        for src, pick in ((g.x, 1), (g.y, 2)):
            if src[0] == "val":
                vals += [t[pick] for t in g.terms]
        return list(dict.fromkeys(vals))

    def source(self) -> CProgram | None:
        prog = self.prog
        groups, scalar_outs = self.plan_outputs()
        roots = {prog.outs[k] for k in scalar_outs}
        for g in groups:
            roots.update(self.values_of(g))
        order = self.demand(roots)
        # shadows (Tuple / condition pairs) are printed inside their readers
        values = []
        for i in order:
            if isinstance(prog.order[i], _INLINE):
                self.shadow[i] = None
            else:
                values.append(i)
        if len(values) > MAX_SCALARS:
            return None
        for i in values:
            self.slot[i] = len(self.slot)
        # values over parameter vectors only (an L2 term) are computed once per call when
        # those vectors have no batch axes (and then the kernel takes one sample per block)
        masks = self.masks = _masks(prog)
        vectors = sum(1 << j for j, a in enumerate(prog.args) if isinstance(a, list))
        for i in values:
            if not masks[i] & ~vectors:
                self.fixed.add(i)
                self.gathered.update(j for j in range(len(prog.args)) if masks[i] >> j & 1)
        for p, pk in enumerate(prog.packs):
            if not any(masks[m] & ~vectors for m in pk.members):
                self.fixed_packs.add(p)
                bits = [masks[m] for m in pk.members]
                self.gathered.update(
                    j for j in range(len(prog.args)) if any(b >> j & 1 for b in bits)
                )
        first = {pk.members[0]: p for p, pk in enumerate(prog.packs)}
        body: list[str] = []
        run: list[str] = []

        def flush() -> None:
            if run:
                body.append("    for (int64_t b = 0; b < nb; ++b) {")
                body.extend(f"        {ln}" for ln in run)
                body.append("    }")
                run.clear()

        for i in range(len(prog.order)):
            if i in first:
                flush()
                body += self.pack_lines(first[i])
            elif i in self.shadow:
                node = prog.order[i]
                self.shadow[i] = rebuild(node, [self.kid(a) for a in prog.args_of[i]])
            elif i in self.slot:
                run.append(self.statement(i))
        flush()
        nout = len(prog.outs)
        for k in scalar_outs:
            o = prog.outs[k]
            value = self.text(o)
            run.append(
                f"out[{k}] += {value};" if self.mean else f"out[{k} * n + i0 + b] = {value};"
            )
        flush()
        end: list[str] = []
        for g in groups:
            per_block, finish = self.group_lines(g)
            body += per_block
            end += finish
        if self.mean and scalar_outs:
            ks = self.index(scalar_outs, "q")
            end.insert(
                0, f"    for (int64_t q = 0; q < {len(scalar_outs)}; ++q) out[{ks}] /= (double)n;"
            )
        return self.assemble(body, end, groups, nout)

    def assemble(self, body: list[str], end: list[str], groups: list, nout: int) -> CProgram:
        prog = self.prog
        nargs = len(prog.args)
        self.arrays.insert(0, ("t", BLOCK * max(len(self.slot), 1)))
        offsets, total = [], 0
        for a, size in self.arrays:
            offsets.append((a, total))
            total += -(-size // 4) * 4  # 32-byte aligned arrays
        once = " && ".join(f"cs[{j}] == 0" for j in sorted(self.gathered)) or "1"
        zero = f"{nout}" if self.mean else f"{nout} * n"
        # without the vector math library each tanh would be a scalar libm call: the member
        # loops' tanh is sg_tanh (a macro after <math.h>: the printed statements stay C99's)
        portable = tanh_source(False) + "#define tanh(x) sg_tanh(x)\n"
        maths = VECTOR_MATH if self.vector_math else portable
        lines = [PRELUDE, PACK_PRELUDE, maths, *self.tables]
        lines.append("")
        lines += [f"int {self.name}(int64_t n, const int64_t *meta, double *out)", "{"]
        lines += [
            "    const double *const *in = (const double *const *)meta;",
            f"    const int64_t *rs = meta + {nargs}, *cs = meta + {2 * nargs};",
            f"    const int once = {once};",
            f"    const int64_t step = once ? {BLOCK} : 1;",
            f"    double *s = malloc({total} * sizeof(double));",
            "    if (!s) return 1;",
            f"    for (int64_t k = 0; k < {total}; ++k) s[k] = 0.0;",
            f"    for (int64_t k = 0; k < {zero}; ++k) out[k] = 0.0;",
        ]
        lines += [f"    double *restrict {a} = s + {off};" for a, off in offsets]
        lines += [
            "    for (int64_t i0 = 0; i0 < n; i0 += step) {",
            "        const int64_t nb = n - i0 < step ? n - i0 : step;",
        ]
        if self.gathers:
            lines.append("        if (i0 == 0 || !once) {")
            lines += [f"            {g}" for g in self.gathers]
            lines.append("        }")
        lines += [f"    {ln}" for ln in body]
        lines.append("    }")
        lines += end
        lines += ["    free(s);", "    return 0;", "}", ""]
        text = "\n".join(lines)
        n_stmts = len(self.slot) + len(prog.packs)
        masks = self.masks
        return CProgram([(text, "packed", n_stmts)], n_stmts, False, [masks[o] for o in prog.outs])


def _padded(m: int) -> int:
    # a pack's row length: a multiple of the 16 doubles the matrix kernels take at a time
    return -(-m // 16) * 16


def _rank(src: tuple) -> int:
    # the inner factor of a group is a pack when there is one (its loop is contiguous)
    return {"one": 0, "vec": 1, "val": 2, "pack": 3, "prod": 3}[src[0]]


def _merged(found: list, prog: Program) -> list | None:
    # three factors, two of them the same row of two packs of one size: ("prod", p, q) and the
    # third; None otherwise
    for a, b in ((0, 1), (0, 2), (1, 2)):
        (sa, ia), (sb, ib) = found[a], found[b]
        if sa[0] == sb[0] == "pack" and ia == ib:
            p, q = sorted((sa[1], sb[1]))
            if prog.packs[p].rows == prog.packs[q].rows:
                rest = found[3 - a - b]
                return [(("prod", p, q), ia), rest]
    return None


def _nodes(tree: Any) -> Any:
    yield tree
    if tree[0] == "op":
        for t in tree[2]:
            yield from _nodes(t)
    elif tree[0] == "lin":
        for t in tree[1]:
            yield from _nodes(t)
        yield from _nodes(tree[4])
