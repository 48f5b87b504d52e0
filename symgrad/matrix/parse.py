r"""Safe parsing of matrix formulas in the notation of matrixcalculus.org.

Like :func:`symgrad.parse.parse`, text is never evaluated: a tokenizer and a recursive-descent
parser recognise numbers, declared names, the operators below and allow-listed functions, and
build the expression with the shape-checked constructors of :mod:`symgrad.matrix.expr`. Input is
bounded (length, nodes, nesting, exponents) before any work is done, and every failure, shape
mismatches included, is a :class:`~symgrad.errors.ParseError` with a caret under the problem.

=====================  =====================================================
``A'`` or ``A.T``      transpose
``*``                  matrix product (or a scalar times anything)
``.*`` or ``⊙``        entrywise product; ``./`` entrywise division
``^``                  power of a scalar; of a square matrix: integer powers, ``^(-1)``
``.^``                 entrywise power
``+ -``                sums of equal shapes
``tr det logdet inv``  trace, determinant, log-determinant, inverse
``norm2 sum``          Euclidean/Frobenius norm, sum of all entries
``exp log sin ...``    entrywise functions (``tanh sigmoid relu step softplus sqrt abs`` ...)
``vector(c)``          the vector ``c 1`` (its length taken from the other operand);
``matrix(c)``          likewise a matrix of ``c``
=====================  =====================================================

Shapes are declared: ``shapes={"A": ("n", "n"), "x": ("n",)}`` makes ``A`` an ``n x n``
matrix and ``x`` a column of length ``n`` (dimensions are names or positive integers); names
not declared are scalars.

>>> f = parse("x'*A*x", shapes={"A": ("n", "n"), "x": ("n",)})
>>> f
x.T*A*x
>>> parse("x'*A", shapes={"A": ("n", "n"), "x": ("m",)})
Traceback (most recent call last):
...
symgrad.errors.ParseError: matmul: x.T has shape (1, m) and A has shape (n, n); ...
    x'*A
      ^
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import sympy as sp
from sympy.matrices.expressions import MatrixExpr, MatrixSymbol
from sympy.matrices.expressions.special import OneMatrix

from ..errors import InputTypeError, ParseError, SymgradError
from ..functions import relu as _relu
from ..functions import sigmoid as _sigmoid
from ..parse import MAX_NAME_LENGTH
from . import expr as mx

__all__ = ["MATRIX_FUNCTIONS", "parse"]

MAX_LENGTH = 10_000
MAX_NODES = 2_000
MAX_DEPTH = 60
MAX_MATRIX_POWER = 16  # A^k is k - 1 products
MAX_EXPONENT = 1_000
MAX_NUMBER_BITS = 14_000

_ELEMENTWISE = {
    "exp": sp.exp,
    "log": sp.log,
    "ln": sp.log,
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "tanh": sp.tanh,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "sqrt": sp.sqrt,
    "abs": sp.Abs,
    "sigmoid": _sigmoid,
    "relu": _relu,
    "softplus": mx.Softplus,
    "step": lambda u: sp.Heaviside(u, 0),  # relu's derivative (0 at 0)
}
_REDUCTIONS = ("tr", "det", "logdet", "inv", "norm2", "sum", "vector", "matrix", "diag")
MATRIX_FUNCTIONS = frozenset(_ELEMENTWISE) | frozenset(_REDUCTIONS)

_SPACE = re.compile(r"[ \t\r\n]*")
_TOKEN = re.compile(
    r"(?P<num>(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\.\*|\./|\.\^|\.T(?![A-Za-z0-9_])|[-+*/^(),'⊙])"
)


class _Token(NamedTuple):
    kind: str  # "num", "name", "op" or "end"
    text: str
    pos: int


class _Ones(NamedTuple):
    """``vector(c)`` / ``matrix(c)`` before its shape is known from the other operand."""

    value: sp.Expr
    kind: str  # "vector" or "matrix"
    pos: int


def _tokens(text: str) -> list[_Token]:
    out, pos = [], 0
    while True:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= len(text):
            out.append(_Token("end", "", pos))
            return out
        m = _TOKEN.match(text, pos)
        if m is None:
            char = text[pos]
            reason = (
                "strings are not allowed"
                if char == '"'
                else f"the character {char!r} is not allowed in a matrix formula"
            )
            raise ParseError(reason, text, pos)
        kind = m.lastgroup or "op"
        out.append(_Token(kind, m.group(), pos))
        pos = m.end()


def _dim(value: Any, name: str) -> sp.Expr:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise InputTypeError(f"shape of {name}: dimensions must be >= 1, got {value}")
        return sp.Integer(value)
    if isinstance(value, str) and value.isidentifier() and value.isascii():
        if value.isdigit():
            return sp.Integer(int(value))
        return sp.Symbol(value, integer=True, positive=True)
    if isinstance(value, str) and value.isdigit() and int(value) >= 1:
        return sp.Integer(int(value))
    raise InputTypeError(
        f"shape of {name}: a dimension is a positive int or a name such as 'n', got {value!r}"
    )


def _symbols(shapes: Mapping[str, Any] | None) -> dict[str, sp.Basic]:
    table: dict[str, sp.Basic] = {}
    if shapes is None:
        return table
    if not isinstance(shapes, Mapping):
        raise InputTypeError(f"shapes must be a dict name -> shape tuple, got {shapes!r}")
    for name, shape in shapes.items():
        if not (isinstance(name, str) and name.isidentifier() and name.isascii()):
            raise InputTypeError(f"shapes: {name!r} is not a valid name")
        if name.startswith("_") or len(name) > MAX_NAME_LENGTH or name in MATRIX_FUNCTIONS:
            raise InputTypeError(f"shapes: {name!r} may not be used as a name")
        if not isinstance(shape, (tuple, list)) or len(shape) > 2:
            raise InputTypeError(
                f"shape of {name} must be () for a scalar, (n,) for a column or (m, n), "
                f"got {shape!r}"
            )
        dims = [_dim(d, name) for d in shape]
        if not dims:
            table[name] = sp.Symbol(name)
        else:
            rows, cols = (dims[0], sp.S.One) if len(dims) == 1 else dims
            table[name] = MatrixSymbol(name, rows, cols)
    return table


class _Parser:
    def __init__(self, text: str, symbols: dict[str, sp.Basic]) -> None:
        self.text, self.symbols = text, symbols
        self.toks = _tokens(text)
        self.i, self.depth, self.nodes = 0, 0, 0

    # -- helpers
    @property
    def tok(self) -> _Token:
        return self.toks[self.i]

    def take(self) -> _Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def error(self, reason: str, pos: int | None = None) -> ParseError:
        return ParseError(reason, self.text, self.tok.pos if pos is None else pos)

    def expect(self, op: str) -> None:
        if self.tok.text != op or self.tok.kind != "op":
            got = "the end" if self.tok.kind == "end" else repr(self.tok.text)
            raise self.error(f"expected {op!r}, found {got}")
        self.take()

    def count(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error(f"formula too large (more than {MAX_NODES} operations and names)")

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"formula nested too deeply (more than {MAX_DEPTH} levels)", pos)

    def guarded(self, pos: int, fn: Any, *args: Any) -> Any:
        """Run a constructor; a shape or type problem becomes a ParseError at ``pos``."""
        try:
            return fn(*args)
        except ParseError:
            raise
        except SymgradError as err:
            raise ParseError(str(err), self.text, pos) from None

    # -- grammar
    def parse(self) -> Any:
        out = self.resolve(self.sum(), None, self.tok.pos)
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r}")
        return out

    def sum(self) -> Any:
        left = self.product()
        while self.tok.text in ("+", "-") and self.tok.kind == "op":
            op = self.take()
            self.count()
            right = self.product()
            left = self.binary(op, left, right)
        return left

    def product(self) -> Any:
        left = self.unary()
        chain: list[MatrixExpr] = []  # A*B*C*...: one product, not a quadratic fold
        start = self.tok
        while self.tok.kind == "op" and self.tok.text in ("*", "/", ".*", "⊙", "./"):
            op = self.take()
            self.count()
            right = self.unary()
            if op.text == "*" and _is_mat(left) and _is_mat(right):
                if not chain:
                    start = op
                last = chain[-1] if chain else left
                if last.shape[1] != right.shape[0]:
                    self.guarded(op.pos, mx.matmul, last, right)  # the error, at this '*'
                chain.append(right)
                continue
            if chain:
                left, chain = self.guarded(start.pos, mx.matmul, left, *chain), []
            left = self.binary(op, left, right)
        if chain:
            left = self.guarded(start.pos, mx.matmul, left, *chain)
        return left

    def unary(self) -> Any:
        if self.tok.kind == "op" and self.tok.text in ("-", "+"):
            op = self.take()
            self.nest(op.pos)
            inner = self.unary()
            self.depth -= 1
            if op.text == "+":
                return inner
            if isinstance(inner, _Ones):
                return inner._replace(value=-inner.value)
            return self.guarded(op.pos, _scale, -1, inner) if _is_mat(inner) else -inner
        return self.power()

    def power(self) -> Any:
        base = self.postfix()
        if self.tok.kind == "op" and self.tok.text in ("^", ".^"):
            op = self.take()
            self.count()
            self.nest(op.pos)
            exponent = self.unary()
            self.depth -= 1
            return self.raise_to(op, base, exponent)
        return base

    def postfix(self) -> Any:
        out = self.primary()
        while self.tok.kind == "op" and self.tok.text in ("'", ".T"):
            op = self.take()
            self.count()
            if isinstance(out, _Ones):
                raise self.error(
                    "transpose vector(...)/matrix(...) after giving it a shape", op.pos
                )
            if isinstance(out, MatrixExpr):
                out = self.guarded(op.pos, mx.transpose, out)
        return out

    def primary(self) -> Any:
        tok = self.take()
        self.count()
        if tok.kind == "num":
            value = sp.Float(tok.text) if any(c in tok.text for c in ".eE") else None
            if value is None:
                if len(tok.text) > 300:
                    raise self.error("integer too long (at most 300 digits)", tok.pos)
                value = sp.Integer(int(tok.text))
            return value
        if tok.kind == "name":
            if self.tok.text == "(" and self.tok.kind == "op":
                return self.call(tok)
            if tok.text in MATRIX_FUNCTIONS:
                raise self.error(f"{tok.text} is a function: write {tok.text}(...)", tok.pos)
            if tok.text in self.symbols:
                return self.symbols[tok.text]
            if tok.text.startswith("_") or len(tok.text) > MAX_NAME_LENGTH:
                raise self.error("names may not start with '_' or be longer than 64", tok.pos)
            if tok.text in ("pi", "e"):
                return sp.pi if tok.text == "pi" else sp.E
            self.symbols[tok.text] = sp.Symbol(tok.text)
            return self.symbols[tok.text]
        if tok.kind == "op" and tok.text == "(":
            self.nest(tok.pos)
            inner = self.sum()
            self.expect(")")
            self.depth -= 1
            return inner
        got = "the end of the formula" if tok.kind == "end" else repr(tok.text)
        raise self.error(f"expected a number, a name, a function or '(', found {got}", tok.pos)

    def call(self, name: _Token) -> Any:
        fn = name.text
        if fn not in MATRIX_FUNCTIONS:
            raise self.error(
                f"unknown function {fn!r}; known: {', '.join(sorted(MATRIX_FUNCTIONS))}", name.pos
            )
        self.expect("(")
        self.nest(name.pos)
        arg = self.sum()
        self.expect(")")
        self.depth -= 1
        if fn in ("vector", "matrix"):
            if isinstance(arg, (MatrixExpr, _Ones)) or not getattr(arg, "is_number", False):
                raise self.error(f"{fn}(c) needs a number c, e.g. {fn}(1)", name.pos)
            return _Ones(arg, fn, name.pos)
        arg = self.resolve(arg, None, name.pos)
        if fn in _ELEMENTWISE:
            f = _ELEMENTWISE[fn]
            return self.guarded(name.pos, mx.elementwise, f, arg) if _is_mat(arg) else f(arg)
        if fn == "sum":
            return self.guarded(name.pos, mx.sum, arg) if _is_mat(arg) else arg
        if fn == "norm2":
            if not _is_mat(arg):
                return sp.Abs(arg)
            return sp.sqrt(self.guarded(name.pos, mx.sumsq, arg))
        if fn == "diag":
            from sympy.matrices.expressions.diagonal import DiagMatrix

            if not _is_mat(arg) or arg.shape[1] != 1:
                raise self.error("diag(v) needs a column vector v", name.pos)
            return DiagMatrix(arg)
        if not _is_mat(arg):
            raise self.error(f"{fn} needs a square matrix, got the scalar {arg}", name.pos)
        maker = {"tr": mx.trace, "det": mx.det, "logdet": mx.logdet, "inv": mx.inverse}[fn]
        return self.guarded(name.pos, maker, arg)

    # -- operators
    def resolve(self, value: Any, like: Any, pos: int) -> Any:
        """Give ``vector(c)`` / ``matrix(c)`` the shape of ``like`` (a matrix)."""
        if not isinstance(value, _Ones):
            return value
        if not _is_mat(like):
            raise self.error(
                f"the shape of {value.kind}({value.value}) cannot be inferred here; combine it "
                f"with a matrix operand (e.g. log(v + vector(1)))",
                value.pos,
            )
        rows, cols = like.shape
        if value.kind == "vector" and cols != 1:
            raise self.error(
                f"vector({value.value}) is added to a matrix of shape {mx._fmt(like.shape)}; "
                f"use matrix({value.value})",
                value.pos,
            )
        return mx.scale(value.value, OneMatrix(rows, cols))

    def binary(self, op: _Token, left: Any, right: Any) -> Any:
        if op.text == "*" and isinstance(right, _Ones) and _is_mat(left):
            # A * vector(c): a column whose length is A's number of columns
            right = mx.scale(right.value, OneMatrix(left.shape[1], 1))
        left = self.resolve(left, right, op.pos)
        right = self.resolve(right, left, op.pos)
        a, b = _is_mat(left), _is_mat(right)
        text = op.text
        if text in ("+", "-"):
            if a != b:
                left, right = _scalar_of(left), _scalar_of(right)
                if _is_mat(left) or _is_mat(right):
                    raise self.error(
                        f"{text}: cannot combine a scalar with a matrix; use matrix(c) or "
                        f"vector(c) for a constant matrix",
                        op.pos,
                    )
            if not (a and b):
                return left + right if text == "+" else left - right
            fn = mx.add if text == "+" else mx.sub
            return self.guarded(op.pos, fn, left, right)
        if text == "*":
            if a and b:
                return self.guarded(op.pos, mx.matmul, left, right)
            if a or b:
                return self.guarded(op.pos, _scale, right if a else left, left if a else right)
            return left * right
        if text == "/":
            if b:
                raise self.error("'/' divides by a scalar; use './' for entrywise division", op.pos)
            return self.guarded(op.pos, _scale, 1 / right, left) if a else left / right
        # entrywise: .* ⊙ ./
        if not (a and b):
            return left * right if text != "./" else left / right
        if text == "./":
            right = self.guarded(op.pos, mx.elementwise, lambda u: 1 / u, right)
        return self.guarded(op.pos, mx.hadamard, left, right)

    def raise_to(self, op: _Token, base: Any, exponent: Any) -> Any:
        exponent = _scalar_of(self.resolve(exponent, None, op.pos))
        if _is_mat(exponent):
            raise self.error("exponents must be scalars", op.pos)
        if exponent.is_number and exponent.is_real and abs(exponent) > MAX_EXPONENT:
            raise self.error(f"exponents are limited to +-{MAX_EXPONENT}", op.pos)
        base = self.resolve(base, None, op.pos)
        if not _is_mat(base):
            if base.is_Rational and exponent.is_number:  # exact powers grow: bound them first
                bits = max(base.p.bit_length(), base.q.bit_length()) * abs(float(exponent))
                if bits > MAX_NUMBER_BITS:
                    raise self.error(f"exact numbers are limited to {MAX_NUMBER_BITS} bits", op.pos)
            return base**exponent
        if op.text == ".^":
            return self.guarded(op.pos, mx.elementwise, lambda u: u**exponent, base)
        if tuple(base.shape) == (1, 1):
            return mx.sum(base) ** exponent
        if exponent == -1:
            return self.guarded(op.pos, mx.inverse, base)
        if not (exponent.is_Integer and 1 <= exponent <= MAX_MATRIX_POWER):
            raise self.error(
                f"a matrix power needs an integer exponent 1..{MAX_MATRIX_POWER} or -1 (use "
                f"'.^' for entrywise powers)",
                op.pos,
            )
        return self.guarded(op.pos, mx.matmul, *([base] * int(exponent)))


def _is_mat(e: Any) -> bool:
    return isinstance(e, MatrixExpr)


def _scalar_of(e: Any) -> Any:
    """A 1x1 matrix as the scalar it stands for (``x'*y`` in a scalar context)."""
    return mx.sum(e) if _is_mat(e) and tuple(e.shape) == (1, 1) else e


def _scale(c: Any, A: MatrixExpr) -> MatrixExpr:
    return mx.scale(_scalar_of(c), A)


def parse(text: str, shapes: Mapping[str, Any] | None = None) -> Any:
    """Parse a matrix formula (matrixcalculus.org notation) into a matrix expression; no eval.

    Args:
        text: the formula, e.g. ``"norm2(X*w - y)^2"``.
        shapes: name -> ``()`` (scalar), ``(n,)`` (column) or ``(m, n)`` (matrix); dimensions
            are positive ints or names (which become positive integer symbols).

    Returns:
        A SymPy matrix expression, or a scalar expression (sums, traces, norms, ...).

    Raises:
        ParseError: the text is not a formula, uses an unknown function, has mismatched shapes
            or exceeds the bounds; the message points at the problem.
        InputTypeError: ``text`` is not a string or ``shapes`` is malformed.

    >>> parse("norm2(X*w - y)^2", {"X": ("m", "n"), "w": ("n",), "y": ("m",)})
    SumAll(HadamardProduct(X*w - y, X*w - y))
    """
    if not isinstance(text, str):
        raise InputTypeError(f"parse needs a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"formula too long ({len(text)} > {MAX_LENGTH} characters)", text, None)
    if not text.strip():
        raise ParseError("the formula is empty", text, 0)
    return _Parser(text, _symbols(shapes)).parse()
