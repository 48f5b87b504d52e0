"""The ``symgrad`` command: gradients, derivations and checks from a terminal.

Every formula on the command line (or on standard input, with ``-``) goes through the safe
parser :func:`symgrad.parse.parse`; nothing is ever evaluated as Python. Results go to standard
output; errors go to standard error as one ``symgrad: error: ...`` message (a parse error adds
the offending line with a caret under the problem), never a traceback.

Exit codes: 0 success, 1 a gradient check failed (or a needed program such as Graphviz's
``dot`` is missing), 2 bad input (usage, a formula that does not parse, a malformed ``--at``).

>>> main(["diff", "3*x**2 - 4*x + 5", "--wrt", "x"])
6*x - 4
0
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sympy as sp

from .autodiff import grad
from .check import check_grad, check_grad_fn
from .codegen import lambdify, value_and_grad
from .derivation import derive
from .errors import (
    BackendUnavailableError,
    GradientCheckError,
    MissingSymbolError,
    OptionError,
    ParseError,
    SymgradError,
)
from .graph import free_symbols
from .parse import parse

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
GRAPH_FORMATS = ("svg", "png", "pdf", "dot", "gv")


class _UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit, so ``main`` reports one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# ----------------------------------------------------------------------------- input helpers


def _read_text(text: str, what: str = "EXPR") -> str:
    """The formula itself, or standard input when it is ``-``."""
    if text != "-":
        return text
    data = sys.stdin.read()
    if not data.strip():
        raise ParseError(f"{what} is '-' but standard input was empty")
    return data


def _expression(text: str) -> sp.Expr:
    return parse(_read_text(text))


def _name(token: str, option: str) -> sp.Symbol:
    """A symbol name from an option, validated by the same rules as names in formulas."""
    token = token.strip()
    if not token:
        raise ParseError(f"{option}: empty symbol name; write e.g. {option} x,y")
    try:
        sym = parse(token)
    except ParseError as err:
        raise ParseError(f"{option}: invalid symbol name {token!r}: {err.reason}") from None
    if not isinstance(sym, sp.Symbol) or sym.name != token:
        raise ParseError(
            f"{option}: {token!r} is not a symbol name (it is a number, constant or formula); "
            f"write e.g. {option} x,y"
        )
    return sym


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside parentheses, so ``max(x, y),2`` is two items."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _wrt(text: str | None, expr: sp.Expr) -> list[sp.Symbol]:
    """The ``--wrt`` symbols, or every free symbol of ``expr`` sorted by name."""
    if text is None:
        syms = sorted(free_symbols([expr]), key=lambda s: s.name)
        if not syms:
            raise OptionError("the expression has no symbols; there is nothing to differentiate")
        return syms
    syms = [_name(tok, "--wrt") for tok in text.split(",")]
    dup = [s.name for i, s in enumerate(syms) if s in syms[:i]]
    if dup:
        raise ParseError(f"--wrt: {dup[0]!r} is given twice")
    return syms


def _at(items: Sequence[str] | None) -> dict[sp.Symbol, float]:
    """``--at x=3,y=-1.5`` (the option may be repeated) as ``{Symbol: float}``."""
    values: dict[sp.Symbol, float] = {}
    for item in items or ():
        for pair in item.split(","):
            name, eq, number = pair.partition("=")
            if not eq:
                raise ParseError(
                    f"--at: expected name=number, got {pair.strip()!r}; e.g. --at x=3,y=-1.5"
                )
            sym = _name(name, "--at")
            try:
                value = float(number.strip())
            except ValueError:
                raise ParseError(
                    f"--at: the value of {sym.name} must be a number such as 3, -1.5 or 2e-3, "
                    f"got {number.strip()!r}"
                ) from None
            if not math.isfinite(value):
                raise ParseError(f"--at: the value of {sym.name} must be finite, got {value}")
            if sym in values:
                raise ParseError(f"--at: {sym.name} is given twice")
            values[sym] = value
    return values


def _unknown_at(at: dict[sp.Symbol, float], exprs: Sequence[sp.Expr]) -> None:
    known = free_symbols(list(exprs))
    extra = [s.name for s in at if s not in known]
    if extra:
        names = ", ".join(sorted(s.name for s in known)) or "none"
        raise OptionError(
            f"--at gives a value for {', '.join(extra)}, which the expression does not contain "
            f"(its symbols: {names})"
        )


def _missing_at(at: dict[sp.Symbol, float], exprs: Sequence[sp.Expr]) -> None:
    missing = sorted(s.name for s in free_symbols(list(exprs)) if s not in at)
    if missing:
        raise MissingSymbolError(
            f"--at has no value for {', '.join(missing)}; give a number for every symbol, "
            f"e.g. --at {','.join(f'{m}=1' for m in missing)}"
        )


# ----------------------------------------------------------------------------- subcommands


def _tolerance(text: str) -> float:
    """An argparse ``type``: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1e-6, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _partial(sym: sp.Symbol) -> str:
    return rf"\frac{{\partial f}}{{\partial {sp.latex(sym)}}}"


