"""Safe parsing of text into SymPy expressions.

SymPy's ``sympify`` and ``parse_expr`` run ``eval`` on their input, so they must never see
untrusted text. This module never evaluates text: a small tokenizer and recursive-descent parser
recognise only numbers, names, ``+ - * / ** ^``, parentheses and calls of allow-listed functions,
and build SymPy objects directly. Anything else (attributes, strings, brackets, keywords, ...)
cannot even be tokenized. Every failure is a :class:`~symgrad.errors.ParseError` that points at
the offending character.

SymPy evaluates eagerly (``9**9**9`` would compute a 370-million-digit integer), so the parser
also bounds the work SymPy is asked to do *before* asking: see the limits in :func:`parse`.

>>> parse("3*x^2 - 4*x + 5")
3*x**2 - 4*x + 5
"""

from __future__ import annotations

import builtins
import keyword
import math
import operator
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import sympy as sp

from .errors import DomainError, InputTypeError, ParseError
from .functions import relu, sigmoid

__all__ = ["CONSTANTS", "FUNCTION_NAMES", "parse"]

MAX_LENGTH = 100_000  # characters; checked before anything else
MAX_NODES = 5_000  # numbers, names, calls, operators; SymPy needs up to ~0.2 ms per node
MAX_DEPTH = 100  # nesting of (), calls, signs and powers; SymPy recurses over deep trees
MAX_EXPONENT = 1_000  # |numeric exponent| on a base with symbols, e.g. x**1000
MAX_NUMBER_BITS = 14_000  # exact numbers and constant magnitudes; 4214 digits < str's 4300
MAX_NAME_LENGTH = 64
_MAX_ROOT_BITS = 2_048  # exact roots make SymPy test primality: ~10 s at 13,000 bits
_MAX_ARG_BITS = 1_024  # trig/floor of constants beyond a double's range need that much precision
_CHEAP_BITS = 64  # constant arguments below 2**64 are cheap to evaluate and are not charged
_MAX_MINMAX_ARGS = 4  # SymPy compares Max/Min arguments pairwise, ~1 ms per pair
# SymPy answers questions about constants (is it zero? positive?) by evaluating them, at a cost
# exponential in their nesting: 1/(1 + exp(-c)) nested 20 deep does not finish. So constants
# (subexpressions without symbols) stay small and flat.
_MAX_CONSTANT_HEIGHT = 5
_MAX_CONSTANT_NODES = 64

CONSTANTS = MappingProxyType({"pi": sp.pi, "e": sp.E, "E": sp.E})

