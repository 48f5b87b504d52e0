"""Saving and loading a module's parameters.

The file is JSON (``{"format": "symgrad-parameters", "labels": [...], "values": [...]}``;
floats round-trip exactly): one label and value per :class:`~symgrad.Value` parameter, or, for a
:class:`~symgrad.nn.Dense` network, one label (``W_1``, ``b_1``, ...) and ``"shapes"`` entry per
array with all the numbers in ``"values"``, row by row. Saving never loses the previous file:

- the data goes to a temporary file ``.NAME.PID.RANDOM.tmp`` in the target's directory, is
  flushed to disk, then moved over the target with ``os.replace`` (atomic);
- temporary files of this naming that a killed save left behind (their process is gone) are
  removed by the next save of the same file;
- the target keeps its permission bits, and a symbolic link is followed: its target is updated,
  the link stays a link;
- non-finite parameters (a diverged run) are refused unless ``allow_nonfinite=True``.

Loading reads at most what a file for this module can hold and checks everything before it
changes a parameter; any problem (missing file, a folder, binary or non-UTF-8 bytes, broken or
hostile JSON, numbers out of range, wrong architecture) is one typed error naming the file.

>>> import random, tempfile, os
>>> from symgrad.nn import MLP
>>> model = MLP(2, [3, 1], rng=random.Random(0))
>>> path = os.path.join(tempfile.mkdtemp(), "params.json")
>>> save_parameters(model, path)
>>> other = MLP(2, [3, 1], rng=random.Random(1))
>>> load_parameters(other, path)
>>> [p.data for p in other.parameters()] == [p.data for p in model.parameters()]
True
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..errors import DomainError, FileAccessError, InputTypeError, ParseError, ShapeError
from ..files import atomic_write, os_error

__all__ = ["load_parameters", "save_parameters"]

FORMAT = "symgrad-parameters"


def _parameters(module) -> list:
    params = getattr(module, "parameters", None)
    if not callable(params):
        raise InputTypeError(
            f"expected a module with parameters() (e.g. an MLP), got {type(module).__name__}"
        )
    return list(params())


def _table(module) -> tuple[list, list[str], list[list[int]] | None]:
    """``(parameters, labels, shapes)``: shapes is ``None`` for ``Value`` parameters, else the
    arrays' shapes (a :class:`~symgrad.nn.Dense` network), whose labels are their symbols."""
    params = _parameters(module)
    if params and all(isinstance(p, np.ndarray) for p in params):
        symbols = getattr(module, "parameter_symbols", None)
        names = [str(s) for s in symbols()] if callable(symbols) else []
        if len(names) != len(params):
            names = [f"p{i}" for i in range(len(params))]
        return params, names, [list(p.shape) for p in params]
    return params, [str(getattr(p, "label", "")) for p in params], None


def _as_path(path) -> Path:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"path must be a file name (str or Path), got {type(path).__name__}")
    path = Path(path)
    if not str(path) or str(path) == ".":
        raise InputTypeError("path is empty; give a file name such as 'params.json'")
    return path


# ----------------------------------------------------------------------------- saving


def save_parameters(module, path: str | os.PathLike, *, allow_nonfinite: bool = False) -> None:
    """Write ``module.parameters()`` (labels and values) to ``path`` atomically.

    Args:
        module: anything with ``parameters()`` returning :class:`~symgrad.Value` objects.
        path: the file to write (its directory must exist). A symbolic link is followed.
        allow_nonfinite: also save NaN or infinite values (written as JSON's ``NaN`` and
            ``Infinity``); by default they are refused so a diverged run cannot overwrite a
            good checkpoint.

    Raises:
        DomainError: a parameter is NaN or infinite (and ``allow_nonfinite`` is false).
        FileAccessError: the file cannot be written (missing folder, a folder, no permission).
        InputTypeError: ``module`` has no ``parameters()``, or a value is not a number.

    >>> import os, random, tempfile
    >>> from symgrad.nn import Neuron
    >>> path = os.path.join(tempfile.mkdtemp(), "neuron.json")
    >>> save_parameters(Neuron(2, rng=random.Random(0)), path)
    >>> os.listdir(os.path.dirname(path))
    ['neuron.json']
    """
    path = _as_path(path)
    params, labels, shapes = _table(module)
    values = []
    if shapes is not None:
        for p, lab in zip(params, labels, strict=True):
            if p.dtype.kind not in "fiu":
                raise InputTypeError(f"parameter {lab} must hold numbers, got dtype {p.dtype}")
            values += np.asarray(p, dtype=float).ravel().tolist()
        # one label per number, so a bad entry is named with its array
        owners = [lab for p, lab in zip(params, labels, strict=True) for _ in range(p.size)]
    else:
        for p in params:
            v = getattr(p, "data", p)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InputTypeError(f"parameter values must be numbers, got {type(v).__name__}")
            values.append(float(v))
        owners = labels
    bad = [(lab, v) for lab, v in zip(owners, values, strict=True) if not math.isfinite(v)]
    if bad and not allow_nonfinite:
        raise DomainError(
            f"refusing to save {len(bad)} non-finite parameter(s) to {str(path)!r} (first: "
            f"{bad[0][0] or 'unlabelled'} = {bad[0][1]}); training diverged? Save anyway with "
            "allow_nonfinite=True"
        )
    payload = {
        "format": FORMAT,
        "version": 1,
        "labels": labels,
        **({"shapes": shapes} if shapes is not None else {}),
        "values": values,
    }
    atomic_write(path, json.dumps(payload).encode("utf-8"))


