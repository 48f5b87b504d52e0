"""Matrix calculus: networks as matrix expressions, textbook gradients, BLAS-speed NumPy code.

Build expressions from ``sympy.MatrixSymbol`` with the shape-checked constructors here, or
from text in matrixcalculus.org notation (:func:`parse`); take gradients with symgrad's own
reverse-mode rules (:func:`grad`, never SymPy's matrix ``diff``), closed-form Hessians and
Jacobians (:func:`hessian`, :func:`hvp`, :func:`jacobian`), the chain rule step by step
(:func:`derive`); results come out in textbook form (:func:`simplify`) and print as LaTeX
(:func:`latex`) or text (:func:`text`); compile them (:func:`compile_matrix`,
:func:`value_and_grad`; :func:`sgd_step` compiles a whole SGD step, the update inside).
Networks of matrix layers, and their training, are :class:`symgrad.nn.Dense` on
:mod:`symgrad.nn`'s one training stack.

>>> import sympy as sp
>>> from symgrad import matrix as mx
>>> W, x, y = sp.MatrixSymbol("W", 2, 3), sp.MatrixSymbol("x", 3, 1), sp.MatrixSymbol("y", 2, 1)
>>> mx.grad(mx.sumsq(mx.sub(mx.matmul(W, x), y)), W)
2*(W*x - y)*x.T
>>> f = mx.parse("x'*A*x", shapes={"A": ("n", "n"), "x": ("n",)})
>>> mx.text(mx.grad(f, f.args[-1]))
"(A + A')*x"
"""

from .codegen import CompiledMatrixFunction, compile_matrix, value_and_grad
from .derive import MatrixDerivation, derive
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
from .parse import parse
from .simplify import simplify
from .step import CompiledMatrixStep, sgd_step
from .text import text
from .vjp import backprop_equations, grad, vjp

__all__ = [
    "Broadcast",
    "CompiledMatrixFunction",
    "CompiledMatrixStep",
    "LogDet",
    "LogSumExp",
    "Map",
    "MatrixDerivation",
    "Softmax",
    "SumAll",
    "SumAxis",
    "add",
    "backprop_equations",
    "broadcast",
    "compile_matrix",
    "derive",
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
    "parse",
    "relu",
    "scale",
    "sgd_step",
    "sigmoid",
    "simplify",
    "softmax",
    "softplus",
    "sub",
    "sum",
    "sumsq",
    "tanh",
    "text",
    "trace",
    "transpose",
    "value_and_grad",
    "vjp",
]