# name -> (SymPy callable, minimum, maximum number of arguments)
_FUNCTIONS: dict[str, tuple[object, int, int]] = {
    name: (getattr(sp, name), 1, 1)
    for name in (
        *("sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "acot", "asec"),
        *("acsc", "sinh", "cosh", "tanh", "coth", "sech", "csch", "asinh", "acosh", "atanh"),
        *("acoth", "asech", "acsch", "exp", "sqrt", "cbrt", "erf", "sign", "floor", "ceiling"),
        *("Abs", "re", "im"),  # SymPy prints re/im, e.g. Abs(exp(x)) is exp(re(x))
    )
}
_FUNCTIONS |= {
    "atan2": (sp.atan2, 2, 2),
    "log": (sp.log, 1, 2),  # log(x, base)
    "ln": (sp.log, 1, 1),
    "abs": (sp.Abs, 1, 1),
    "heaviside": (sp.Heaviside, 1, 2),  # Heaviside(x, value at 0)
    "Heaviside": (sp.Heaviside, 1, 2),
    "sigmoid": (sigmoid, 1, 1),
    "relu": (relu, 1, 1),
}
_FUNCTIONS |= {n: (sp.Max, 2, _MAX_MINMAX_ARGS) for n in ("max", "Max")}
_FUNCTIONS |= {n: (sp.Min, 2, _MAX_MINMAX_ARGS) for n in ("min", "Min")}
FUNCTION_NAMES = frozenset(_FUNCTIONS)

_ROOTS = {"sqrt": sp.S.Half, "cbrt": sp.Rational(1, 3)}  # built as powers, so they are charged
_EXP_LIKE = frozenset({"exp", "sinh", "cosh", "tanh", "coth", "sech", "csch", "sigmoid"})
_ROUNDING = frozenset({"floor", "ceiling"})
_BIG_ARG = frozenset({"sin", "cos", "tan", "cot", "sec", "csc"}) | _ROUNDING

# Names SymPy prints for values this parser refuses; reading them as symbols would be a trap.
_RESERVED = {
    "I": "'I' (the imaginary unit) is not supported: symgrad works with real expressions",
    "oo": "infinity is not supported",
    "inf": "infinity is not supported",
    "zoo": "complex infinity is not supported",
    "nan": "nan is not supported",
}
# Generated code refers to these; a parameter with the same name would shadow them.
_CODE_NAMES = frozenset({"math", "numpy", "np", "mpmath", "scipy", "sympy", "builtins"})
_CODE_NAMES |= {name for name in dir(builtins) if not name.startswith("_")}

_COMPLEX = "the value is complex (e.g. sqrt(-1), acos(2)); only real expressions are supported"
_NONFINITE = frozenset(map(id, (sp.nan, sp.zoo, sp.oo, -sp.oo)))  # SymPy singletons

_SPACE = re.compile(r"[ \t\r\n]*")
_TOKEN = re.compile(
    r"(?P<num>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|//|[-+*/^(),])"
)
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]*")
_CHAR_REASONS = {
    char: reason.format(char)  # "{!r}" names the character
    for chars, reason in [
        (".", "'.' may only appear inside numbers (attribute access is not allowed)"),
        ("'\"", "strings are not allowed"),
        ("[]", "brackets (lists, indexing) are not allowed"),
        ("{}", "braces are not allowed"),
        ("=", "'=' is not allowed (no assignments, comparisons or keyword arguments)"),
        ("<>!", "comparisons are not allowed"),
        ("%@", "the {!r} operator is not supported"),
        ("&|~", "bitwise operators are not supported ('^' means power here)"),
        (":", "':' is not allowed (no lambdas, slices or annotations)"),
        (";", "';' is not allowed: give a single expression"),
        ("#", "comments are not allowed"),
    ]
    for char in chars
}


class _Token(NamedTuple):
    kind: str  # "num", "name", "op" or "end"
    text: str
    pos: int


def _name_problem(name: str) -> str | None:
    """Why ``name`` may not be a symbol name (``None`` if it may)."""
    if not (name.isascii() and name.isidentifier()):
        return "names must be ASCII identifiers (letters, digits and '_')"
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword"
    if name.startswith("__"):
        return "names may not start with '__'"
    if name.startswith("_"):
        return "names may not start with '_' (reserved for generated code)"
    if len(name) > MAX_NAME_LENGTH:
        return f"names may be at most {MAX_NAME_LENGTH} characters long"
    if name in _RESERVED:
        return _RESERVED[name]
    if name in _CODE_NAMES:
        return f"{name!r} is reserved: a Python builtin or a module name generated code uses"
    return None


def _log2_abs(value: sp.Expr) -> float | None:
    """log2 of |value| for a real constant; ``None`` if it is complex or cannot be evaluated.

    Only called on small constants whose parts all passed the parser's bounds, so the
    low-precision ``evalf`` (SymPy caps its working precision at 100 digits) is cheap.
    """
    if value.is_Rational:
        return -math.inf if value.p == 0 else math.log2(abs(value.p)) - math.log2(value.q)
    try:
        approx = value if value.is_Float else value.evalf(15)
        parts = (approx, sp.S.Zero) if approx.is_Float else approx.as_real_imag()
    except Exception:  # any failure means "cannot bound it"
        return None
    sizes = []
    for part in parts:
        if part.is_zero:
            sizes.append(-math.inf)
        elif part.is_Float:
            _, mantissa, exponent, _ = part._mpf_
            sizes.append(exponent + math.log2(mantissa))
        else:  # infinite or left unevaluated
            return None
    real, imag = sizes
    # evalf may leave a rounding residue such as 0.69 - 5e-28*I, relative to the real part (or
    # below 2**-1040 when that is exactly 0); more than that is complex, however small the
    # value: (-1e300)**-pi is -3.0e-943 + 1.4e-943*I
    limit = real - 40 if real > -math.inf else -1040.0
    return real if imag < limit else None