def _matrix_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--matrix",
        action="store_true",
        help="a matrix formula in matrixcalculus.org notation (x'*A*x, .*, tr, logdet, ...)",
    )
    p.add_argument(
        "--shape",
        action="append",
        metavar="NAME=ROWS[,COLS]",
        help="with --matrix: a matrix (A=n,n), a column vector (x=n) or a scalar (c=)",
    )


def _matrix_run(args: argparse.Namespace, command: str) -> int | None:
    """Run the ``--matrix`` variant of a command (None: not asked for)."""
    if not getattr(args, "matrix", False):
        if getattr(args, "shape", None):
            raise OptionError("--shape needs --matrix")
        return None
    from .matrix import command as matrix_command

    text = _read_text(args.expr)
    if command == "compile":  # always a standalone NumPy module
        if args.target != "numpy":
            raise OptionError("--matrix compiles to NumPy only (--target numpy)")
        source = matrix_command.compile_source(text, args.shape, args.wrt)
        if args.output and args.output != "-":
            from .codegen.export import write_atomic

            write_atomic(args.output, source)
            print(f"wrote {args.output}: numpy module, function value_and_grad")
        else:
            print(source.rstrip())
    else:
        run = matrix_command.diff if command == "diff" else matrix_command.derive
        print(run(text, args.shape, args.wrt, args.format))
    return EXIT_OK


def _cmd_diff(args: argparse.Namespace) -> int:
    if (done := _matrix_run(args, "diff")) is not None:
        return done
    expr = _expression(args.expr)
    syms = _wrt(args.wrt, expr)
    grads = grad(expr, syms, simplify="auto" if args.simplify else "canonical")
    fmt = args.format
    if fmt == "json":
        out = {
            "expression": str(expr),
            "wrt": [s.name for s in syms],
            "gradient": {s.name: str(g) for s, g in zip(syms, grads, strict=True)},
            "latex": {s.name: sp.latex(g) for s, g in zip(syms, grads, strict=True)},
        }
        print(json.dumps(out, sort_keys=True, indent=2))
    elif fmt == "text":
        if len(syms) == 1:
            print(grads[0])
        else:
            for s, g in zip(syms, grads, strict=True):
                print(f"df/d{s.name} = {g}")
    elif fmt == "latex":
        if len(syms) == 1:
            print(sp.latex(grads[0]))
        else:
            for s, g in zip(syms, grads, strict=True):
                print(f"{_partial(s)} = {sp.latex(g)}")
    else:  # markdown
        print(f"**Gradient of** $f = {sp.latex(expr)}$\n")
        for s, g in zip(syms, grads, strict=True):
            print(f"$$ {_partial(s)} = {sp.latex(g)} $$\n")
    return EXIT_OK


