"""micrograd's ``Module``, ``Neuron``, ``Layer`` and ``MLP``, with a symbolic twin.

Calling a module on numbers (or :class:`~symgrad.Value` objects) runs micrograd's scalar path:
the same graph, the same numbers. :meth:`Module.symbolic` builds the same network once as SymPy
expressions over input symbols and parameter symbols (named by the parameters' labels); the
compiled trainer (:mod:`symgrad.nn.train`) differentiates and compiles that.

Defaults are micrograd's: ReLU hidden layers, a linear last layer, weights drawn from
``random.uniform(-1, 1)`` in micrograd's order (layer by layer, neuron by neuron, weight by
weight) and bias 0, so ``random.seed(1337)`` gives micrograd's initial weights. The lecture's
network (tanh everywhere, random biases) is ``MLP(..., variant="lecture")``.

>>> import random
>>> random.seed(1337)
>>> model = MLP(2, [16, 16, 1])
>>> len(model.parameters())
337
>>> round(model.layers[0].neurons[0].w[0].data, 6)
0.235506
"""

from __future__ import annotations

import itertools
import math
import random as _random
from collections.abc import Sequence

import sympy as sp

from ..construct import maximum, times_symbol
from ..errors import InputTypeError, OptionError, ShapeError
from ..graph import paused_gc, unevaluated
from ..inputs import check_choice, describe
from ..value import Value

__all__ = ["ACTIVATIONS", "INITS", "MLP", "Layer", "Module", "Neuron"]

ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
#: Initialisation schemes: micrograd (U(-1, 1), bias 0), lecture (U(-1, 1) weights and bias),
#: xavier (Glorot uniform U(-a, a), a = sqrt(6 / (fan_in + fan_out)), bias 0),
#: he (Gaussian with std sqrt(2 / fan_in), bias 0).
INITS = ("micrograd", "lecture", "xavier", "he")


#: The most weights a module builds (about 200 MB of Values): one SymPy symbol per weight makes
#: networks impractical long before this (docs/limits.md: use symgrad.nn.Dense), and a size beyond
#: it is a mistake that would otherwise allocate until memory runs out.
MAX_WEIGHTS = 1_000_000


def _check_count(n: object, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputTypeError(f"{what} must be a positive integer, got {describe(n)}")
    _check_weights(n, what)
    return n


def _check_weights(count: int, what: str) -> None:
    if count > MAX_WEIGHTS:
        shown = f"{count:,}" if count < 10**15 else f"about 10^{len(str(count)) - 1}"
        raise OptionError(
            f"{what} needs {shown} weights, more than the {MAX_WEIGHTS:,} a scalar network "
            "builds; for wide layers use symgrad.nn.Dense, which keeps W x + b one matrix "
            "expression"
        )


_NAMES = {"relu": "ReLU"}  # micrograd prints ReLUNeuron


def _activate_value(act: Value, activation: str) -> Value:
    if activation == "relu":
        return act.relu()
    if activation == "tanh":
        return act.tanh()
    if activation == "sigmoid":
        return act.sigmoid()
    return act


def _activate_expr(act: sp.Expr, activation: str) -> sp.Expr:
    from ..functions import sigmoid

    if activation == "relu":
        return maximum(sp.S.Zero, act)
    if activation == "tanh":
        return unevaluated(sp.tanh, act)
    if activation == "sigmoid":
        return unevaluated(sigmoid, act)
    return act


class Module:
    """Base class: something with parameters (micrograd's ``Module``).

    >>> class Two(Module):
    ...     def __init__(self):
    ...         self.a, self.b = Value(1.0), Value(2.0)
    ...     def parameters(self):
    ...         return [self.a, self.b]
    >>> m = Two(); m.a.grad = 5.0; m.zero_grad(); m.a.grad
    0.0
    """

    def zero_grad(self) -> None:
        """Reset the gradient of every parameter to 0 (``backward()`` accumulates).

        >>> import random
        >>> n = Neuron(1, nonlin=False, rng=random.Random(0))
        >>> n([2.0]).backward(); n.w[0].grad
        2.0
        >>> n.zero_grad(); n.w[0].grad
        0.0
        """
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self) -> list[Value]:
        """The trainable :class:`~symgrad.Value` objects, in a fixed order.

        >>> Module().parameters()
        []
        """
        return []

    def symbolic(self, inputs: Sequence[sp.Expr]) -> list[sp.Expr]:
        """The module's outputs as SymPy expressions of ``inputs`` and parameter symbols.

        >>> import random, sympy as sp
        >>> Layer(1, 2, rng=random.Random(0)).symbolic([sp.Symbol("x")])
        [Max(0, N0.b + N0.w0*x), Max(0, N1.b + N1.w0*x)]
        """
        raise NotImplementedError(f"{type(self).__name__} has no symbolic form")

    def parameter_symbols(self) -> list[sp.Symbol]:
        """One symbol per parameter (named by its label), in ``parameters()`` order.

        >>> import random
        >>> Neuron(2, rng=random.Random(0)).parameter_symbols()
        [w0, w1, b]
        """
        return [sp.Symbol(p.label) for p in self.parameters()]


