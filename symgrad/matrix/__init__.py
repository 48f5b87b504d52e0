"""Matrix calculus: networks as matrix expressions, textbook gradients, BLAS-speed NumPy code.

Build expressions from ``sympy.MatrixSymbol`` with the shape-checked constructors here, take
gradients with symgrad's own reverse-mode rules (:func:`grad`, never SymPy's matrix ``diff``),
closed-form Hessians (:func:`hessian`, :func:`hvp`), print them as LaTeX (:func:`latex`) and
compile them (:func:`compile_matrix`, :func:`value_and_grad`). Layers, losses and optimisers
live in :mod:`symgrad.matrix.nn`.

>>> import sympy as sp
>>> from symgrad import matrix as mx
>>> W, x, y = sp.MatrixSymbol("W", 2, 3), sp.MatrixSymbol("x", 3, 1), sp.MatrixSymbol("y", 2, 1)
>>> mx.grad(mx.sumsq(mx.sub(mx.matmul(W, x), y)), W)
2*(W*x - y)*x.T
"""

from .codegen import CompiledMatrixFunction, compile_matrix, value_and_grad
from .expr import (
    Broadcast,
    LogDet,
    LogSumExp,
    Map,
    Softmax,
    SumAll,
    SumAxis,
    add,
    broadcast,
    det,
    elementwise,
    exp,
    hadamard,
    inverse,
    log,
    logdet,
    logsumexp,
    matmul,
    mean,
    relu,
    scale,
    sigmoid,
    softmax,
    softplus,
    sub,
    sum,
    sumsq,
    tanh,
    trace,
    transpose,
)
from .hessian import hessian, hvp, jacobian
from .latex import latex
from .vjp import backprop_equations, grad, vjp

__all__ = [
    "Broadcast",
    "CompiledMatrixFunction",
    "LogDet",
    "LogSumExp",
    "Map",
    "Softmax",
    "SumAll",
    "SumAxis",
    "add",
    "backprop_equations",
    "broadcast",
    "compile_matrix",
    "det",
    "elementwise",
    "exp",
    "grad",
    "hadamard",
    "hessian",
    "hvp",
    "inverse",
    "jacobian",
    "latex",
    "log",
    "logdet",
    "logsumexp",
    "matmul",
    "mean",
    "relu",
    "scale",
    "sigmoid",
    "softmax",
    "softplus",
    "sub",
    "sum",
    "sumsq",
    "tanh",
    "trace",
    "transpose",
    "value_and_grad",
    "vjp",
]
