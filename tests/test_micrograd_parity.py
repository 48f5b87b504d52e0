"""symgrad.nn prints its modules as micrograd does (micrograd is the referee, when installed)."""

from __future__ import annotations

import math

import pytest

from symgrad import Value
from symgrad.nn import MLP, Layer, Neuron

micrograd_nn = pytest.importorskip("micrograd.nn")


@pytest.mark.parametrize("shape", [(2, [2, 1]), (3, [4, 4, 1]), (1, [1]), (4, [3, 2, 5])])
def test_mlp_repr_is_micrograds(shape) -> None:
    nin, nouts = shape
    assert repr(MLP(nin, nouts)) == repr(micrograd_nn.MLP(nin, nouts))


@pytest.mark.parametrize("nonlin", [True, False])
def test_neuron_and_layer_repr_are_micrograds(nonlin: bool) -> None:
    assert repr(Neuron(3, nonlin=nonlin)) == repr(micrograd_nn.Neuron(3, nonlin=nonlin))
    assert repr(Layer(3, 2, nonlin=nonlin)) == repr(micrograd_nn.Layer(3, 2, nonlin=nonlin))


def test_other_activations_name_themselves() -> None:
    assert repr(Neuron(2, activation="tanh")) == "TanhNeuron(2)"
    assert repr(Neuron(2, activation="sigmoid")) == "SigmoidNeuron(2)"


# ------------------------------------------------------------------ where micrograd raises
# docs/conventions.md lists these; symgrad (and PyTorch) answer with IEEE numbers instead
micrograd_engine = pytest.importorskip("micrograd.engine")


def _pow_minus_one(V):
    return (V(0.0) ** -1).data


def _overflow(V):
    return (V(1e200) ** 2).data


def _x_pow_0_backward(V):
    x = V(0.0)
    (x**0).backward()
    return x.grad


def _deep_chain(V):
    x = V(0.5)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.backward()
    return x.grad


@pytest.mark.parametrize(
    "program, error, ours",
    [
        (_pow_minus_one, ZeroDivisionError, math.inf),
        (_overflow, OverflowError, math.inf),
        (_x_pow_0_backward, ZeroDivisionError, 0.0),
        (_deep_chain, RecursionError, 1.0),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_micrograd_raises_where_symgrad_answers(program, error, ours) -> None:
    with pytest.raises(error):
        program(micrograd_engine.Value)
    assert program(Value) == ours


def test_micrograd_goes_complex_where_symgrad_gives_nan() -> None:
    assert isinstance((micrograd_engine.Value(-2.0) ** 0.5).data, complex)
    assert math.isnan((Value(-2.0) ** 0.5).data)
