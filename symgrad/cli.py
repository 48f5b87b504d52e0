"""The ``symgrad`` command: gradients, derivations and checks from a terminal.

Every formula on the command line (or on standard input, with ``-``) goes through the safe
parser :func:`symgrad.parse.parse`; nothing is ever evaluated as Python. Results go to standard
output; errors go to standard error as one ``symgrad: error: ...`` message (a parse error adds
the offending line with a caret under the problem), never a traceback, with an exit code per
kind of problem (:data:`EXIT_CODES`, documented in docs/cli.md).

>>> main(["diff", "3*x**2 - 4*x + 5", "--wrt", "x"])
6*x - 4
0
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
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
    DomainError,
    FileAccessError,
    GradientCheckError,
    GraphTooLargeError,
    OptionError,
    ParseError,
    SymgradError,
    UnsupportedFunctionError,
)
from .files import atomic_write, os_error
from .graph import free_symbols
from .parse import MAX_LENGTH, parse

__all__ = ["EXIT_CODES", "build_parser", "main"]

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_FORMULA = 3
EXIT_DOMAIN = 4
EXIT_MISSING_PROGRAM = 5
EXIT_FILE = 6
EXIT_TOO_LARGE = 7
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a program killed by it

#: Every exit code of the command and its meaning (docs/cli.md shows the same table).
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_CHECK_FAILED: "a gradient check ran and failed (the table is printed)",
    EXIT_USAGE: "bad command line: unknown or missing option, malformed option value, "
    "no value for a symbol",
    EXIT_FORMULA: "a formula does not parse, is too large for the parser, or uses a function "
    "without a derivative rule",
    EXIT_DOMAIN: "the formula or its gradient is not finite at the given point "
    "(e.g. log(x) at x=0)",
    EXIT_MISSING_PROGRAM: "a needed program or package is missing (Graphviz's dot)",
    EXIT_FILE: "an output or input file cannot be written or read (a folder, a missing "
    "folder, no permission)",
    EXIT_TOO_LARGE: "the result is too large to draw or to process",
    EXIT_INTERNAL: "an internal error (a bug in symgrad: please report it)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_BROKEN_PIPE: "standard output was closed early (e.g. piped into head); nothing printed",
}
GRAPH_FORMATS = ("svg", "png", "pdf", "dot", "gv")
STDIN_LIMIT = MAX_LENGTH  # bytes read from standard input at most (plus one, to tell)


class _UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit, so ``main`` reports one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _warn(message: str) -> None:
    print(f"symgrad: warning: {message}", file=sys.stderr)


def _dump(data: object) -> None:
    print(json.dumps(data, sort_keys=True, indent=2, allow_nan=False))


def _number(value: float) -> float | None:
    """A float for JSON, which has no inf or nan: those become null."""
    return float(value) if math.isfinite(value) else None


# ----------------------------------------------------------------------------- input helpers


def _read_text(text: str, what: str = "EXPR") -> str:
    """The formula itself, or standard input when it is ``-`` (at most STDIN_LIMIT bytes)."""
    if text != "-":
        return text
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    if stream is None:
        raise OptionError(f"{what} is '-' but there is no standard input")
    data = stream.read(STDIN_LIMIT + 1)
    if len(data) > STDIN_LIMIT:
        raise ParseError(
            f"{what} is '-' and standard input is longer than {STDIN_LIMIT} bytes, the limit "
            "for a formula"
        )
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"{what} is '-' but standard input is not UTF-8 text (byte {exc.start})"
            ) from None
    if not data.strip():
        raise ParseError(f"{what} is '-' but standard input was empty")
    return data


def _expression(text: str) -> sp.Expr:
    return parse(_read_text(text))


def _name(token: str, option: str) -> sp.Symbol:
    """A symbol name from an option, validated by the same rules as names in formulas."""
    example = f"{option} x=1,y=2" if option == "--at" else f"{option} x,y"
    token = token.strip()
    if not token:
        raise OptionError(f"{option}: empty symbol name; write e.g. {example}")
    try:
        sym = parse(token)
    except ParseError as err:
        raise OptionError(f"{option}: invalid symbol name {token!r}: {err.reason}") from None
    if not isinstance(sym, sp.Symbol) or sym.name != token:
        raise OptionError(
            f"{option}: {token!r} is not a symbol name (it is a number, constant or formula); "
            f"write e.g. {example}"
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
        raise OptionError(f"--wrt: {dup[0]!r} is given twice")
    known = free_symbols([expr])
    unknown = [s.name for s in syms if s not in known]
    if unknown:
        _warn(
            f"--wrt names {', '.join(unknown)}, which the formula does not contain; "
            "the derivative with respect to it is 0"
        )
    return syms


def _at(items: Sequence[str] | None) -> dict[sp.Symbol, float]:
    """``--at x=3,y=-1.5`` (the option may be repeated) as ``{Symbol: float}``."""
    values: dict[sp.Symbol, float] = {}
    for item in items or ():
        for pair in item.split(","):
            name, eq, number = pair.partition("=")
            if not eq:
                raise OptionError(
                    f"--at: expected name=number, got {pair.strip()!r}; e.g. --at x=3,y=-1.5"
                )
            sym = _name(name, "--at")
            try:
                value = float(number.strip())
            except ValueError:
                raise OptionError(
                    f"--at: the value of {sym.name} must be a number such as 3, -1.5 or 2e-3, "
                    f"got {number.strip()!r}"
                ) from None
            if not math.isfinite(value):
                raise OptionError(f"--at: the value of {sym.name} must be finite, got {value}")
            if sym in values:
                raise OptionError(f"--at: {sym.name} is given twice")
            values[sym] = value
    return values


def _unknown_at(at: dict[sp.Symbol, float], exprs: Sequence[sp.Expr]) -> None:
    """Warn about ``--at`` names the formulas lack (they are ignored, as SymPy's subs does)."""
    known = free_symbols(list(exprs))
    extra = [s.name for s in at if s not in known]
    if extra:
        names = ", ".join(sorted(s.name for s in known)) or "none"
        _warn(
            f"--at gives a value for {', '.join(extra)}, which the formula does not contain "
            f"(its symbols: {names}); ignored"
        )


def _missing_at(at: dict[sp.Symbol, float], exprs: Sequence[sp.Expr]) -> None:
    missing = sorted(s.name for s in free_symbols(list(exprs)) if s not in at)
    if missing:
        raise OptionError(
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
        written = None
        if args.output and args.output != "-":
            written = str(_write(source.encode("utf-8"), args.output))
        if args.format == "json":
            _dump({"expression": text, "source": source, "file": written})
        elif written:
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
    if args.format == "json":
        _dump(_derivation_json(d, args.max_steps))
        return EXIT_OK
    view = {"text": d.text, "latex": d.latex, "markdown": d.markdown}[args.format]
    print(view(max_steps=args.max_steps))
    return EXIT_OK


def _derivation_json(d, max_steps: int | None) -> dict:
    """The derivation as data: every step's node, rule, adjoint, and numbers when given."""
    steps = d.steps if max_steps is None else d.steps[: max(max_steps, 0)]

    def value(node) -> float | None:
        v = d.values.get(node)
        return None if v is None else _number(v)

    return {
        "expression": str(d.target),
        "wrt": [s.name for s in d.wrt],
        "output": d.name(d.target),
        "steps": [
            {
                "name": d.name(st.node),
                "node": str(st.node),
                "rule": st.rule,
                "adjoint": str(st.adjoint),
                "value": value(st.node),
                "gradient_value": _number(d.adjoint_values[st.node])
                if st.node in d.adjoint_values
                else None,
                "local_partials": [
                    {"argument": d.name(arg), "partial": str(local)}
                    for arg, local, _ in st.outgoing
                ],
            }
            for st in steps
        ],
        "steps_total": len(d.steps),
        "gradient": {s.name: str(d.gradients[s]) for s in d.wrt},
        "gradient_values": {
            s.name: _number(d.adjoint_values[s]) if s in d.adjoint_values else None for s in d.wrt
        },
    }


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
        claimed = []
        head = [f"checking the symbolic gradient of {expr}"]
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
        # a batch of one point: NumPy's IEEE semantics (nan for sqrt(-1)), never Python's
        # complex powers or ZeroDivisionError on plain floats
        with np.errstate(all="ignore"):
            report = check_grad_fn(
                lambda v: np.asarray(f(v[:, None]), dtype=float).reshape(-1)[0],
                lambda v: np.asarray(g(v[:, None])[0], dtype=float).reshape(-1),
                point,
                names=[s.name for s in syms],
                rtol=args.rtol,
                atol=args.atol,
                raise_on_failure=False,
            )
        head = [f"claimed: df/d{s.name} = {c}" for s, c in zip(syms, claimed, strict=True)]
        head.append(f"checked against the numerical gradient of {expr}")
    undefined = [
        r.name
        for r in report.rows
        if not (math.isfinite(r.symbolic) and math.isfinite(r.numerical))
    ]
    if not undefined and not _finite_at(expr, at):
        undefined = ["the value of the formula"]
    if args.format == "json":
        _dump(_check_json(report, expr, syms, claimed, at, undefined))
    else:
        print("\n".join(head))
        print(report)
    if undefined:
        point = ", ".join(f"{s.name}={v:g}" for s, v in at.items())
        raise DomainError(
            f"the formula or its gradient is not finite at {point} (nan or inf for "
            f"{', '.join(undefined)}); choose a point inside the domain"
        )
    if not report.ok:
        print(_verdict(report, expr, syms, args.claimed is not None), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def _finite_at(expr: sp.Expr, at: dict[sp.Symbol, float]) -> bool:
    """Whether ``expr`` has a finite value at the point (central differences never ask)."""
    syms = sorted(free_symbols([expr]), key=lambda s: s.name)
    f = lambdify(expr, [syms])
    try:
        with np.errstate(all="ignore"):
            value = f(np.array([at[s] for s in syms], dtype=float)[:, None])  # NumPy semantics
    except ArithmeticError:
        return False
    return bool(np.all(np.isfinite(np.asarray(value, dtype=complex))))


def _check_json(report, expr, syms, claimed, at, undefined) -> dict:
    out = {
        "expression": str(expr),
        "wrt": [s.name for s in syms],
        "at": {s.name: v for s, v in at.items()},
        **_report_json(report),
        "ok": bool(report.ok) and not undefined,
    }
    if claimed:
        out["claimed"] = {s.name: str(c) for s, c in zip(syms, claimed, strict=True)}
    return out


def _report_json(report) -> dict:
    """A gradient check's verdict and per-variable numbers (JSON has no inf/nan: null)."""
    return {
        "ok": bool(report.ok),
        "method": report.method,
        "rtol": report.rtol,
        "atol": report.atol,
        "variables": [
            {
                "name": r.name,
                "symbolic": _number(r.symbolic),
                "numerical": _number(r.numerical),
                "abs_error": _number(r.abs_error),
                "rel_error": _number(r.rel_error),
                "step": _number(r.step),
                "ok": bool(r.ok),
            }
            for r in report.rows
        ],
    }


def _verdict(report, expr: sp.Expr, syms: list[sp.Symbol], claimed: bool) -> str:
    """One line on standard error saying why the check failed."""
    wrong = [r.name for r in report.failures]
    text = f"the gradient is wrong for {', '.join(wrong)}"
    if claimed:
        exact = dict(zip(syms, grad(expr, syms), strict=True))
        text += "; the exact one is " + ", ".join(
            f"df/d{s.name} = {exact[s]}" for s in syms if s.name in wrong
        )
    return "symgrad: check failed: " + text


def _cmd_compile(args: argparse.Namespace) -> int:
    if (done := _matrix_run(args, "compile")) is not None:
        return done
    expr = _expression(args.expr)
    syms = _wrt(args.wrt, expr)
    others = sorted((s for s in free_symbols([expr]) if s not in set(syms)), key=lambda s: s.name)
    first = syms[0] if len(syms) == 1 else syms
    fn = value_and_grad(expr, syms if len(syms) > 1 else syms[0], args=[first, *others])
    names = ", ".join(s.name for s in syms)
    text, written = fn.source, None
    if args.standalone or args.output:
        from .codegen.export import module_text

        text = module_text(fn, args.target)
        if args.output and args.output != "-":
            written = str(_write(text.encode("utf-8"), args.output))
    if args.format == "json":
        _dump(
            {
                "expression": str(expr),
                "wrt": [s.name for s in syms],
                "further_arguments": [s.name for s in others],
                "source": text,
                "file": written,
            }
        )
        return EXIT_OK
    if args.standalone or args.output:
        if written:
            print(f"wrote {args.output}: {args.target} module, function symgrad_fn")
        else:
            print(text.rstrip())
        return EXIT_OK
    print(f"# value and gradient of f = {expr} with respect to {names}")
    if others:
        print(f"# further arguments (held fixed): {', '.join(s.name for s in others)}")
    print(fn.source.rstrip())
    return EXIT_OK


def _graph_format(path: str, to: str | None) -> str:
    if path == "-":
        return to or "dot"
    fmt = Path(path).suffix.lstrip(".").lower()
    if fmt not in GRAPH_FORMATS:
        raise OptionError(
            f"-o {path}: cannot tell the format; use a suffix "
            + ", ".join("." + f for f in GRAPH_FORMATS)
            + " (or -o - for standard output)"
        )
    if to is not None and to != fmt and {to, fmt} != {"dot", "gv"}:
        raise OptionError(f"-T {to} does not match the suffix of -o {path}; drop one of them")
    return fmt


def _image(graph, fmt: str) -> bytes:
    """The graph in ``fmt``: its DOT source, or rendered by Graphviz's ``dot``."""
    if fmt in ("dot", "gv"):
        return graph.source.encode("utf-8")
    from .derivation.dot import pipe

    try:
        return pipe(graph, fmt)
    except BackendUnavailableError as exc:
        if exc.__cause__ is None:
            raise  # dot ran and failed: its own message (only a missing program is chained)
        raise BackendUnavailableError(
            "rendering needs the Graphviz program 'dot' (apt-get install graphviz, "
            "brew install graphviz); or write the graph source with -o graph.dot"
        ) from None


def _write(data: bytes, path: str) -> Path:
    """Write ``data`` to the file the user named, atomically; nothing else is touched."""
    target = Path(path)
    if target.is_dir():
        raise FileAccessError(f"cannot write {path!r}: it is a folder; give a file name")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise FileAccessError(
            f"cannot write {path!r}: a part of {str(folder)!r} is a file, not a folder"
        ) from None
    except OSError as exc:
        raise os_error(path, "write", exc) from None
    return atomic_write(target, data)


def _draw_dot():
    try:
        import graphviz  # noqa: F401
    except ImportError as exc:  # the 'graphviz' package is missing
        raise BackendUnavailableError(
            f"drawing graphs needs the Python package 'graphviz': pip install graphviz ({exc})"
        ) from None
    from .derivation.dot import draw_dot

    return draw_dot


def _drawing(target, **kwargs):
    """``draw_dot`` with its size error in command-line terms."""
    try:
        return _draw_dot()(target, **kwargs)
    except GraphTooLargeError as err:
        first = str(err).split(";")[0].replace("max_nodes=", "--max-nodes ")
        raise GraphTooLargeError(
            f"{first}; draw less with --collapse or --depth K, or allow more with --max-nodes N"
        ) from None


def _cmd_graph(args: argparse.Namespace) -> int:
    expr = _expression(args.expr)
    at = _at(args.at)
    fmt = _graph_format(args.output, args.to)
    if args.output == "-" and args.format == "json" and fmt not in ("dot", "gv", "svg"):
        raise OptionError(f"--format json cannot hold a {fmt} image; use -T svg or -T dot")
    if at:
        _unknown_at(at, [expr])
        _missing_at(at, [expr])
    kwargs: dict = {"backward": True} if args.backward else {}
    if args.collapse:
        kwargs["collapse"] = True
    if args.depth is not None:
        kwargs["depth"] = args.depth
    if args.max_nodes is not None:
        kwargs["max_nodes"] = args.max_nodes
    data = _image(_drawing(expr, at=at or None, **kwargs), fmt)
    if args.output == "-":
        if args.format == "json":
            _dump({"format": fmt, "graph": data.decode("utf-8")})
        else:
            sys.stdout.flush()
            if hasattr(sys.stdout, "buffer"):
                sys.stdout.buffer.write(data)
            else:  # a text-only stream (e.g. captured in tests): the text formats
                sys.stdout.write(data.decode("utf-8"))
            sys.stdout.flush()
        return EXIT_OK
    path = _write(data, args.output)
    if args.format == "json":
        _dump({"output": args.output, "file": str(path), "format": fmt, "bytes": len(data)})
    else:
        print(f"wrote {args.output}")
    return EXIT_OK


def _cmd_explore(args: argparse.Namespace) -> int:
    expr = _expression(args.expr)
    at = _at(args.at)
    if at:
        _unknown_at(at, [expr])
        _missing_at(at, [expr])
    path = Path(args.output)
    derive(expr, at=at or None).html(path)
    if args.format == "json":
        _dump({"expression": str(expr), "output": args.output, "file": str(path.resolve())})
    else:
        print(f"wrote {path}  (open it in a browser: no network needed)")
    return EXIT_OK


# ----------------------------------------------------------------------------- demo


def _section(title: str) -> None:
    print(f"\n{'=' * 72}\n{title}\n{'=' * 72}")


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.format != "json":
        return _demo(args, {})
    summary: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):  # standard output holds the JSON only
        code = _demo(args, summary)
    _dump(summary)
    return code


def _demo(args: argparse.Namespace, summary: dict) -> int:
    """Run the demo, printing each section and recording its results in ``summary``."""
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
    summary["derivative"] = {
        "f": str(fx),
        "df/dx": str(dfx),
        "at": {"x": 3},
        "exact": _number(float(dfx.subs(x, 3))),
        "numerical": _number(num),
        "h": h,
    }

    _section("2. L = (a*b + c)*f at a=2, b=-3, c=10, f=-2: the backward pass step by step")
    L = (a * b + c) * f
    d = derive(L, at={a: 2, b: -3, c: 10, f: -2}, labels={L: "L", a * b: "e", a * b + c: "d"})
    print(d.text())
    summary["backward_pass"] = _derivation_json(d, None)

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
    formulas = grad(o.expr, syms, simplify="canonical")
    for s, g in zip(syms, formulas, strict=True):
        print(f"  d o / d {s.name:<2} = {g}")
    summary["neuron"] = {
        "expression": str(o.expr),
        "value": _number(o.data),
        "gradient_values": {v.label: _number(v.grad) for v in (x1, w1, x2, w2, bias)},
        "gradient": {s.name: str(g) for s, g in zip(syms, formulas, strict=True)},
    }

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
    summary["compiled"] = {
        "source": fn.source,
        "at": point,
        "value": _number(value),
        "gradient": {s.name: _number(g) for s, g in zip(wrt, gradient, strict=True)},
        "check": _report_json(report),
    }

    _section("5. The picture")
    if args.out is not None:
        out_dir = Path(args.out)
        if out_dir.exists() and not out_dir.is_dir():
            raise FileAccessError(f"--out {args.out}: it is a file; give a folder for the picture")
    else:
        out_dir = Path(tempfile.mkdtemp(prefix="symgrad-demo-"))
    try:
        path = _write(_image(_drawing(o), "svg"), str(out_dir / "neuron.svg"))
        print(f"wrote {path}  (the neuron's graph with data and grad, drawn by Graphviz)")
        summary["picture"] = {"file": str(path), "skipped": None}
    except BackendUnavailableError as err:
        if args.out is not None:
            raise
        print(f"skipped: {err}")
        summary["picture"] = {"file": None, "skipped": str(err)}
    print("\nMore: symgrad diff --help, symgrad derive --help, symgrad check --help")
    summary["ok"] = bool(report.ok)
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


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


def _format_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "json"), default="text", help="json: for scripts")


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

            exit codes: 0 ok, 1 a gradient check failed, 2 bad command line, 3 bad formula,
            4 not finite at the point, 5 a program is missing (dot), 6 a file cannot be
            written or read, 7 too large, 70 internal error, 130 interrupted.
            formulas: + - * / ** ^, parentheses, sin cos tan exp log sqrt tanh sigmoid relu
            abs max min ...; e and pi are the constants (never evaluated as Python)."""
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"symgrad {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    p.add_argument("--format", choices=("text", "latex", "markdown", "json"), default="text")
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
    _format_arg(p)
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
    _format_arg(p)
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
        symgrad graph "x*y + x" -o - | dot -Tpng > g.png   # the source on standard output
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
        help="output file; its suffix gives the format (" + ", ".join(GRAPH_FORMATS) + "); "
        "'-' writes to standard output",
    )
    p.add_argument(
        "-T",
        "--to",
        choices=("dot", "svg", "png", "pdf"),
        help="the image format with -o - (default dot, the source)",
    )
    p.add_argument("--collapse", action="store_true", help="draw sums as one node (smaller)")
    p.add_argument("--depth", type=int, help="draw only this many levels below the output")
    p.add_argument("--max-nodes", type=int, help="refuse graphs larger than this (default 3000)")
    _format_arg(p)
    p.set_defaults(run=_cmd_graph)

    p = _sub(
        subs,
        "explore",
        "write the backward pass as an interactive page: step through it, edit the inputs",
        """
        symgrad explore "(a*b + c)*f" --at a=2,b=-3,c=10,f=-2 -o backward.html
        symgrad explore "tanh(x1*w1 + x2*w2 + b)" --at x1=2,x2=0,w1=-3,w2=1,b=6.88 -o n.html
        """,
    )
    _expr_arg(p)
    p.add_argument(
        "--at", action="append", metavar="NAME=NUMBER,...", help="the point (values, gradients)"
    )
    p.add_argument("-o", "--output", required=True, help="the HTML file to write")
    _format_arg(p)
    p.set_defaults(run=_cmd_explore)

    p = _sub(
        subs,
        "demo",
        "the micrograd lecture in one run: derivative, chain rule, neuron, compiled code, check",
        """
        symgrad demo
        symgrad demo --out pictures/                       # keep the neuron's SVG there
        """,
    )
    p.add_argument("--out", help="folder for the picture (default: a new temporary folder)")
    _format_arg(p)
    p.set_defaults(run=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``symgrad`` command; returns the exit code (the console script exits with it).

    Args:
        argv: the arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        An exit code of :data:`EXIT_CODES`: 0 on success, 1 when a gradient check failed, 2 for
        a bad command line, 3 for a bad formula, ... Errors are printed to standard error as
        ``symgrad: error: ...``; nothing raises.

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
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:  # a bare 'symgrad': the overview and the examples
            parser.print_help()
            return EXIT_OK
        return args.run(args)
    except _UsageError as err:
        return _fail(str(err), EXIT_USAGE)
    except BrokenPipeError:
        return _broken_pipe()
    except SymgradError as err:
        return _fail(str(err), _exit_code(err))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (RecursionError, MemoryError) as err:
        return _fail(
            f"the formula is too large to process ({type(err).__name__}); try a smaller one",
            EXIT_TOO_LARGE,
        )
    except Exception as err:  # a bug: still one line, but say it is ours
        return _fail(
            f"internal error ({type(err).__name__}: {err}); please report it with the command",
            EXIT_INTERNAL,
        )


def _exit_code(err: SymgradError) -> int:
    for kind, code in (
        (GradientCheckError, EXIT_CHECK_FAILED),
        (ParseError, EXIT_FORMULA),
        (UnsupportedFunctionError, EXIT_FORMULA),
        (DomainError, EXIT_DOMAIN),
        (BackendUnavailableError, EXIT_MISSING_PROGRAM),
        (FileAccessError, EXIT_FILE),
        (GraphTooLargeError, EXIT_TOO_LARGE),
    ):
        if isinstance(err, kind):
            return code
    return EXIT_USAGE  # options that cannot work: OptionError, MissingSymbolError, ...


def _broken_pipe() -> int:
    # the reader (e.g. head) has gone: print nothing more, and keep Python from complaining
    # when it flushes standard output at exit
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return EXIT_BROKEN_PIPE


def _fail(message: str, code: int) -> int:
    with contextlib.suppress(OSError):  # standard error closed too: the exit code says it
        print(f"symgrad: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