class Neuron(Module):
    """One neuron: ``activation(b + sum_i w_i x_i)``.

    Args:
        nin: number of inputs.
        nonlin: apply the activation (micrograd's flag); ``False`` gives a linear neuron.
        activation: ``"relu"`` (micrograd's default), ``"tanh"`` (the lecture's),
            ``"sigmoid"`` or ``"linear"``.
        init: one of :data:`INITS`.
        rng: a ``random.Random``; default the ``random`` module itself (so that
            ``random.seed`` reproduces micrograd).
        fan_out: the layer's width, for Xavier initialisation.
        name: a prefix for the parameters' labels.

    >>> import random
    >>> n = Neuron(2, rng=random.Random(1))
    >>> out = n([1.0, -1.0])
    >>> round(out.data, 6)
    0.0
    >>> [p.label for p in n.parameters()]
    ['w0', 'w1', 'b']
    """

    def __init__(
        self,
        nin: int,
        nonlin: bool = True,
        *,
        activation: str = "relu",
        init: str = "micrograd",
        rng: _random.Random | None = None,
        fan_out: int = 1,
        name: str = "",
    ) -> None:
        nin = _check_count(nin, "nin")
        self.activation = check_choice(activation, ACTIVATIONS, "activation")
        init = check_choice(init, INITS, "init")
        if rng is not None and not isinstance(rng, _random.Random):
            raise InputTypeError(f"rng must be a random.Random, got {describe(rng)}")
        draw = rng if rng is not None else _random  # the module: micrograd's global stream
        if init in ("micrograd", "lecture"):
            ws = [draw.uniform(-1, 1) for _ in range(nin)]
        elif init == "xavier":
            a = math.sqrt(6.0 / (nin + fan_out))
            ws = [draw.uniform(-a, a) for _ in range(nin)]
        else:  # he
            std = math.sqrt(2.0 / nin)
            ws = [draw.gauss(0.0, std) for _ in range(nin)]
        bias = draw.uniform(-1, 1) if init == "lecture" else 0.0
        self.w = [Value(w, label=f"{name}w{i}") for i, w in enumerate(ws)]
        self.b = Value(bias, label=f"{name}b")
        self.nonlin = bool(nonlin)

    def _check_inputs(self, x: Sequence) -> None:
        if isinstance(x, (str, bytes)) or not hasattr(x, "__len__"):
            raise InputTypeError(f"a neuron's input must be a sequence of numbers, got {x!r}")
        if len(x) != len(self.w):
            raise ShapeError(f"this neuron takes {len(self.w)} inputs, got {len(x)}")

    def __call__(self, x: Sequence[float | Value]) -> Value:
        self._check_inputs(x)
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        return _activate_value(act, self.activation) if self.nonlin else act

    def symbolic(self, inputs: Sequence[sp.Expr]) -> list[sp.Expr]:
        """``[activation(b + sum w_i x_i)]`` over parameter symbols.

        >>> import random, sympy as sp
        >>> Neuron(2, activation="tanh", rng=random.Random(0)).symbolic(sp.symbols("x y"))
        [tanh(b + w0*x + w1*y)]
        """
        self._check_inputs(inputs)
        return [self._symbolic([times_symbol(x) for x in inputs])]

    def _symbolic(self, times: list) -> sp.Expr:
        # ``times``: per input x, construct.times_symbol(x) (shared by a layer's neurons).
        # Products built directly (construct.mul): an evaluating Mul per weight would run
        # SymPy's assumption deductions on every fresh symbol.
        *ws, b = self._symbols()
        terms = [b, *(t(w) for t, w in zip(times, ws, strict=True))]
        act = sp.Add(*terms, evaluate=False)
        return _activate_expr(act, self.activation) if self.nonlin else act

    def parameters(self) -> list[Value]:
        return [*self.w, self.b]

    def parameter_symbols(self) -> list[sp.Symbol]:
        return list(self._symbols())

    def _symbols(self) -> list[sp.Symbol]:
        # the parameters' symbols, made once per set of labels: symbolic() and
        # parameter_symbols() then give the same objects (SymPy's own cache of symbols holds
        # only the last thousand or so, so a large network's were made twice and compared by
        # value at every later lookup)
        labels = [p.label for p in self.parameters()]
        cached = self.__dict__.get("_symbol_cache")
        if cached is None or cached[0] != labels:
            cached = self._symbol_cache = (labels, [sp.Symbol(name) for name in labels])
        return cached[1]

    def __repr__(self) -> str:
        kind = (
            _NAMES.get(self.activation, self.activation.capitalize()) if self.nonlin else "Linear"
        )
        return f"{kind}Neuron({len(self.w)})"


