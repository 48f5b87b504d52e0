"""Dense layers found in a scalar loss, and its mean gradient compiled as matrix products.

A network written in scalar code (``symgrad.nn.MLP``, micrograd-style loops, a user's own
sums) is, as a SymPy expression, a chain of *layers*: every neuron is a sum
``b_i + sum_j w_ij u_j`` of distinct parameters ``w_ij``, ``b_i`` times the same units ``u_j``
(the inputs, or the previous layer's activations ``f(z_j)``), and each unit is read only by the
next layer. Reverse mode over such a chain is matrix algebra, layer by layer:

    Z = U W^T + b,  U' = f(Z)                 (forward, samples as rows)
    dZ = dU' * f'(Z),  dW = dZ^T U,  db = sum_rows dZ,  dU = dZ W     (backward)

so the batch-mean gradient of ``head(scores, inputs) + c * sum(theta_i**2)`` needs the chain
rule only on the head and on each layer's activation *template* ``f(u)``, each derived once by
symgrad's own rules (:func:`~symgrad.codegen.compile.value_and_grad` of a few nodes), not once
per parameter. :func:`lift` finds the chain in the linearised DAG (one pass, linear in its
size); anything it does not recognise exactly returns None and the caller compiles the whole
scalar program as usual. The lifted function answers calls with shared parameters (a vector of
float64) and float64 inputs; every other call (per-sample parameters, complex or float32
inputs, an empty batch, mismatched shapes) goes to the scalar program, built on first need, so
answers, errors and warnings stay those of :func:`~symgrad.codegen.compile.value_and_grad`.

>>> import random, numpy as np, sympy as sp
>>> from symgrad.nn import MLP, hinge
>>> from symgrad.codegen import value_and_grad
>>> x, y = list(sp.symbols("x0:2")), sp.Symbol("y")
>>> model = MLP(2, [16, 16, 1], rng=random.Random(0))
>>> theta = model.parameter_symbols()
>>> loss = hinge(model.symbolic(x), [y])
>>> f = value_and_grad(loss, theta, [*x, y, theta], reduce="mean")
>>> "_Z1 = _U0 @ _W1.T" in f.source  # the layers as matrix products
True
>>> p = np.array([q.data for q in model.parameters()])
>>> value, grad = f(np.array([0.5, -1.0]), np.array([1.0, 2.0]), np.array([1.0, -1.0]), p)
>>> grad.shape
(337,)
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from ..graph import Linear, rebuild
from .compile import CompiledFunction, _array_value_and_grad
from .runtime import _MISSING, _coerce, _coerce_vector, _dense_columns, _too_many

__all__ = ["FLOATS_BY_SCALAR", "LIFT_MIN"]

#: Networks with fewer parameters than this are compiled as scalar programs. Lifting costs
#: about a millisecond (the head's and activations' derivation, as tapes), less than the
#: scalar setup of any network, and its steps are as fast from 37 parameters up: every network
#: is lifted (2: at least a weight and a second parameter).
LIFT_MIN = 2
#: A network with fewer parameters than this answers calls on Python floats (one sample,
#: micrograd style) with the scalar program, compiled on the first such call: its float path
#: takes about 5 us a call at 37 parameters, where the layers' NumPy calls take about 60. Larger
#: networks answer them by layers: their scalar setup would cost more than it saves.
FLOATS_BY_SCALAR = 256


@dataclass
class _Layer:
    units: list[int]  # DAG positions of the units read (the columns of W)
    neurons: list[int]  # DAG positions of the sums (the rows of W)
    weights: np.ndarray  # (rows, columns) positions in theta
    bias: np.ndarray | None  # (rows,) positions in theta
    template: Any  # the activation f(u) as an expression of _U, or None (linear)
    outputs: list[int]  # DAG positions of the layer's outputs (f(z_i), or z_i)


_U = sp.Dummy("u")


def lift(
    expr: sp.Expr,
    dag: Linear,
    syms: list[sp.Symbol],
    args: list,
    name: str,
    float_outputs: str,
    general: Any,
    relift: tuple,
) -> Any:
    """``value_and_grad(..., reduce="mean")`` compiled by layers, or None when not a network.

    Args:
        expr: the loss (one sample).
        dag: ``linearise([expr])``.
        syms: the parameters (``wrt``).
        args: the compiled function's arguments: scalar symbols, and ``syms`` as one vector.
        name: the generated function's name.
        float_outputs: as for :func:`~symgrad.codegen.compile.lambdify`.
        general: called without arguments, compiles the scalar program (the fallback).
        relift: ``(callable, arguments)`` rebuilding this function (pickling).
    """
    found = _recognise(dag, syms, args)
    if found is None:
        return None
    layers, head, scalars, vector_at, l2, inputs = found
    body, s_syms, read_args = head
    reads = [k for k, i in enumerate(scalars) if i in read_args]  # the inputs the head reads
    head_fn = _array_value_and_grad(body, s_syms, [*s_syms, *[args[scalars[k]] for k in reads]])
    compiled: dict = {}  # one function per distinct activation (a ReLU network's layers share one)
    for layer in layers:
        if layer.template is not None and layer.template not in compiled:
            compiled[layer.template] = _array_value_and_grad(layer.template, _U, [_U])
    acts = [None if layer.template is None else compiled[layer.template] for layer in layers]
    names = [a.name if not isinstance(a, list) else f"a vector of {len(a)}" for a in args]
    net = _Network(
        layers, head_fn, acts, scalars, inputs, reads, vector_at, len(args), len(syms), l2,
        names, float_outputs, _Lazy(general),
    )  # fmt: skip
    info = {"name": name, "backend": "numpy", "reduce": "mean", "float_outputs": float_outputs}
    out = LiftedFunction(net, "", args, None, **info)
    # the pieces' own code, for the reader (each runs on its own), listed when first shown
    shown = [("_head", "the loss in the outputs: value and gradient", head_fn)]
    shown += [(f"_act{k + 1}", "an activation and its derivative", a) for k, a in enumerate(acts)]
    out.__dict__.update(_relift=relift, _pieces=shown)
    return out


# ----------------------------------------------------------------------------- recognising
def _recognise(dag: Linear, syms, args):
    order, args_of = dag.order, dag.args
    n = len(order)
    if len(syms) < max(LIFT_MIN, 2):  # the layers' parameters are among them
        return None
    vectors = [i for i, a in enumerate(args) if isinstance(a, list)]
    if len(vectors) != 1 or list(args[vectors[0]]) != list(syms):
        return None
    vector_at = vectors[0]
    scalars = [i for i, a in enumerate(args) if i != vector_at]
    if not all(isinstance(args[i], sp.Symbol) for i in scalars):
        return None
    param = [-1] * n
    for k, s in enumerate(syms):
        i = dag.index.get(s)
        if i is None or param[i] >= 0:
            return None  # a parameter the loss does not read (its gradient is 0), or twice
        param[i] = k
    arg_of: dict[int, int] = {}  # DAG position of an input -> its argument position
    for i in scalars:
        at = dag.index.get(args[i])
        if at is not None and (param[at] >= 0 or at in arg_of):
            return None  # an input that is also a parameter, or given twice
        if at is not None:
            arg_of[at] = i
    uses = [0] * n
    parent = [-1] * n
    for i, a in enumerate(args_of):
        for j in a:
            uses[j] += 1
            parent[j] = i
    # products w * u of one parameter and one non-parameter node
    prod: dict[int, tuple[int, int]] = {}
    for i, node in enumerate(order):
        if node.is_Mul and len(args_of[i]) == 2:
            a, b = args_of[i]
            if param[a] >= 0 and param[b] < 0:
                prod[i] = (param[a], b)
            elif param[b] >= 0 and param[a] < 0:
                prod[i] = (param[b], a)
    # neurons: sums of such products (each read only here) and at most one bare parameter
    groups: dict[frozenset, list[int]] = {}
    neuron: dict[int, tuple[dict[int, int], int]] = {}
    for i, node in enumerate(order):
        if not node.is_Add:
            continue
        by_unit: dict[int, int] = {}
        bias = -1
        for t in args_of[i]:
            pu = prod.get(t)
            if pu is not None and uses[t] == 1 and pu[1] not in by_unit:
                by_unit[pu[1]] = pu[0]
            elif param[t] >= 0 and bias < 0:
                bias = param[t]
            else:
                by_unit = {}
                break
        if by_unit:
            neuron[i] = (by_unit, bias)
            groups.setdefault(frozenset(by_unit), []).append(i)
    first = [g for g in groups if g <= arg_of.keys()]
    if len(first) != 1:
        return None
    layers: list[_Layer] = []
    units_key = first[0]
    units = sorted(units_key)
    while True:
        rows = groups.get(units_key)
        if rows is None:
            break
        layer = _layer(rows, units, neuron, order, args_of, uses, parent, param)
        if layer is None:
            return None
        layers.append(layer)
        units, units_key = layer.outputs, frozenset(layer.outputs)
        if len(units_key) != len(units):
            return None
    # every parameter is one weight or one bias, exactly once (so the layers hold all of them,
    # at least LIFT_MIN)
    held = [a.ravel() for w in layers for a in (w.weights, w.bias) if a is not None]
    if not (np.bincount(np.concatenate(held), minlength=len(syms)) == 1).all():
        return None
    # hidden layers' outputs are read by the next layer's products only
    for layer, nxt in itertools.pairwise(layers):
        if any(uses[o] != len(nxt.neurons) for o in layer.outputs):
            return None
    split = _head(dag, layers[-1].outputs, param, set(arg_of))
    if split is None:
        return None
    head, marks, l2, reads = split
    units = [arg_of[u] for u in layers[0].units]
    return layers, (head, marks, sorted(arg_of[r] for r in reads)), scalars, vector_at, l2, units


def _layer(rows, units, neuron, order, args_of, uses, parent, param) -> _Layer | None:
    column = {u: j for j, u in enumerate(units)}
    weights = np.empty((len(rows), len(units)), dtype=np.int64)
    biases = [neuron[r][1] for r in rows]
    if len({b < 0 for b in biases}) != 1:
        return None  # some neurons with a bias, some without
    for i, r in enumerate(rows):
        for u, k in neuron[r][0].items():
            weights[i, column[u]] = k
    # the activation: each sum read once, by a node whose other arguments are numbers, the
    # same function for every neuron of the layer
    keys, outs = set(), []
    for r in rows:
        p = parent[r] if uses[r] == 1 else -1
        if p < 0 or param[p] >= 0 or order[p].is_Add or order[p].is_Mul:
            keys.add(None)
            outs.append(r)
            continue
        node, pa = order[p], args_of[p]
        if pa.count(r) != 1 or not all(a == r or order[a].is_Number for a in pa):
            keys.add(None)
            outs.append(r)
            continue
        keys.add((node.func, tuple(None if a == r else order[a] for a in pa)))
        outs.append(p)
        example = node
    if len(keys) != 1:
        return None
    (key,) = keys
    template = None
    if key is not None:
        # unevaluated, as the network's own nodes (SymPy's Max would sort and compare)
        template = rebuild(example, [_U if a is None else a for a in key[1]])
        if not isinstance(template, sp.Expr) or template.free_symbols != {_U}:
            return None
    bias = None if biases[0] < 0 else np.array(biases, dtype=np.int64)
    return _Layer(units, rows, weights, bias, template, outs)


def _head(dag: Linear, outputs, param: list, inputs: set):
    # The loss with the last layer's outputs as symbols: the per-sample part, rebuilt
    # unevaluated (SymPy's evaluating constructors would rewrite a softmax's exp and Max at
    # great cost), reading no parameter and no symbol but the inputs (DAG positions); and L2
    # terms c * sum(p**2) (their gradient is 2 c theta). Also the input positions it reads.
    marks = [sp.Dummy(f"s{k}") for k in range(len(outputs))]
    memo: dict[int, Any] = dict(zip(outputs, marks, strict=True))
    root = len(dag.order) - 1
    terms = dag.args[root] if dag.order[root].is_Add else [root]
    per_sample, l2, reads = [], [], set()
    for t in terms:
        found = _l2(t, dag, param)  # parameters only: nothing to replace in it
        if found is not None:
            l2.append(found)
            continue
        term = _rebuilt(t, dag, memo, param, inputs, reads)
        if term is None:
            return None
        per_sample.append(term)
    body = per_sample[0] if len(per_sample) == 1 else sp.Add(*per_sample, evaluate=False)
    return body, marks, l2, reads


def _rebuilt(top: int, dag: Linear, memo: dict, param: list, inputs: set, reads: set) -> Any:
    # the node at position ``top`` with the nodes in ``memo`` replaced (post-order, iterative;
    # it never descends below a replaced node); None if it reads a parameter or a symbol that
    # is not an input
    stack = [(top, False)]
    while stack:
        i, ready = stack.pop()
        if i in memo:
            continue
        kids = dag.args[i]
        if not ready:
            if not kids:
                node = dag.order[i]
                if param[i] >= 0 or (node.is_Symbol and i not in inputs):
                    return None
                if i in inputs:
                    reads.add(i)
                memo[i] = node
                continue
            stack.append((i, True))
            stack.extend((k, False) for k in kids if k not in memo)
            continue
        node = dag.order[i]
        new = [memo[k] for k in kids]
        same = all(a is b for a, b in zip(new, node.args, strict=True))
        memo[i] = node if same else rebuild(node, new)
    return memo[top]


def _l2(t: int, dag: Linear, param: list):
    # (c, [theta positions]) for c * p**2 or c * (p1**2 + p2**2 + ...), c a real number
    order, args_of = dag.order, dag.args
    term, at = order[t], t
    c = sp.S.One
    if term.is_Mul:
        rest = [k for k in args_of[t] if not order[k].is_Number]
        if len(rest) != 1:
            return None
        c = sp.Mul(*[order[k] for k in args_of[t] if order[k].is_Number])
        at = rest[0]
    squares = args_of[at] if order[at].is_Add else [at]
    out = []
    for q in squares:
        node, kids = order[q], args_of[q]
        if not (node.is_Pow and len(kids) == 2 and param[kids[0]] >= 0 and node.exp == 2):
            return None
        out.append(param[kids[0]])
    if c.is_real is not True or not math.isfinite(float(c)):
        return None
    return float(c), out


# ----------------------------------------------------------------------------- running
class _Part:
    """Entries of a vector at fixed positions (a layer's weights or biases in theta, and in the
    gradient): a view where the positions are affine, else a gather.

    ``get(vec)`` reads them, ``put(vec, value)`` writes them; both are chosen once, here.
    """

    __slots__ = ("get", "put", "size", "text")

    def __init__(self, idx: np.ndarray) -> None:
        self.size, self.text = idx.size, None
        self.get: Any = operator.itemgetter(idx)  # a gather, unless the positions are affine
        self.put: Any = functools.partial(_put_at, idx)
        view = _view(idx)
        if view is None:
            return
        whole, shape, picked, self.text = view
        if shape is None:
            self.get = operator.itemgetter(whole)
            self.put = functools.partial(_put_at, whole)
            return
        if picked is None:
            self.get = functools.partial(_block, whole, shape)
        else:
            self.get = functools.partial(_picked, whole, shape, picked)
        self.put = functools.partial(_put_into, self.get)

    def shown(self, name: str) -> str:
        if self.text is None:
            return f"{name}[<{self.size} gathered positions>]"
        return name + self.text


def _view(idx: np.ndarray):
    # (slice of the vector, shape or None, columns picked or None, text) where the positions
    # are affine, else None
    flat = idx.ravel()
    start = int(flat[0])
    if idx.ndim == 1:
        step = int(flat[1] - flat[0]) if flat.size > 1 else 1
        if step <= 0 or not (flat == start + step * np.arange(flat.size)).all():
            return None
        stop = start + step * (flat.size - 1) + 1
        text = f"[{start}:{stop}]" if step == 1 else f"[{start}:{stop}:{step}]"
        return slice(start, stop, step), None, None, text
    rows, cols = idx.shape
    rs = int(idx[1, 0] - idx[0, 0]) if rows > 1 else cols
    cs = int(idx[0, 1] - idx[0, 0]) if cols > 1 else 1
    want = start + rs * np.arange(rows)[:, None] + cs * np.arange(cols)[None, :]
    if cs <= 0 or rs < cols * cs or not (idx == want).all():
        return None
    whole = slice(start, start + rs * rows)
    if cs == 1 and rs == cols:  # a block of consecutive rows
        return whole, (rows, cols), None, f"[{whole.start}:{whole.stop}].reshape({rows}, {cols})"
    shown = f":{cols}" if cs == 1 else f"0:{cols * cs}:{cs}"
    text = f"[{whole.start}:{whole.stop}].reshape({rows}, {rs})[:, {shown}]"
    return whole, (rows, rs), slice(0, cols * cs, cs), text


def _block(whole: slice, shape: tuple, vec: np.ndarray) -> np.ndarray:
    return vec[whole].reshape(shape)


def _picked(whole: slice, shape: tuple, picked: slice, vec: np.ndarray) -> np.ndarray:
    return vec[whole].reshape(shape)[:, picked]


def _put_at(key: Any, vec: np.ndarray, value: np.ndarray) -> None:
    vec[key] = value


def _put_into(get: Any, vec: np.ndarray, value: np.ndarray) -> None:
    get(vec)[...] = value  # a view of vec


class _Network:
    """The lifted function's body: the layers' matrix products and the pieces' calls, run as
    NumPy calls (nothing is compiled; :meth:`source` shows them as statements).

    Argument checks and every call the layers cannot answer are the scalar program's
    (``general``, built on first need).
    """

    def __init__(self, layers, head, acts, scalars, inputs, reads, vector_at, nargs, size, l2,
                 names, floats, general):  # fmt: skip
        self.layers = [
            (_Part(layer.weights), None if layer.bias is None else _Part(layer.bias), act)
            for layer, act in zip(layers, acts, strict=True)
        ]
        self.head, self.general, self.floats, self.names = head, general, floats, names
        self.scalars, self.vector_at, self.nargs, self.size = tuple(scalars), vector_at, nargs, size
        self.small = size < FLOATS_BY_SCALAR
        column = {i: k for k, i in enumerate(scalars)}
        self.inputs, self.reads = [column[i] for i in inputs], list(reads)
        coef = np.zeros(size)
        for c, ps in l2:
            np.add.at(coef, ps, c)
        self.l2: Any = None
        if coef.any():
            self.l2 = float(coef[0]) if (coef == coef[0]).all() else coef

    def __call__(self, *args: Any) -> Any:
        n, names = self.nargs, self.names
        if len(args) > n:
            _too_many(names, args[n:])
        if len(args) < n:
            args += (_MISSING,) * (n - len(args))
        sc = [args[k] for k in self.scalars]
        floats_in = all(type(x) is float for x in sc)
        # the arguments' errors first, in the scalar program's words, before anything is built
        pairs = zip(self.scalars, sc, strict=True)
        xs = None if floats_in else [_coerce(x, k, names) for k, x in pairs]
        given = args[self.vector_at]
        th = _coerce_vector(given, self.vector_at, names, self.size)
        if floats_in and (self.small or (type(given) is list and not _all_floats(given))):
            # a small network's float path; a list of other numbers: the float path computes
            # in the list's own types
            return self.general(*args)
        if xs is None:
            xs = [_coerce(x, k, names) for k, x in zip(self.scalars, sc, strict=True)]
        cols = _dense_columns(xs, th)
        if cols is None:  # per-sample parameters, other dtypes, empty batches
            return self.general(*args)
        v, g, _ = self.mean(*cols, th)
        if floats_in and (type(given) is np.ndarray or _all_floats(given)):
            return float(v), (tuple(g.tolist()) if self.floats == "tuple" else g)
        return v, g

    def forward(self, c: list, th: np.ndarray) -> np.ndarray:
        """The last layer's outputs (samples as rows) for the inputs' columns ``c`` (as for
        :meth:`mean`; only the network's inputs are read), unchecked."""
        u = np.array([c[k] for k in self.inputs]).T
        for weights, bias, act in self.layers:
            w = weights.get(th)
            u = u @ w.T if bias is None else u @ w.T + bias.get(th)
            if act is not None:
                u = act(u)[0]
        return u

    def mean(self, c: list, batch: int, th: np.ndarray) -> tuple:
        """``(batch-mean loss, its gradient, the outputs)`` by layers, unchecked.

        ``c``: each scalar argument's values as a 1-D float64 array of length ``batch`` (> 0),
        in argument order; ``th``: the parameters, a 1-D float64 array. The outputs are the
        last layer's, samples as rows. (``symgrad.nn.Trainer`` calls this with its own arrays.)
        """
        u = np.array([c[k] for k in self.inputs]).T  # samples as rows (a transposed view)
        kept = []
        for weights, bias, act in self.layers:
            w = weights.get(th)
            z = u @ w.T if bias is None else u @ w.T + bias.get(th)
            du = None
            if act is not None:
                z, du = act(z)
            kept.append((u, w, du))
            u = z
        out = u
        value, dout = self.head(*u.T, *[c[k] for k in self.reads])
        # the batch mean (numpy's mean is this sum over the count, through a Python wrapper)
        v = value.sum() / batch if type(value) is np.ndarray and value.ndim else np.mean(value)
        d = dout.T / batch
        g = np.empty(self.size)
        for k in range(len(kept) - 1, -1, -1):
            weights, bias, _ = self.layers[k]
            u, w, du = kept[k]
            dz = d if du is None else d * du
            weights.put(g, dz.T @ u)
            if bias is not None:
                bias.put(g, dz.sum(axis=0))
            if k:
                d = dz @ w
        if self.l2 is not None:
            if type(self.l2) is float:
                v = v + self.l2 * (th @ th)
                g += 2 * self.l2 * th
            else:
                v = v + th @ (self.l2 * th)
                g += 2.0 * self.l2 * th
        return v, g, out

    def source(self, name: str) -> str:
        """The statements :meth:`__call__` runs on the layers' path."""
        lines = [f"def {name}(*args):  # checks and fallbacks: the scalar program's"]
        lines.append(f"    _U0 = numpy.stack(<the {len(self.inputs)} input columns>, axis=1)")
        for k, (weights, bias, act) in enumerate(self.layers, 1):
            lines.append(f"    _W{k} = {weights.shown('_th')}")
            z = f"_U{k - 1} @ _W{k}.T"
            if bias is not None:
                lines.append(f"    _b{k} = {bias.shown('_th')}")
                z += f" + _b{k}"
            lines.append(f"    _Z{k} = {z}")
            lines.append(f"    _U{k}, _D{k} = _act{k}(_Z{k})" if act else f"    _U{k} = _Z{k}")
        last = len(self.layers)
        reads = f"<the {len(self.reads)} input columns it reads>"
        lines.append(f"    _hv, _hg = _head(*_U{last}.T, {reads})")
        lines.append("    _v = _hv.mean()")
        lines.append("    _d = _hg.T / <batch size>")
        lines.append(f"    _g = numpy.empty({self.size})")
        for k in range(last, 0, -1):
            weights, bias, act = self.layers[k - 1]
            lines.append(f"    _dZ = _d * _D{k}" if act else "    _dZ = _d")
            lines.append(f"    {weights.shown('_g')} = _dZ.T @ _U{k - 1}")
            if bias is not None:
                lines.append(f"    {bias.shown('_g')} = _dZ.sum(axis=0)")
            if k > 1:
                lines.append(f"    _d = _dZ @ _W{k}")
        if type(self.l2) is float:
            lines.append(f"    _v = _v + {self.l2!r} * (_th @ _th)")
            lines.append(f"    _g += {2 * self.l2!r} * _th")
        elif self.l2 is not None:
            lines.append("    _v = _v + _th @ (<L2 coefficients> * _th)")
            lines.append("    _g += 2.0 * <L2 coefficients> * _th")
        lines.append("    return _v, _g")
        return "\n".join(lines) + "\n"


def _all_floats(items: Any) -> bool:
    # a list of Python floats: the scalar program's float path answers such calls with floats
    return type(items) is list and all(type(q) is float for q in items)


class _Lazy:
    """The scalar program, compiled on the first call that needs it (once, under a lock)."""

    def __init__(self, build) -> None:
        self._build, self._fn, self._lock = build, None, threading.Lock()

    def get(self) -> Any:
        if self._fn is None:
            with self._lock:
                if self._fn is None:
                    self._fn = self._build()
        return self._fn

    def __call__(self, *args: Any) -> Any:
        return self.get()(*args)


class LiftedFunction(CompiledFunction):
    """A :class:`CompiledFunction` whose gradient is computed layer by layer.

    Its export, formulas (``outputs``) and pickling go through the scalar program.
    """

    @property
    def source(self) -> str:
        """The lifted function's code, then its pieces' (the head's and activations') as
        comments."""
        d = self.__dict__
        text = d.get("_listed")
        if text is None:  # listed on the first look
            seen: set = set()
            text = self.func.source(self.name)
            for label, what, piece in d["_pieces"]:
                if piece is None or id(piece) in seen:
                    continue
                seen.add(id(piece))
                lines = piece.source.splitlines()
                text += f"# {label}: {what}\n" + "".join(f"#   {ln}\n" for ln in lines)
            d["_listed"] = text
        return text

    @property
    def outputs(self) -> Any:
        return self.func.general.get().outputs

    def export(self, path: Any, target: str = "numpy") -> None:
        self.func.general.get().export(path, target)

    def __reduce__(self):
        return self.__dict__["_relift"]