# ----------------------------------------------------------------------------- loading


def _size_limit(labels: list[str], count: int) -> int:
    # JSON escapes a character in at most 12 bytes (a surrogate pair); a float needs at most
    # 25, a shape entry less; the slack admits reformatted (indented) files
    text = sum(12 * len(lab) + 64 for lab in labels)
    return 2 * (text + 32 * count) + 65536


def _read(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except IsADirectoryError:
        raise FileAccessError(f"cannot read {str(path)!r}: it is a folder, not a file") from None
    except OSError as exc:
        raise os_error(path, "read", exc) from None
    if len(data) > limit:
        raise ParseError(
            f"{str(path)!r} is larger than a parameter file of this module can be "
            f"({limit} bytes); is it the right file?"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"{str(path)!r} is not a symgrad parameter file: not UTF-8 text (byte "
            f"{exc.start}); a binary file such as a pickle?"
        ) from None


def load_parameters(module, path: str | os.PathLike, *, allow_nonfinite: bool = False) -> None:
    """Set ``module``'s parameters from a file written by :func:`save_parameters`.

    Nothing changes unless the whole file is valid for this module.

    Args:
        module: the module to fill (the same architecture as the saved one).
        path: the file.
        allow_nonfinite: accept NaN and infinite values (saved with ``allow_nonfinite=True``).

    Raises:
        FileAccessError: the file is missing, a folder, or unreadable.
        ParseError: the file is not a symgrad parameter file (binary, broken or hostile JSON,
            too large, numbers out of range).
        ShapeError: the number of parameters or their labels do not match the module.

    >>> import os, random, tempfile
    >>> from symgrad.nn import Neuron
    >>> path = os.path.join(tempfile.mkdtemp(), "neuron.json")
    >>> save_parameters(Neuron(2, rng=random.Random(0)), path)
    >>> other = Neuron(2, rng=random.Random(1))
    >>> load_parameters(other, path)
    >>> other.w[0].data == Neuron(2, rng=random.Random(0)).w[0].data
    True
    """
    path = _as_path(path)
    params, own_labels, shapes = _table(module)
    count = len(params) if shapes is None else sum(p.size for p in params)
    name = repr(str(path))
    text = _read(path, _size_limit(own_labels, count))
    try:
        # integers parse as floats: a 5,000-digit integer is inf (refused below), not an error
        # deep inside int(); NaN/Infinity parse as floats and are refused below unless allowed
        payload = json.loads(text, parse_int=float)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{name} is not a symgrad parameter file: {exc.msg}") from None
    except RecursionError:
        raise ParseError(f"{name} is not a symgrad parameter file: nested too deeply") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ParseError(f"{name} is not a symgrad parameter file (no 'format': '{FORMAT}')")
    labels, values = payload.get("labels"), payload.get("values")
    if shapes is not None:
        if not isinstance(labels, list) or payload.get("shapes") != shapes:
            raise ShapeError(
                f"{name} holds parameters of shapes {str(payload.get('shapes'))[:200]}, the "
                f"module {shapes}; build the same architecture before loading"
            )
        if not isinstance(values, list) or len(values) != count:
            raise ParseError(f"{name}: 'values' must be a list of {count} numbers")
        labels_ok = len(labels) == len(own_labels)
    elif "shapes" in payload:
        raise ShapeError(
            f"{name} holds the arrays of a Dense network, but the module has Value "
            "parameters; load it into the same architecture"
        )
    elif not isinstance(values, list) or not isinstance(labels, list) or len(values) != len(labels):
        raise ParseError(f"{name}: 'labels' and 'values' must be lists of the same length")
    else:
        labels_ok = True
    if not labels_ok or len(values) != count:
        raise ShapeError(
            f"{name} holds {len(labels) if shapes is not None else len(values)} parameters but "
            f"the module has {len(params)}; build the same architecture before loading"
        )
    mismatch = [(a, b) for a, b in zip(labels, own_labels, strict=True) if a != b]
    if mismatch:
        raise ShapeError(
            f"{name}: parameter labels differ from the module's (first: "
            f"{str(mismatch[0][0])[:80]!r} vs {mismatch[0][1][:80]!r}); build the same "
            "architecture before loading"
        )
    for v in values:
        if not isinstance(v, float):
            raise ParseError(f"{name}: parameter values must be numbers, got {str(v)[:80]!r}")
        if not (math.isfinite(v) or allow_nonfinite):
            raise ParseError(
                f"{name}: parameter values must be finite numbers, got {v} (a number too large "
                "for a float, or a diverged run saved with allow_nonfinite=True)"
            )
    if shapes is not None:
        flat = np.array(values, dtype=float)
        start = 0
        for p in params:
            p[...] = flat[start : start + p.size].reshape(p.shape)
            start += p.size
        return
    for p, v in zip(params, values, strict=True):
        p.data = v
