"""Writing files the user named, and only those: atomically, through symbolic links.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "out.txt")
>>> _ = atomic_write(path, b"first")
>>> atomic_write(path, b"second").read_bytes()
b'second'
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

from .errors import FileAccessError

__all__ = ["atomic_write", "os_error"]

_TMP_SUFFIX = ".tmp"


def os_error(path: object, action: str, exc: OSError) -> FileAccessError:
    """A :class:`FileAccessError` naming ``path`` and the system's reason.

    >>> print(os_error("a/b.txt", "write", FileNotFoundError(2, "No such file or directory")))
    cannot write 'a/b.txt': No such file or directory
    """
    return FileAccessError(f"cannot {action} {str(path)!r}: {exc.strerror or exc}")


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Replace the file ``path`` by ``data`` atomically; returns the file written.

    The data goes to a temporary file ``.NAME.PID.RANDOM.tmp`` in the target's folder, is
    flushed to disk and moved over the target with ``os.replace``, so readers see the old or
    the new file, never a part. A symbolic link is followed (its target is updated, the link
    stays), an existing file keeps its permission bits, and temporary files of this naming
    whose process is gone (a killed save) are removed first. Nothing else is touched.

    Text is written as UTF-8.

    Raises:
        FileAccessError: ``path`` is a folder, its folder does not exist or is a file, or
            the system refuses the write (permissions, a read-only or special file system).

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> atomic_write(os.path.join(folder, "a.txt"), b"hello").read_bytes()
    b'hello'
    >>> os.listdir(folder)
    ['a.txt']
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = Path(path)
    target = Path(os.path.realpath(path))
    folder = target.parent
    if target.is_dir():
        raise FileAccessError(f"cannot write {str(path)!r}: it is a folder; give a file name")
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise FileAccessError(f"cannot write {str(path)!r}: {str(folder)!r} {what}")
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None  # a new file: the usual 0o666 less the umask
    except OSError as exc:
        raise os_error(path, "write", exc) from None
    _remove_stale(target)
    try:
        fd, tmp = _open_temporary(target)
    except OSError as exc:
        raise os_error(path, "write", exc) from None
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise os_error(path, "write", exc) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _fsync_folder(folder)
    return target


def _temp_name(target: Path) -> Path:
    return target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(6)}{_TMP_SUFFIX}"


def _open_temporary(target: Path) -> tuple[int, Path]:
    """A new temporary file beside ``target``, opened for writing: ``(descriptor, name)``."""
    name = _temp_name(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.open(name, flags, 0o666), name


def _remove_stale(target: Path) -> None:
    """Remove ``.NAME.PID.RANDOM.tmp`` files of ``target`` whose saving process is gone."""
    pattern = re.compile(
        rf"\.{re.escape(target.name)}\.(\d+)\.[0-9a-f]{{12}}{re.escape(_TMP_SUFFIX)}"
    )
    try:
        entries = os.listdir(target.parent)
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match is None or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(target.parent / entry)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # ours: maybe another thread's save in progress
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # another user's live process (or cannot tell): leave its file alone
    return True


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