class Layer(Module):
    """``nout`` neurons that see the same inputs.

    Args:
        nin: inputs per neuron.
        nout: number of neurons.
        **kwargs: passed to every :class:`Neuron` (``nonlin``, ``activation``, ``init``,
            ``rng``, ``name``).

    >>> import random
    >>> layer = Layer(3, 2, rng=random.Random(0))
    >>> len(layer([1.0, 2.0, 3.0]))
    2
    """

    def __init__(self, nin: int, nout: int, **kwargs) -> None:
        nout = _check_count(nout, "nout")
        _check_weights(_check_count(nin, "nin") * nout, f"a layer of {nin} x {nout}")
        prefix = kwargs.pop("name", "")
        self.neurons = [
            Neuron(nin, fan_out=nout, name=f"{prefix}N{j}.", **kwargs) for j in range(nout)
        ]

    def __call__(self, x: Sequence[float | Value]) -> Value | list[Value]:
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    @paused_gc()  # many objects, no cycles: see paused_gc
    def symbolic(self, inputs: Sequence[sp.Expr]) -> list[sp.Expr]:
        self.neurons[0]._check_inputs(inputs)
        times = [times_symbol(x) for x in inputs]  # measured once for every neuron
        return [n._symbolic(times) for n in self.neurons]

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def parameter_symbols(self) -> list[sp.Symbol]:
        return [s for n in self.neurons for s in n.parameter_symbols()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """A multi-layer perceptron, micrograd's by default.

    Args:
        nin: number of inputs.
        nouts: the width of each layer; the last is the number of outputs.
        activation: the hidden layers' activation (default ``"relu"``).
        linear_output: whether the last layer is linear (default ``True``, as in micrograd).
        init: one of :data:`INITS` (default ``"micrograd"``).
        rng: a ``random.Random`` (default: the ``random`` module, as micrograd).
        variant: ``"lecture"`` for the lecture's network (tanh everywhere, random biases);
            it sets ``activation``, ``linear_output`` and ``init``.

    Raises:
        InputTypeError: ``nin`` or a width is not a positive integer.
        OptionError: an unknown activation, init or variant.

    >>> import random
    >>> model = MLP(3, [4, 4, 1], variant="lecture", rng=random.Random(0))
    >>> model
    MLP of [Layer of [TanhNeuron(3), ...], Layer of [...], Layer of [TanhNeuron(4)]]
    >>> -1 < model([2.0, 3.0, -1.0]).data < 1
    True
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        *,
        activation: str = "relu",
        linear_output: bool = True,
        init: str = "micrograd",
        rng: _random.Random | None = None,
        variant: str | None = None,
    ) -> None:
        if variant is not None:
            check_choice(variant, ("micrograd", "lecture"), "variant")
            if variant == "lecture":
                activation, linear_output, init = "tanh", False, "lecture"
        nin = _check_count(nin, "nin")
        if isinstance(nouts, (str, bytes)) or not isinstance(nouts, Sequence) or not nouts:
            raise InputTypeError(f"nouts must be a non-empty list of layer widths, got {nouts!r}")
        sz = [nin, *(_check_count(n, "a layer width") for n in nouts)]
        _check_weights(sum(a * b for a, b in itertools.pairwise(sz)), f"an MLP of sizes {sz}")
        self.layers = [
            Layer(
                sz[i],
                sz[i + 1],
                nonlin=not (linear_output and i == len(nouts) - 1),
                activation=activation,
                init=init,
                rng=rng,
                name=f"L{i}.",
            )
            for i in range(len(nouts))
        ]
        self.nin = nin
        self.nout = sz[-1]

    def __call__(self, x: Sequence[float | Value]) -> Value | list[Value]:
        for layer in self.layers:
            x = layer(x)
            if isinstance(x, Value):
                x = [x]
        return x[0] if len(x) == 1 else x

    @paused_gc()  # many objects, no cycles: see paused_gc
    def symbolic(self, inputs: Sequence[sp.Expr]) -> list[sp.Expr]:
        """The outputs as SymPy expressions (a list, one per output).

        >>> import random, sympy as sp
        >>> MLP(1, [1], rng=random.Random(0)).symbolic([sp.Symbol("x")])
        [L0.N0.b + L0.N0.w0*x]
        """
        out = list(inputs)
        for layer in self.layers:
            out = layer.symbolic(out)
        return out

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    @paused_gc()
    def parameter_symbols(self) -> list[sp.Symbol]:
        return [s for layer in self.layers for s in layer.parameter_symbols()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