def _cmd_derive(args: argparse.Namespace) -> int:
    if args.matrix and args.at:
        raise OptionError("--at is not supported with --matrix")
    if (done := _matrix_run(args, "derive")) is not None:
        return done
    expr = _expression(args.expr)
    syms = _wrt(args.wrt, expr)
    at = _at(args.at)
    if at:
        _unknown_at(at, [expr])
        _missing_at(at, [expr])
    d = derive(expr, syms, at or None)
    view = {"text": d.text, "latex": d.latex, "markdown": d.markdown}[args.format]
    print(view(max_steps=args.max_steps))
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    expr = _expression(args.expr)
    at = _at(args.at)
    if args.claimed is None:
        syms = _wrt(args.wrt, expr)
        _unknown_at(at, [expr, *syms])
        _missing_at(at, [expr, *syms])
        with np.errstate(all="ignore"):  # a nan in the table says it; no RuntimeWarning noise
            report = check_grad(
                expr, syms, at, rtol=args.rtol, atol=args.atol, raise_on_failure=False
            )
        print(f"checking the symbolic gradient of {expr}")
    else:
        if args.wrt is None:
            raise OptionError("--claimed needs --wrt naming the variable(s), e.g. --wrt x")
        syms = _wrt(args.wrt, expr)
        pieces = _split_top_level(_read_text(args.claimed, "--claimed"))
        if len(pieces) != len(syms):
            raise OptionError(
                f"--claimed has {len(pieces)} expression(s) for {len(syms)} --wrt variable(s); "
                "give one derivative per variable, separated by commas"
            )
        claimed = []
        for piece, s in zip(pieces, syms, strict=True):
            try:
                claimed.append(parse(piece))
            except ParseError as err:
                raise ParseError(f"--claimed (d/d{s.name}): {err}") from None
        _unknown_at(at, [expr, *claimed, *syms])
        _missing_at(at, [expr, *claimed, *syms])
        fixed = {s: sp.Float(v) for s, v in at.items() if s not in set(syms)}
        f = lambdify(expr.subs(fixed), [syms])
        g = lambdify([[c.subs(fixed) for c in claimed]], [syms])
        point = np.array([at[s] for s in syms])
        with np.errstate(all="ignore"):
            report = check_grad_fn(
                f,
                lambda v: np.asarray(g(v)[0], dtype=float),
                point,
                names=[s.name for s in syms],
                rtol=args.rtol,
                atol=args.atol,
                raise_on_failure=False,
            )
        for s, c in zip(syms, claimed, strict=True):
            print(f"claimed: df/d{s.name} = {c}")
        print(f"checked against the numerical gradient of {expr}")
    print(report)
    if not report.ok:
        print(_verdict(report, expr, syms, args.claimed is not None), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED


def _verdict(report, expr: sp.Expr, syms: list[sp.Symbol], claimed: bool) -> str:
    """One line on standard error saying why the check failed."""
    failed = report.failures
    undefined = [
        r.name for r in failed if not (math.isfinite(r.symbolic) and math.isfinite(r.numerical))
    ]
    wrong = [r.name for r in failed if r.name not in undefined]
    parts = []
    if wrong:
        text = f"the gradient is wrong for {', '.join(wrong)}"
        if claimed:
            exact = dict(zip(syms, grad(expr, syms), strict=True))
            text += "; the exact one is " + ", ".join(
                f"df/d{s.name} = {exact[s]}" for s in syms if s.name in wrong
            )
        parts.append(text)
    if undefined:
        parts.append(
            f"the function or gradient is not finite at this point for {', '.join(undefined)} "
            "(nan or inf in the table); choose a point inside the domain"
        )
    return "symgrad: check failed: " + "; ".join(parts)


def _cmd_compile(args: argparse.Namespace) -> int:
    if (done := _matrix_run(args, "compile")) is not None:
        return done
    expr = _expression(args.expr)
    syms = _wrt(args.wrt, expr)
    others = sorted((s for s in free_symbols([expr]) if s not in set(syms)), key=lambda s: s.name)
    first = syms[0] if len(syms) == 1 else syms
    fn = value_and_grad(expr, syms if len(syms) > 1 else syms[0], args=[first, *others])
    names = ", ".join(s.name for s in syms)
    if args.standalone or args.output:
        from .codegen.export import module_text, write_atomic

        text = module_text(fn, args.target)
        if args.output and args.output != "-":
            write_atomic(args.output, text)
            print(f"wrote {args.output}: {args.target} module, function symgrad_fn")
        else:
            print(text.rstrip())
        return EXIT_OK
    print(f"# value and gradient of f = {expr} with respect to {names}")
    if others:
        print(f"# further arguments (held fixed): {', '.join(s.name for s in others)}")
    print(fn.source.rstrip())
    return EXIT_OK


def _render(graph, path: Path) -> Path:
    """Write ``graph`` to ``path``; the suffix gives the format (``.dot``/``.gv``: source)."""
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in GRAPH_FORMATS:
        raise OptionError(
            f"cannot tell the output format of {str(path)!r}: use one of the suffixes "
            + ", ".join("." + f for f in GRAPH_FORMATS)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("dot", "gv"):
        path.write_text(graph.source, encoding="utf-8")
        return path
    import graphviz

    try:
        graph.render(outfile=str(path), format=fmt, cleanup=True)
    except graphviz.ExecutableNotFound:
        raise BackendUnavailableError(
            "rendering needs the Graphviz program 'dot' (apt-get install graphviz, "
            "brew install graphviz); or write the graph source with -o graph.dot"
        ) from None
    return path


def _draw_dot():
    try:
        from .viz import draw_dot
    except ImportError as exc:  # the viz module, or its 'graphviz' package, is missing
        raise BackendUnavailableError(
            "drawing graphs needs symgrad's viz module and the Python package 'graphviz': "
            f"pip install 'symgrad[viz]' ({exc})"
        ) from None
    return draw_dot


def _cmd_graph(args: argparse.Namespace) -> int:
    expr = _expression(args.expr)
    at = _at(args.at)
    path = Path(args.output)
    if path.suffix.lstrip(".").lower() not in GRAPH_FORMATS:
        raise OptionError(
            f"-o {args.output}: cannot tell the format; use a suffix "
            + ", ".join("." + f for f in GRAPH_FORMATS)
        )
    if at:
        _unknown_at(at, [expr])
        _missing_at(at, [expr])
    draw_dot = _draw_dot()
    kwargs = {"backward": True} if args.backward else {}
    graph = draw_dot(expr, at=at or None, **kwargs)
    print(f"wrote {_render(graph, path)}")
    return EXIT_OK


# ----------------------------------------------------------------------------- demo


def _section(title: str) -> None:
    print(f"\n{'=' * 72}\n{title}\n{'=' * 72}")


def _cmd_demo(args: argparse.Namespace) -> int:
    from .value import Value  # used only by the demo

    x, a, b, c, f = sp.symbols("x a b c f")

    _section("1. The derivative of f(x) = 3x^2 - 4x + 5")
    fx = parse("3*x**2 - 4*x + 5")
    dfx = grad(fx, x)
    h = 1e-4
    num = (float(fx.subs(x, 3 + h)) - float(fx.subs(x, 3))) / h
    print(f"f(x)   = {fx}")
    print(f"f'(x)  = {dfx}                 (exact, by the chain rule over the expression)")
    print(f"f'(3)  = {dfx.subs(x, 3)}")
    print(f"(f(3 + h) - f(3)) / h with h = {h:g}: {num:.6f}   (numerical, as in the lecture)")

    _section("2. L = (a*b + c)*f at a=2, b=-3, c=10, f=-2: the backward pass step by step")
    L = (a * b + c) * f
    d = derive(L, at={a: 2, b: -3, c: 10, f: -2}, labels={L: "L", a * b: "e", a * b + c: "d"})
    print(d.text())

    _section("3. A neuron: o = tanh(x1*w1 + x2*w2 + b), with micrograd's Value")
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    bias = Value(6.8813735870195432, label="b")
    o = (x1 * w1 + x2 * w2 + bias).tanh()
    o.backward()
    print(f"o = {o.expr}")
    print(f"o.data = {o.data:.4f}")
    for v in (x1, w1, x2, w2, bias):
        print(f"  d o / d {v.label:<2} = {v.grad: .4f}   (Value.backward)")
    syms = [sp.Symbol(n) for n in ("x1", "w1", "x2", "w2", "b")]
    print("the same gradients as formulas (symgrad.grad):")
    # "canonical": sympy.simplify would spend seconds on these tanh formulas for no gain
    for s, g in zip(syms, grad(o.expr, syms, simplify="canonical"), strict=True):
        print(f"  d o / d {s.name:<2} = {g}")

    _section("4. Compiled value and gradient of the neuron, checked numerically")
    neuron = parse("tanh(x1*w1 + x2*w2 + b)")
    wrt = sorted(free_symbols([neuron]), key=lambda s: s.name)
    fn = value_and_grad(neuron, wrt)
    print(fn.source.rstrip())
    point = {"b": 6.8813735870195432, "w1": -3.0, "w2": 1.0, "x1": 2.0, "x2": 0.0}
    vec = np.array([point[s.name] for s in wrt])
    value, gradient = fn(vec)
    print(f"\nat {', '.join(f'{k}={v:g}' for k, v in point.items())}:")
    names = ", ".join(map(str, wrt))
    print(f"value = {value:.4f}, gradient ({names}) = {np.round(gradient, 4).tolist()}")
    report = check_grad_fn(
        lambda v: fn(v)[0],
        lambda v: fn(v)[1],
        vec,
        names=[s.name for s in wrt],
        raise_on_failure=False,
    )
    print(report)

    _section("5. The picture")
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="symgrad-demo-"))
    try:
        draw_dot = _draw_dot()
        path = _render(draw_dot(o), out_dir / "neuron.svg")
        print(f"wrote {path}  (the neuron's graph with data and grad, drawn by Graphviz)")
    except BackendUnavailableError as err:
        print(f"skipped: {err}")
    print("\nMore: symgrad diff --help, symgrad derive --help, symgrad check --help")
    return EXIT_OK if report.ok else EXIT_FAILED