def _near_integer(value: sp.Expr, log2_size: float) -> bool:
    """Whether a real constant lies within 2**-40 of an integer (or cannot be evaluated)."""
    try:
        approx = value.evalf(int((max(log2_size, 0) + 64) * math.log10(2)) + 1)
    except Exception:  # cannot tell, so assume the worst
        return True
    if not approx.is_Float:
        return True
    fraction = abs(approx - int(approx))
    return min(fraction, 1 - fraction) < 2**-40


def _exact_bits(expr: sp.Expr) -> float:
    """Bits of the exact numbers SymPy multiplies out when ``expr`` is raised to a power.

    SymPy distributes powers over products and powers (``(2*x)**9`` is ``512*x**9``) but not
    over sums or function arguments, so only numbers reached through Mul and Pow count.
    """
    total, stack = 0.0, [expr]
    while stack:
        node = stack.pop()
        if node.is_Rational and node.p != 0 and (abs(node.p), node.q) != (1, 1):
            total += math.log2(abs(node.p)) + math.log2(node.q)
        elif node.is_Mul or node.is_Pow:
            stack.extend(node.args)
    return total


def _about(bits: float) -> str:
    return f"about {bits:.3g} bits" if math.isfinite(bits) else "astronomically many bits"


def _symbol_table(symbols: object) -> dict[str, sp.Symbol]:
    """Normalise the ``symbols`` argument of :func:`parse` to a validated dict."""
    if symbols is None:
        return {}
    usage = "symbols must be a mapping name -> sympy.Symbol or an iterable of Symbols"
    if isinstance(symbols, Mapping):
        pairs = list(symbols.items())
    elif isinstance(symbols, (str, bytes, sp.Basic)) or not isinstance(symbols, Iterable):
        raise InputTypeError(f"{usage}, got {type(symbols).__name__}; e.g. sympy.symbols('x y')")
    else:
        pairs = [(getattr(s, "name", None), s) for s in symbols]
    table: dict[str, sp.Symbol] = {}
    for key, sym in pairs:
        if not isinstance(key, str) or not isinstance(sym, sp.Symbol):
            raise InputTypeError(f"{usage}, got an entry {key!r}: {sym!r}")
        for name in dict.fromkeys((key, sym.name)):
            problem = _name_problem(name)
            if name in FUNCTION_NAMES or name in CONSTANTS:
                problem = f"{name!r} already means a function or constant"
            if problem:
                raise ParseError(f"invalid symbol name {name!r}: {problem}")
        if table.get(key, sym) != sym:
            raise ParseError(f"two different symbols are given for the name {key!r}")
        table[key] = sym
    return table


