"""symgrad.nn prints its modules as micrograd does (micrograd is the referee, when installed)."""

from __future__ import annotations

import pytest

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