# ----------------------------------------------------------------------------- the parser


def _sub(subs, name: str, help: str, epilog: str) -> argparse.ArgumentParser:
    return subs.add_parser(
        name,
        help=help,
        description=help,
        epilog="examples:\n" + textwrap.indent(textwrap.dedent(epilog).strip(), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _expr_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "expr", metavar="EXPR", help="the formula, e.g. '3*x**2 - 4*x + 5'; '-' reads stdin"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``argparse`` parser of the ``symgrad`` command (its ``--help`` texts).

    >>> build_parser().parse_args(["diff", "x**2", "--wrt", "x"]).format
    'text'
    """
    parser = _Parser(
        prog="symgrad",
        description="Exact gradients of formulas by the chain rule: formulas, step-by-step "
        "derivations, NumPy code and numerical checks.",
        epilog=textwrap.dedent(
            """\
            examples:
              symgrad demo
              symgrad diff "3*x**2 - 4*x + 5" --wrt x
              symgrad derive "(a*b + c)*f" --at a=2,b=-3,c=10,f=-2
              symgrad check "3*x**2 - 4*x + 5" --wrt x --claimed "6*x - 3" --at x=3
              echo "sin(x)*exp(y)" | symgrad diff - --format json

            exit codes: 0 ok, 1 a gradient check failed (or 'dot' is missing), 2 bad input.
            formulas: + - * / ** ^, parentheses, sin cos tan exp log sqrt tanh sigmoid relu
            abs max min ... (never evaluated as Python)."""
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"symgrad {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _sub(
        subs,
        "diff",
        "the gradient of a formula",
        """
        symgrad diff "3*x**2 - 4*x + 5" --wrt x          # 6*x - 4
        symgrad diff "sin(x*y)" --wrt x,y                 # one line per variable
        symgrad diff "tanh(w*x + b)" --wrt w --format latex
        symgrad diff "x**2*y" --format json               # for scripts (sorted keys)
        symgrad diff --matrix "x'*A*x" --shape A=n,n --shape x=n --wrt x   # (A + A')*x
        """,
    )
    _expr_arg(p)
    p.add_argument("--wrt", help="comma-separated variables (default: every symbol, by name)")
    p.add_argument("--format", choices=("text", "latex", "markdown", "json"), default="text")
    p.add_argument(
        "--simplify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="try sympy.simplify on small results (default); --no-simplify keeps SymPy's "
        "canonical form (faster on large formulas)",
    )
    _matrix_option(p)
    p.set_defaults(run=_cmd_diff)

    p = _sub(
        subs,
        "derive",
        "the backward pass step by step (the chain rule at every node)",
        """
        symgrad derive "(a*b + c)*f" --at a=2,b=-3,c=10,f=-2
        symgrad derive "sin(x*y)" --wrt x --format latex
        symgrad derive "tanh(x1*w1 + x2*w2 + b)" --format markdown --max-steps 5
        symgrad derive --matrix "norm2(X*w - y)^2" --shape X=m,n --shape w=n --shape y=m
        """,
    )
    _expr_arg(p)
    p.add_argument("--wrt", help="comma-separated variables (default: every symbol)")
    p.add_argument(
        "--at",
        action="append",
        metavar="NAME=NUMBER,...",
        help="values: adds numbers to every step",
    )
    p.add_argument("--format", choices=("text", "latex", "markdown"), default="text")
    p.add_argument("--max-steps", type=int, default=None, help="show at most this many steps")
    _matrix_option(p)
    p.set_defaults(run=_cmd_derive)

    p = _sub(
        subs,
        "check",
        "compare a gradient with central finite differences (exit 1 when they disagree)",
        """
        symgrad check "x**3*sin(y)" --at x=1,y=2          # symgrad's own gradient
        symgrad check "3*x**2 - 4*x + 5" --wrt x --claimed "6*x - 4" --at x=3   # exit 0
        symgrad check "3*x**2 - 4*x + 5" --wrt x --claimed "6*x - 3" --at x=3   # exit 1
        symgrad check "x*y" --wrt x,y --claimed "y, x" --at x=2,y=5
        """,
    )
    _expr_arg(p)
    p.add_argument("--wrt", help="comma-separated variables (default: every symbol)")
    p.add_argument(
        "--at",
        action="append",
        required=True,
        metavar="NAME=NUMBER,...",
        help="the point: a value for every symbol",
    )
    p.add_argument(
        "--claimed",
        metavar="GRAD",
        help="a hand-derived gradient to check instead: one formula per --wrt variable, "
        "separated by commas",
    )
    p.add_argument(
        "--rtol", type=_tolerance, default=1e-6, help="relative tolerance (default 1e-6)"
    )
    p.add_argument(
        "--atol", type=_tolerance, default=1e-8, help="absolute tolerance (default 1e-8)"
    )
    p.set_defaults(run=_cmd_check)

    p = _sub(
        subs,
        "compile",
        "print the generated NumPy source of the value and gradient",
        """
        symgrad compile "tanh(x1*w1 + x2*w2 + b)"         # one vector argument
        symgrad compile "x**2*y" --wrt x                   # y becomes a further argument
        symgrad compile "tanh(w*x + b)" --standalone -o f.py   # a module needing only NumPy
        symgrad compile --matrix "norm2(X*w - y)^2" --shape X=m,n --shape w=n --shape y=m --wrt w
        """,
    )
    _expr_arg(p)
    p.add_argument("--wrt", help="comma-separated variables (default: every symbol)")
    p.add_argument(
        "--standalone",
        action="store_true",
        help="print (or write with -o) a self-contained module instead of the function alone",
    )
    p.add_argument("-o", "--output", help="write the standalone module to this file")
    p.add_argument(
        "--target",
        choices=("numpy", "python"),
        default="numpy",
        help="standalone module: 'numpy' (imports NumPy) or 'python' (imports only math)",
    )
    _matrix_option(p)
    p.set_defaults(run=_cmd_compile)

    p = _sub(
        subs,
        "graph",
        "draw the expression graph with Graphviz",
        """
        symgrad graph "(a*b + c)*f" --at a=2,b=-3,c=10,f=-2 -o graph.svg
        symgrad graph "tanh(w*x + b)" --backward -o neuron.png
        symgrad graph "x*y + x" -o graph.dot               # the source only: no 'dot' needed
        """,
    )
    _expr_arg(p)
    p.add_argument(
        "--at", action="append", metavar="NAME=NUMBER,...", help="show values and gradients"
    )
    p.add_argument("--backward", action="store_true", help="also draw the backward pass")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file; its suffix gives the format (" + ", ".join(GRAPH_FORMATS) + ")",
    )
    p.set_defaults(run=_cmd_graph)

    p = _sub(
        subs,
        "demo",
        "the micrograd lecture in one run: derivative, chain rule, neuron, compiled code, check",
        """
        symgrad demo
        symgrad demo --out pictures/                       # keep the neuron's SVG there
        """,
    )
    p.add_argument("--out", help="directory for the picture (default: a new temporary directory)")
    p.set_defaults(run=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``symgrad`` command; returns the exit code (the console script exits with it).

    Args:
        argv: the arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        0 on success, 1 when a gradient check failed or a needed program is missing, 2 on bad
        input. Errors are printed to standard error as ``symgrad: error: ...``.

    >>> main(["diff", "sin(x*y)", "--wrt", "x,y"])
    df/dx = y*cos(x*y)
    df/dy = x*cos(x*y)
    0
    >>> main(["check", "3*x**2 - 4*x + 5", "--wrt", "x", "--claimed", "6*x - 3", "--at", "x=3"])
    claimed: df/dx = 6*x - 3
    checked against the numerical gradient of 3*x**2 - 4*x + 5
    gradient check (central differences, rtol=1e-06, atol=1e-08, 1 point): FAILED for x
    variable  symbolic  numerical  abs error  rel error  step     ok
    x         15        14         1.00e+00   6.67e-02  ...  NO
    1
    """
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except _UsageError as err:
        return _fail(str(err), EXIT_USAGE)
    except GradientCheckError as err:
        return _fail(str(err), EXIT_FAILED)
    except BackendUnavailableError as err:
        return _fail(str(err), EXIT_FAILED)
    except SymgradError as err:
        return _fail(str(err), EXIT_USAGE)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, code: int) -> int:
    print(f"symgrad: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