class _Parser:
    """Recursive descent over the grammar (Python's precedence; ``^`` is a synonym of ``**``)::

    sum     := product (('+' | '-') product)*
    product := unary (('*' | '/') unary)*
    unary   := ('+' | '-') unary | power
    power   := atom (('**' | '^') unary)?          # right-associative, 2**-1 allowed
    atom    := NUMBER | NAME | NAME '(' [sum (',' sum)*] ')' | '(' sum ')'

    SymPy objects are built as soon as a rule is recognised, after the guards below.
    """

    def __init__(self, text: str, table: dict, strict: bool, limits: dict[str, int]) -> None:
        self.text, self.table, self.strict = text, table, strict
        self.max_nodes = limits["max_nodes"]
        self.max_depth = limits["max_depth"]
        self.max_exponent = limits["max_exponent"]
        self.max_bits = limits["max_number_bits"]
        self.nodes = self.depth = 0
        self.exact_bits = self.root_bits = self.eval_bits = 0.0  # cumulative budgets
        self.checked: dict[int, sp.Basic] = {}  # id -> object: subtrees already checked
        self.shapes: dict[int, tuple[int, int]] = {}  # id -> (height, nodes) of constants
        self.pos = 0
        self.tok = self._scan()

    def error(self, reason: str, pos: int | None) -> ParseError:
        return ParseError(reason, self.text, pos)

    # ----------------------------------------------------------------- tokens
    def _scan(self) -> _Token:
        """The token at ``self.pos``; scanning lazily reports errors in text order."""
        text = self.text
        start = _SPACE.match(text, self.pos).end()
        if start == len(text):
            return _Token("end", "", start)
        match = _TOKEN.match(text, start)
        if match is None:
            char = text[start]
            reason = _CHAR_REASONS.get(char, f"unexpected character {char!r}")
            if not char.isascii():
                reason = f"only ASCII characters are allowed (found {char!r})"
            elif not char.isprintable():
                reason = f"control characters are not allowed (found {char!r})"
            raise self.error(reason, start)
        kind, word, end = match.lastgroup, match.group(), match.end()
        if kind == "num":
            tail_end = _NUMBER_TAIL.match(text, end).end()
            if tail_end > end:  # 2x, 1j, 0x1f, 1_000, 1.2.3
                bad = text[start:tail_end]
                hint = " (complex numbers are not supported)" if bad[-1] in "jJ" else ""
                if not hint and bad[0] == "0" and bad[1:2] in tuple("xXoObB"):
                    hint = " (only decimal numbers are supported)"
                hint = hint or (" (write 2*x for a product)" if text[end].isalpha() else "")
                raise self.error(f"invalid number {bad!r}{hint}", start)
        if word == "//":
            raise self.error("floor division '//' is not supported; use floor(a/b)", start)
        self.pos = end
        return _Token(kind, word, start)

    def _advance(self) -> _Token:
        token, self.tok = self.tok, self._scan()
        return token

    def _at(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def _count(self, pos: int, weight: int = 1) -> None:
        self.nodes += weight
        if self.nodes > self.max_nodes:
            raise self.error(f"expression has more than {self.max_nodes} nodes", pos)

    def _enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise self.error(f"expression is nested more than {self.max_depth} levels deep", pos)

    def _unexpected(self, token: _Token) -> str:
        if token.kind == "end":
            return "unexpected end of input"
        if token.text == "(":
            return "unexpected '(': only allowed functions can be called (write * for products)"
        if token.text == ")" and self.depth == 0:
            return "unmatched ')'"
        if token.kind in ("name", "num"):
            return f"unexpected {token.text!r} (missing operator?)"
        return f"unexpected {token.text!r}: expected a number, a name or '('"

    def _close(self, opening: _Token) -> None:
        if not self._at(")"):
            raise self.error(
                f"expected ')' to close the '(' at position {opening.pos}"
                + (": tuples are not allowed" if self._at(",") else ""),
                self.tok.pos,
            )
        self._advance()
        self.depth -= 1

    # ---------------------------------------------------------------- grammar
    def parse(self) -> sp.Expr:
        value = self._sum()
        if self.tok.kind != "end":
            raise self.error(self._unexpected(self.tok), self.tok.pos)
        return value

    def _sum(self) -> sp.Expr:
        # Chains are collected and built by one Add/Mul: iterative (no depth per term) and
        # linear, where a+b+c+... built pairwise would re-flatten the sum at every step.
        start = self.tok.pos
        terms = [self._product()]
        while self._at("+", "-"):
            op = self._advance()
            self._count(op.pos)
            term = self._product()
            terms.append(term if op.text == "+" else self._apply(operator.neg, term, pos=op.pos))
        return terms[0] if len(terms) == 1 else self._apply(sp.Add, *terms, pos=start)

    def _product(self) -> sp.Expr:
        start = self.tok.pos
        factors = [self._unary()]
        while self._at("*", "/"):
            op = self._advance()
            self._count(op.pos)
            factor = self._unary()
            # a/b is Mul(a, Pow(b, -1)), exactly what SymPy's own a/b builds
            factors.append(
                factor if op.text == "*" else self._pow(factor, sp.S.NegativeOne, op.pos)
            )
        return factors[0] if len(factors) == 1 else self._apply(sp.Mul, *factors, pos=start)

    def _unary(self) -> sp.Expr:
        if not self._at("+", "-"):
            return self._power()
        op = self._advance()
        self._count(op.pos)
        self._enter(op.pos)
        operand = self._unary()  # -x**2 is -(x**2), as in Python
        self.depth -= 1
        return operand if op.text == "+" else self._apply(operator.neg, operand, pos=op.pos)

    def _power(self) -> sp.Expr:
        base = self._atom()
        if not self._at("**", "^"):
            return base
        op = self._advance()
        self._count(op.pos)
        self._enter(op.pos)
        exponent = self._unary()
        self.depth -= 1
        return self._pow(base, exponent, op.pos)

    def _atom(self) -> sp.Expr:
        token = self.tok
        if token.kind == "num":
            self._advance()
            self._count(token.pos)
            return self._number(token)
        if token.kind == "name":
            name = token.text
            # Judge the name before scanning on, so "__import__('os')" fails at the name.
            if name not in FUNCTION_NAMES and name not in CONSTANTS and name not in self.table:
                problem = _name_problem(name)
                if problem:
                    raise self.error(problem, token.pos)
            self._advance()
            self._count(token.pos)
            if self._at("("):
                return self._call(token)
            return self._name(token)
        if self._at("("):
            self._advance()
            self._enter(token.pos)
            value = self._sum()
            self._close(token)
            return value
        raise self.error(self._unexpected(token), token.pos)

    def _number(self, token: _Token) -> sp.Expr:
        word = token.text
        if any(c in word for c in ".eE"):
            # Floats are IEEE doubles, as NumPy will see them: Float(0.1) has 53 bits.
            value = float(word)
            if math.isinf(value):
                raise self.error("float literal overflows (beyond about 1.8e308)", token.pos)
            return sp.Float(value)
        if len(word) > 1 and word[0] == "0" and word.strip("0"):
            raise self.error("leading zeros are not allowed in integers (octal?)", token.pos)
        # Python's int() is quadratic in the digit count: bound it before converting.
        if len(word.lstrip("0")) > self.max_bits * math.log10(2) + 1:
            raise self.error(f"integer literal longer than {self.max_bits} bits", token.pos)
        try:
            value = int(word)
        except ValueError as exc:  # sys.set_int_max_str_digits may be lower than our bound
            raise self.error(f"integer literal too long ({exc})", token.pos) from exc
        if value.bit_length() > self.max_bits:
            raise self.error(f"integer literal longer than {self.max_bits} bits", token.pos)
        return sp.Integer(value)

    def _name(self, token: _Token) -> sp.Expr:
        name = token.text
        if name in self.table:
            return self.table[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTION_NAMES:
            raise self.error(f"{name!r} is a function; call it like {name}(x)", token.pos)
        if self.strict:
            known = ", ".join(sorted(self.table)[:10]) or "none"
            raise self.error(f"unknown name {name!r} (known symbols: {known})", token.pos)
        return sp.Symbol(name)

    def _call(self, name_token: _Token) -> sp.Expr:
        name = name_token.text
        if name not in FUNCTION_NAMES:
            hint = "" if name in _CODE_NAMES else f" (write {name}*(...) for a product)"
            raise self.error(f"{name!r} is not an allowed function{hint}", name_token.pos)
        opening = self._advance()
        self._enter(opening.pos)
        args, starts = [], []
        while not self._at(")") or args:
            starts.append(self.tok.pos)
            args.append(self._sum())
            if not self._at(","):
                break
            self._advance()
        self._close(opening)
        func, low, high = _FUNCTIONS[name]
        if not low <= len(args) <= high:
            counts = f"{low}" if low == high else f"{low} to {high}"
            plural = "" if counts == "1" else "s"
            where = starts[high] if len(args) > high else name_token.pos
            raise self.error(f"{name} takes {counts} argument{plural}, got {len(args)}", where)
        return self._function(name, func, args, name_token.pos)

    # ---------------------------------------------------------------- building
    def _function(self, name: str, func, args: list[sp.Expr], pos: int) -> sp.Expr:
        if name in _ROOTS:
            return self._pow(args[0], _ROOTS[name], pos)
        arg = args[0]
        if name == "sigmoid" and arg.is_number and not arg.is_Number:
            # sigmoid's evalf rewrites its whole argument into exp form (sin(1) becomes complex
            # exponentials), so SymPy's sign tests on sigmoid(sigmoid(...(sin(1)))) take time
            # exponential in the nesting. A constant argument is therefore read as a double.
            size = _log2_abs(arg)  # real (checked when arg was built) and evaluable?
            if size is None or size > math.log2(self.max_bits * math.log(2)):
                raise self.error("cannot evaluate the constant argument of sigmoid", pos)
            approx = arg.evalf(15)  # may carry a rounding residue such as 5e-28*I
            args = [arg := approx if approx.is_Float else approx.as_real_imag()[0]]
        if arg.is_number and (name in _EXP_LIKE or name in _BIG_ARG):
            size = _log2_abs(arg)
            if name in _EXP_LIKE:
                # exp(exp(exp(100))) has ~2**144 digits; anything that later asks for its
                # sign hangs. Bound the argument so that exp(arg) < 2**max_bits.
                if size is None or size > math.log2(self.max_bits * math.log(2)):
                    raise self.error(f"{name} of this constant would be too large to evaluate", pos)
            elif not (arg.is_Rational and name in _ROUNDING):  # floor(p/q) is cheap
                # floor(c) and the sign of sin(c) need c to about log2|c| bits of precision
                if size is None or size > _MAX_ARG_BITS:
                    raise self.error(
                        f"{name} of a constant beyond 2**{_MAX_ARG_BITS} is refused", pos
                    )
                self.eval_bits += max(0.0, size - _CHEAP_BITS)
                if self.eval_bits > self.max_bits:
                    raise self.error(f"too many huge constants inside {name} and similar", pos)
                if name in _ROUNDING and not arg.is_Float and _near_integer(arg, size):
                    # SymPy would raise its precision until it gives up: seconds per call
                    raise self.error(f"{name} of a constant this close to an integer", pos)
        if func in (sp.Max, sp.Min) or name == "relu":
            cls = sp.Min if func is sp.Min else sp.Max
            flat = sum(len(a.args) if isinstance(a, cls) else 1 for a in args) + (name == "relu")
            if flat > _MAX_MINMAX_ARGS:
                raise self.error(f"{cls.__name__} of more than {_MAX_MINMAX_ARGS} arguments", pos)
            self._count(pos, 3 * flat * (flat - 1))  # SymPy compares the arguments pairwise
        return self._apply(func, *args, pos=pos)

    def _pow(self, base: sp.Expr, exponent: sp.Expr, pos: int) -> sp.Expr:
        """``base**exponent``, refused before SymPy computes anything too large."""
        base_is_number = base.is_number
        if exponent.is_number and not base_is_number:
            size = _log2_abs(exponent)
            if size is None or size > math.log2(self.max_exponent):
                raise self.error(
                    f"exponent too large: at most {self.max_exponent} in size on a base with "
                    "symbols (raise max_exponent)",
                    pos,
                )
        if exponent.is_Rational:
            # SymPy evaluates exact powers eagerly: 9**387420489 would never return. The result
            # has at most |exponent| * (bits of the base's numbers) bits; charge that.
            bits = _exact_bits(base)
            if bits and exponent.q != 1:  # roots of exact numbers: SymPy tests primality
                self.root_bits += bits
                if self.root_bits > _MAX_ROOT_BITS:
                    raise self.error(
                        f"roots of exact numbers are limited to {_MAX_ROOT_BITS} bits in total; "
                        "use a float (e.g. 2.0**0.5)",
                        pos,
                    )
            times = -(-abs(exponent.p) // exponent.q)  # ceil(|exponent|), exactly
            cost = 0.0 if not bits else math.inf if times > self.max_bits else times * bits
            self.exact_bits += cost
            if self.exact_bits > self.max_bits:
                raise self.error(
                    f"exact numbers are limited to {self.max_bits} bits in total; this power "
                    f"needs {_about(cost)} (use a float, e.g. 9.0 instead of 9)",
                    pos,
                )
        if base_is_number and exponent.is_number and base not in (0, 1, -1):
            # constants such as 2**exp(100) or (pi**1000 + 1)**1000: bound log2|result|, i.e.
            # |exponent| * |log2|base|| (computed as logs, since it may exceed a float)
            size_base, size_exp = _log2_abs(base), _log2_abs(exponent)
            if size_base is None or size_exp is None:
                raise self.error("cannot bound the size of this constant power", pos)
            if size_base and size_exp + math.log2(abs(size_base)) > math.log2(self.max_bits):
                raise self.error(f"this power lies beyond 2**±{self.max_bits}", pos)
        return self._apply(sp.Pow, base, exponent, pos=pos)

    def _apply(self, func, *args: sp.Expr, pos: int) -> sp.Expr:
        try:
            value = func(*args)
            constant = value.is_number and not value.is_Number
            real = value.is_extended_real if constant else True
        except Exception as exc:  # SymPy can raise anything on odd input: report, not leak
            detail = f"{type(exc).__name__}: {exc}"[:200]
            raise self.error(f"cannot build this expression ({detail})", pos) from exc
        self._check(value, pos)  # first, for its more specific messages (zoo is not real either)
        # A constant such as acos(2) or (-8)**(1/3) is complex without containing I; when
        # SymPy cannot tell (acsc(1/2), (-1)**e), evaluate it.
        if real is False or (real is None and _log2_abs(value) is None):
            raise self.error(_COMPLEX, pos)
        if constant:
            height, nodes = self._shape(value)
            if height > _MAX_CONSTANT_HEIGHT or nodes > _MAX_CONSTANT_NODES:
                raise self.error(
                    f"constant subexpression too deep or large (at most {_MAX_CONSTANT_HEIGHT} "
                    f"levels and {_MAX_CONSTANT_NODES} nodes): SymPy evaluates constants, at a "
                    "cost exponential in their depth; simplify it or use a float",
                    pos,
                )
        return value

    def _shape(self, node: sp.Basic) -> tuple[int, int]:
        """(height, node count) of a subtree; memoised by id, as ``_check`` keeps it alive."""
        shape = self.shapes.get(id(node))
        if shape is None:
            parts = [self._shape(arg) for arg in node.args]
            height = 1 + max((h for h, _ in parts), default=-1)
            shape = self.shapes[id(node)] = (height, 1 + sum(n for _, n in parts))
        return shape

    def _check(self, value: sp.Basic, pos: int) -> None:
        """Refuse values symgrad cannot use; visits each new subtree once (ids are memoised)."""
        stack = [value]
        while stack:
            node = stack.pop()
            if id(node) in self.checked:
                continue
            self.checked[id(node)] = node  # keeps node alive, so its id stays unique
            problem = None
            if id(node) in _NONFINITE:
                problem = "the value is undefined or infinite here (division by zero, log(0), ...)"
            elif node is sp.I:
                problem = _COMPLEX
            elif node.is_Float and math.isinf(float(node)):
                problem = "floating-point overflow: the value is beyond the range of a double"
            elif node.is_Rational and node.p.bit_length() + node.q.bit_length() > self.max_bits:
                problem = f"exact number with more than {self.max_bits} bits"
            elif (
                node.is_Pow
                and node.exp.is_Number
                and abs(node.exp) > self.max_exponent
                and not node.base.is_number
            ):
                problem = f"exponent {node.exp} exceeds max_exponent={self.max_exponent}"
            if problem:
                raise self.error(problem, pos)
            stack.extend(node.args)


def _check_limit(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputTypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise DomainError(f"{name} must be positive, got {value}")
    return value


def parse(
    text: str,
    symbols: Mapping[str, sp.Symbol] | Iterable[sp.Symbol] | None = None,
    *,
    strict: bool | None = None,
    max_length: int = MAX_LENGTH,
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
    max_exponent: int = MAX_EXPONENT,
    max_number_bits: int = MAX_NUMBER_BITS,
) -> sp.Expr:
    """Parse a formula into a SymPy expression without ever evaluating the text.

    The syntax is Python's arithmetic: numbers (``2``, ``0.5``, ``1e-3``), names, ``+ - * /``,
    ``**`` or ``^`` for powers (both right-associative, binding tighter than unary minus:
    ``-x^2`` is ``-(x**2)``), parentheses and calls of the functions in
    :data:`FUNCTION_NAMES` (``sin ... acsch``, ``exp``, ``log(x)``, ``log(x, base)``, ``ln``,
    ``sqrt``, ``cbrt``, ``abs``/``Abs``, ``sign``, ``floor``, ``ceiling``, ``erf``,
    ``atan2(y, x)``, ``max``/``Max`` and ``min``/``Min`` of 2 to 4 arguments,
    ``heaviside``/``Heaviside``, ``re``, ``im``, ``sigmoid``, ``relu``). ``pi`` is π; ``e`` and
    ``E`` are Euler's number. Integers and ``a/b`` stay exact (``1/10`` is ``Rational(1, 10)``);
    a literal with a point or exponent is an IEEE double (``0.1`` is ``Float(0.1)``, 53 bits),
    as NumPy will compute it.

    Constants (subexpressions without symbols) must be real and finite: ``sqrt(-1)``,
    ``acos(2)``, ``1/0``, ``log(0)`` and ``(-8)**(1/3)`` or ``cbrt(-8)`` (SymPy's complex
    principal root) are refused. ``sigmoid`` of a constant that is not a plain number is read as
    a double, ``sigmoid(sin(1))`` is ``Float(0.6987...)``: SymPy would otherwise need time
    exponential in its nesting.

    The text is never evaluated, and each limit is checked *before* SymPy does the work it
    bounds, so with the defaults any input is accepted or refused within about a second. Fixed
    bounds besides the arguments: constants are at most 5 levels deep and 64 nodes large;
    ``max``/``min`` take at most 4 arguments (each costs extra nodes: SymPy compares them
    pairwise); roots of exact numbers total at most 2048 bits (SymPy tests their primality);
    constants inside trig functions, ``floor`` and ``ceiling`` stay below ``2**1024``, and
    ``floor``/``ceiling`` refuse constants within ``2**-40`` of an integer. For hostile input
    at high rates, lower the limits too, or parse in a worker process with a timeout.

    Args:
        text: the formula. Whitespace, including newlines, is ignored.
        symbols: the symbols to use, as a mapping ``name -> sympy.Symbol`` or an iterable of
            Symbols; use it to attach assumptions (``Symbol("t", positive=True)``). Other
            names become plain ``sympy.Symbol(name)`` unless ``strict``.
        strict: refuse names that are not in ``symbols``; by default strict exactly when
            ``symbols`` is given, so typos do not silently become new symbols.
        max_length: longest accepted text, in characters.
        max_nodes: most numbers, names, calls and operators; a ``max`` or ``min`` of ``k``
            arguments counts ``3*k*(k - 1)`` more.
        max_depth: deepest nesting of parentheses, calls, signs and powers.
        max_exponent: largest numeric exponent on a base that contains symbols (``x**1000``).
        max_number_bits: largest exact number in bits, and budget for the bits of all exact
            powers and numeric divisions (``9**9**9``, ``1/3 + 1/7 + ...``); constant powers
            must lie within ``2**±max_number_bits`` and ``exp`` of a constant below it.

    Returns:
        The SymPy expression, evaluated the way SymPy evaluates it (``x/2`` is
        ``Mul(Rational(1, 2), x)``).

    Raises:
        ParseError: the text is not an allowed formula or exceeds a limit; ``position`` is the
            0-based offset of the offending character. Also raised for invalid symbol names.
        InputTypeError: ``text`` is not a str, or ``symbols`` has the wrong shape.
        DomainError: a limit is not positive.

    Names must be ASCII identifiers of at most 64 characters that do not start with ``_`` and
    are not Python keywords, builtins (``eval``, ``open``, ...), module names used by generated
    code (``math``, ``numpy``, ``np``, ...) or ``I``, ``oo``, ``inf``, ``zoo``, ``nan``.

    >>> parse("sin(x)*exp(-y)/2")
    exp(-y)*sin(x)/2
    >>> parse("relu(w*x + b) + 0.5")
    Max(0, b + w*x) + 0.5
    >>> import sympy as sp
    >>> t = sp.Symbol("t", positive=True)
    >>> parse("sqrt(t^2)", [t])
    t
    >>> try:
    ...     parse("x + __y")
    ... except ParseError as err:
    ...     print(err)
    names may not start with '__' (at position 4)
        x + __y
            ^
    >>> parse("9**9**9")
    Traceback (most recent call last):
      ...
    symgrad.errors.ParseError: exact numbers are limited to 14000 bits in total; ...
    """
    if not isinstance(text, str):
        hint = "; decode bytes first" if isinstance(text, (bytes, bytearray)) else ""
        raise InputTypeError(f"parse expects a str, got {type(text).__name__}{hint}")
    limits = {
        "max_length": _check_limit("max_length", max_length),
        "max_nodes": _check_limit("max_nodes", max_nodes),
        "max_depth": _check_limit("max_depth", max_depth),
        "max_exponent": _check_limit("max_exponent", max_exponent),
        "max_number_bits": _check_limit("max_number_bits", max_number_bits),
    }
    table = _symbol_table(symbols)
    if len(text) > max_length:
        raise ParseError(
            f"input is {len(text)} characters long; the limit is max_length={max_length}",
            text,
            max_length,
        )
    if not text.strip(" \t\r\n"):
        raise ParseError("empty expression", text, 0)
    strict = symbols is not None if strict is None else bool(strict)
    try:
        return _Parser(text, table, strict, limits).parse()
    except RecursionError:  # max_depth above what Python's recursion limit allows
        raise ParseError(
            "expression is nested too deeply for Python's recursion limit; lower max_depth",
            text,
        ) from None
