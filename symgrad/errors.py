"""The exception hierarchy of symgrad.

Every error symgrad raises on bad input is a :class:`SymgradError`. Each subclass also derives
from the matching built-in exception (``TypeError``, ``ValueError``, ...) so code that already
catches those keeps working. Messages say what was wrong *and* how to fix it.

>>> from symgrad.errors import SymgradError, InputTypeError
>>> issubclass(InputTypeError, TypeError) and issubclass(InputTypeError, SymgradError)
True
"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "BackendUnavailableError",
    "CompilerError",
    "DomainError",
    "DtypeError",
    "ExportError",
    "FileAccessError",
    "GradientCheckError",
    "GraphTooLargeError",
    "InputTypeError",
    "MissingSymbolError",
    "OptionError",
    "ParseError",
    "ShapeError",
    "SymgradError",
    "SymgradWarning",
    "UnsafeCacheError",
    "UnsupportedFunctionError",
    "require",
]


class SymgradError(Exception):
    """Base class of every error symgrad raises on purpose.

    >>> try:
    ...     raise SymgradError("something was wrong; do this instead")
    ... except SymgradError as err:
    ...     print(err)
    something was wrong; do this instead
    """


class InputTypeError(SymgradError, TypeError):
    """An argument has the wrong type (e.g. a string where a SymPy expression is expected).

    >>> issubclass(InputTypeError, TypeError)
    True
    """


class UnsupportedFunctionError(SymgradError, NotImplementedError):
    """An expression contains a head (function or operator) with no derivative rule.

    Attributes:
        head: the name of the unsupported head.
        argument: the 1-based argument position SymPy cannot differentiate in (or ``None``).

    >>> err = UnsupportedFunctionError("floor2", "no rule")
    >>> err.head, err.argument
    ('floor2', None)
    """

    def __init__(self, head: str, message: str, argument: int | None = None) -> None:
        super().__init__(message)
        self.head = head
        self.argument = argument


class MissingSymbolError(SymgradError, ValueError):
    """An expression uses symbols that the caller did not list (e.g. as compiled-function args).

    >>> issubclass(MissingSymbolError, ValueError)
    True
    """


class ArgumentError(SymgradError, TypeError):
    """A compiled function was called with the wrong number or type of arguments.

    >>> issubclass(ArgumentError, TypeError)
    True
    """


class OptionError(SymgradError, ValueError):
    """A keyword option has a value outside its allowed set, or one that cannot work here.

    Examples: an unknown method name, a non-positive step, or the complex-step method on a
    function that cannot take complex numbers. The message lists the valid choices.

    >>> issubclass(OptionError, ValueError)
    True
    """


class ShapeError(SymgradError, ValueError):
    """An array argument has a shape that does not fit (e.g. a parameter vector of wrong length).

    >>> issubclass(ShapeError, ValueError)
    True
    """


class DomainError(SymgradError, ValueError):
    """A value lies outside the domain of an operation (e.g. the log of a negative number).

    >>> issubclass(DomainError, ValueError)
    True
    """


class DtypeError(SymgradError, TypeError):
    """An array's dtype cannot be computed as asked (e.g. float64 on JAX without 64-bit mode).

    >>> issubclass(DtypeError, TypeError)
    True
    """


class GradientCheckError(SymgradError, AssertionError):
    """A symbolic gradient disagrees with the numerical one.

    Attributes:
        report: the full comparison (a :class:`symgrad.check.GradCheckReport`).

    >>> issubclass(GradientCheckError, AssertionError)
    True
    """

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report


class BackendUnavailableError(SymgradError, ImportError):
    """An optional feature needs a package or program that is not installed.

    >>> issubclass(BackendUnavailableError, ImportError)
    True
    """


class CompilerError(BackendUnavailableError):
    """The C compiler failed, timed out or could not run while building a compiled function.

    The message gives the compiler's own words and what to do (more time with ``timeout=``,
    another ``$CC``, or ``backend='numpy'``).

    >>> issubclass(CompilerError, BackendUnavailableError)
    True
    """


class FileAccessError(SymgradError, OSError):
    """A file or folder the user named cannot be read or written (missing, a folder, no access).

    The message names the path and the reason.

    >>> issubclass(FileAccessError, OSError)
    True
    """


class UnsafeCacheError(SymgradError, PermissionError):
    """The folder of compiled C libraries is not private to this user, so it is not used.

    A library loaded from it would run inside this process: a folder owned by another user or
    writable by group or others is refused (never silently replaced by a shared one). The
    message names the folder and how to fix it.

    >>> issubclass(UnsafeCacheError, PermissionError)
    True
    """


class ExportError(FileAccessError):
    """Generated code could not be written to the file asked for (the message names it).

    >>> issubclass(ExportError, FileAccessError)
    True
    """


class GraphTooLargeError(SymgradError, ValueError):
    """A graph has too many nodes to draw (lay out) in reasonable time.

    The message gives the node count and the options that make it smaller
    (``collapse=True``, ``depth=...``) or raise the limit (``max_nodes=...``).

    >>> issubclass(GraphTooLargeError, ValueError)
    True
    """


class ParseError(SymgradError, ValueError):
    """Text could not be parsed safely into an expression.

    The message ends with the offending line and a caret under the position.

    Attributes:
        text: the text that was parsed.
        position: 0-based character offset of the problem (or ``None``).
        reason: the message without the caret picture.

    >>> err = ParseError("names may not start with '__'", "x + __y", 4)
    >>> print(err)
    names may not start with '__' (at position 4)
        x + __y
            ^
    """

    def __init__(self, reason: str, text: str = "", position: int | None = None) -> None:
        self.reason = reason
        self.text = text
        self.position = position
        super().__init__(self._format())

    def _format(self) -> str:
        if self.position is None or not self.text:
            return self.reason
        # Show only the line holding the position, clipped to a readable window.
        start = self.text.rfind("\n", 0, self.position) + 1
        end = self.text.find("\n", self.position)
        end = len(self.text) if end < 0 else end
        col = self.position - start
        lo = max(0, col - 60)
        line = self.text[start:end][lo : lo + 120]
        return f"{self.reason} (at position {self.position})\n    {line}\n    {' ' * (col - lo)}^"


class SymgradWarning(UserWarning):
    """Base class of the warnings symgrad emits (e.g. vanishing or exploding gradients).

    Filter them as a group with ``warnings.simplefilter("ignore", SymgradWarning)``.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("gradients vanish in layer 2", SymgradWarning)
    >>> caught[0].category.__name__
    'SymgradWarning'
    """


def require(module: str, extra: str, feature: str):
    """Import an optional package, or raise :class:`BackendUnavailableError` naming its extra.

    >>> require("math", "none", "this example").__name__
    'math'
    >>> require("no_such_package_xyz", "jax", "backend='jax'")
    Traceback (most recent call last):
    ...
    symgrad.errors.BackendUnavailableError: backend='jax' needs no_such_package_xyz; install ...
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"{feature} needs {module.split('.')[0]}; install the extra: "
            f'pip install -e ".[{extra}]" (from a clone of symgrad)'
        ) from exc
