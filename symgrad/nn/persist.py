"""Saving and loading a module's parameters.

The file is JSON (``{"format": "symgrad-parameters", "labels": [...], "values": [...]}``;
floats round-trip exactly). It is written atomically: to a temporary file in the same
directory, flushed to disk, then moved over the target with ``os.replace``, so an interrupted
save never destroys the previous file.

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
import tempfile
from pathlib import Path

from ..errors import InputTypeError, ParseError, ShapeError

__all__ = ["load_parameters", "save_parameters"]

FORMAT = "symgrad-parameters"


def save_parameters(module, path: str | os.PathLike) -> None:
    """Write ``module.parameters()`` (labels and values) to ``path`` atomically.

    Args:
        module: anything with ``parameters()`` returning :class:`~symgrad.Value` objects.
        path: the file to write (its directory must exist).

    >>> import os, random, tempfile
    >>> from symgrad.nn import Neuron
    >>> path = os.path.join(tempfile.mkdtemp(), "neuron.json")
    >>> save_parameters(Neuron(2, rng=random.Random(0)), path)
    >>> os.listdir(os.path.dirname(path))
    ['neuron.json']
    """
    path = Path(path)
    params = module.parameters()
    payload = {
        "format": FORMAT,
        "version": 1,
        "labels": [p.label for p in params],
        "values": [p.data for p in params],
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_parameters(module, path: str | os.PathLike) -> None:
    """Set ``module``'s parameters from a file written by :func:`save_parameters`.

    Raises:
        ParseError: the file is not a symgrad parameter file.
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
    text = Path(path).read_text(encoding="utf-8")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{path} is not a symgrad parameter file: {exc.msg}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ParseError(f"{path} is not a symgrad parameter file (no 'format': '{FORMAT}')")
    labels, values = payload.get("labels"), payload.get("values")
    params = module.parameters()
    if not isinstance(values, list) or not isinstance(labels, list) or len(values) != len(labels):
        raise ParseError(f"{path}: 'labels' and 'values' must be lists of the same length")
    if len(values) != len(params):
        raise ShapeError(
            f"{path} holds {len(values)} parameters but the module has {len(params)}; "
            "build the same architecture before loading"
        )
    mismatch = [(a, p.label) for a, p in zip(labels, params, strict=True) if a != p.label]
    if mismatch:
        raise ShapeError(
            f"{path}: parameter labels differ from the module's (first: {mismatch[0][0]!r} vs "
            f"{mismatch[0][1]!r}); build the same architecture before loading"
        )
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputTypeError(f"{path}: parameter values must be finite numbers, got {v!r}")
    for p, v in zip(params, values, strict=True):
        p.data = float(v)
