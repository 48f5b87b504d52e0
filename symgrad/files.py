"""Writing a file the user named, and nothing else: a temporary file, then an atomic rename.

A reader (or a crash) never sees half a file: the bytes go to a temporary file in the same
folder, are flushed to disk, and ``os.replace`` moves them over the target in one step. No other
file is created, overwritten or deleted (graphviz's own ``render`` writes and then deletes a
``.gv`` file next to the output, whatever was there). An existing file keeps its permissions;
a new one gets the usual ``0666 & ~umask``; a symlink is followed, so its target is updated.

>>> import os, tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = write_atomic(os.path.join(tmp, "out.txt"), b"hello")
...     sorted(os.listdir(tmp)), path.read_bytes()
(['out.txt'], b'hello')
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from .errors import OptionError

__all__ = ["write_atomic"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    Args:
        path: the file to write (its folder must exist; a symlink is followed).
        data: bytes, or text written as UTF-8.

    Returns:
        The path written (as given, not resolved).

    Raises:
        OptionError: ``path`` is a folder, its folder does not exist, or it cannot be written
            (the message names the path and the reason).

    >>> write_atomic("/nonexistent-folder/x.svg", b"")
    Traceback (most recent call last):
    ...
    symgrad.errors.OptionError: cannot write '/nonexistent-folder/x.svg': its folder does not exist
    """
    given = Path(path)
    target = Path(os.path.realpath(given))
    if target.is_dir():
        raise OptionError(f"cannot write {str(given)!r}: it is a folder; name a file in it")
    if not target.parent.is_dir():
        raise OptionError(f"cannot write {str(given)!r}: its folder does not exist")
    blob = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OptionError(f"cannot write {str(given)!r}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OptionError(f"cannot write {str(given)!r}: {exc.strerror or exc}") from exc
        raise
    return given
