"""Building C translation units into a cached shared library (the C target's builder).

The cache is per user: ``$XDG_CACHE_HOME/symgrad/c`` (``~/.cache/symgrad/c``;
``~/Library/Caches`` on macOS), or the folder given as ``cache_dir``. It is created with mode
0700 and refused (:class:`~symgrad.errors.UnsafeCacheError`) when it, or the ``symgrad`` folder
above it, belongs to another user or is writable by group or others: a library found there runs
inside this process, so nobody else may be able to put one there. There is no fallback to a
shared folder.

An entry is a folder named by a hash of the sources, the flags, the compiler's identity (its path
and ``--version``) and the CPU, holding ``kernel.so`` and the SHA-256 of its bytes. It is built in
a temporary folder inside the cache and renamed into place, so a build killed at any point leaves
no entry, only a ``tmp-<host>-<pid>-*`` folder that the next build removes once that process is
gone. A library whose bytes do not match their checksum (truncated, corrupted) is rebuilt. Each
translation unit is compiled by its own compiler process, :func:`jobs` at a time, then linked;
every compiler process runs under a deadline (``timeout``) and is killed with its children when
it passes. The cache keeps at most :data:`CACHE_BYTES` bytes, evicting the least recently used
entries.

>>> isinstance(c_available(), bool)
True
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import os
import platform
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from ..errors import BackendUnavailableError, CompilerError, UnsafeCacheError

__all__ = [
    "CACHE_BYTES",
    "TIMEOUT",
    "Target",
    "build_library",
    "c_available",
    "cache_dir",
    "compiler",
    "compiles",
    "jobs",
    "target",
]

#: Seconds a compiler process may take before it is killed (``timeout=`` overrides; so does
#: ``$SYMGRAD_CC_TIMEOUT``).
TIMEOUT = 600.0
#: Bytes the cache may hold; least recently used entries beyond this are deleted after a build.
CACHE_BYTES = 1 << 30
#: Changes whenever the layout of an entry or the kernel's calling convention changes.
_FORMAT = "symgrad-c-3"
_LIBRARY = "kernel.so"
_CHECKSUM = "sha256"


@functools.lru_cache(maxsize=1)
def compiler() -> tuple[str, ...] | None:
    """The C compiler command: ``$CC`` (which may carry flags), else ``cc``, ``gcc``, ``clang``.

    >>> compiler() is None or isinstance(compiler()[0], str)
    True
    """
    cc = os.environ.get("CC")
    candidates = [shlex.split(cc)] if cc and cc.strip() else []
    candidates += [["cc"], ["gcc"], ["clang"]]
    for cmd in candidates:
        found = shutil.which(cmd[0])
        if found:
            return (found, *cmd[1:])
    return None


def c_available() -> bool:
    """True when a C compiler is on ``PATH`` (``$CC``, ``cc``, ``gcc`` or ``clang``).

    >>> isinstance(c_available(), bool)
    True
    """
    return compiler() is not None


def jobs() -> int:
    """How many compiler processes run at once: the CPUs this process may use.

    >>> jobs() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Target(NamedTuple):
    """What the compiler can target on this machine.

    Attributes:
        flags: ``["-march=native"]`` when the compiler takes it.
        avx: whether those flags give AVX (256-bit vectors): the 4-sample loop pays.
        identity: the compiler's path and ``--version``, and the CPU: part of the cache key
            (a library built with ``-march=native`` only runs on CPUs like this one).
        mvec: whether loops over ``exp``/``log``/``sin``/``cos``/``tanh`` can call glibc's
            vector math library (``-lmvec``, GCC's ``simd`` attribute): 4 or 8 values per call.

    >>> Target([], False, "cc").avx, Target([], False, "cc").mvec
    (False, False)
    """

    flags: list[str]
    avx: bool
    identity: str
    mvec: bool = False


@functools.lru_cache(maxsize=4)
def target(cc: tuple[str, ...]) -> Target:
    """Probe ``cc`` once per process: its version, ``-march=native``, AVX.

    Args:
        cc: the compiler command (see :func:`compiler`).
    """
    cpu = f"{platform.machine()} {platform.processor()}"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            keys = ("model name", "flags", "Features")
            cpu += "".join(line for line in f if line.startswith(keys))
    except OSError:
        pass
    try:
        version = _run([*cc, "--version"], 30.0, None).stdout
    except (CompilerError, OSError):
        version = "unknown"
    identity = f"{' '.join(cc)}\n{version}\n{cpu}"
    if not compiles(cc, ["-march=native"]):
        return Target([], False, identity)
    avx = compiles(cc, ["-march=native"], "#ifndef __AVX__\n#error no AVX\n#endif\n")
    return Target(["-march=native"], avx, identity, _links_mvec(cc))


#: A loop GCC vectorises through libmvec when the library links (GCC only: Clang ignores the
#: ``simd`` attribute of a declaration).
_MVEC_PROBE = """\
#include <math.h>
#include <stdint.h>
#if !defined(__GNUC__) || defined(__clang__) || !defined(__AVX2__)
#error no libmvec calls from this compiler
#endif
double tanh(double) __attribute__((simd("notinbranch")));
void f(const double *restrict a, double *restrict b, int64_t n) {
    for (int64_t k = 0; k < n; ++k) b[k] = tanh(a[k]);
}
"""


def _links_mvec(cc: tuple[str, ...]) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(_MVEC_PROBE)
        flags = ["-march=native", "-O2", "-fno-math-errno", "-fPIC", "-shared"]
        cmd = [*cc, *flags, "-o", str(Path(tmp) / "probe.so"), str(src), "-lm", "-lmvec"]
        try:
            return _run(cmd, 60.0, None).returncode == 0
        except (CompilerError, OSError):
            return False


def compiles(cc: tuple[str, ...], flags: list[str], prefix: str = "") -> bool:
    """Whether ``cc`` with ``flags`` compiles ``prefix`` and a small function (a probe).

    >>> cc = compiler()
    >>> cc is None or compiles(cc, ["-O1"], "#include <math.h>")
    True
    """
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(prefix + "\ndouble f(double x) { return x * x; }\n")
        try:
            proc = _run([*cc, *flags, "-c", "-o", str(Path(tmp) / "probe.o"), str(src)], 60.0, None)
        except (CompilerError, OSError):
            return False
        return proc.returncode == 0


def _run(cmd: list[str], timeout: float, cwd: Path | None) -> subprocess.CompletedProcess:
    # The compiler driver starts cc1/as/ld as children: a session of their own, so that a
    # timeout kills all of them, not only the driver.
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise CompilerError(
            f"the C compiler did not finish within {timeout:g} s ({shlex.join(cmd[:2])} ...) "
            "and was stopped; give it more time with timeout=... (or $SYMGRAD_CC_TIMEOUT, in "
            "seconds), check that $CC is a working compiler, or use backend='numpy'"
        ) from None
    except BaseException:
        _kill(proc)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.communicate()


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        return float(timeout)
    text = os.environ.get("SYMGRAD_CC_TIMEOUT")
    if not text:
        return TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise CompilerError(
            f"$SYMGRAD_CC_TIMEOUT must be a positive number of seconds, got {text!r}"
        )
    return value


def _default_root() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The C cache folder, created (mode 0700) if needed and checked to be this user's alone.

    Args:
        path: the folder to use; default ``symgrad/c`` under the user's cache folder.

    Raises:
        UnsafeCacheError: the folder (or the ``symgrad`` folder above the default one) belongs
            to another user or is writable by group or others, or cannot be created.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     oct(cache_dir(Path(tmp) / "c").stat().st_mode & 0o777)
    '0o700'
    """
    folders = [Path(path)] if path is not None else [_default_root() / "symgrad", None]
    if folders[-1] is None:
        folders[-1] = folders[0] / "c"
    for folder in folders:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise UnsafeCacheError(
                f"cannot create the C cache folder {folder}: {exc}; set $XDG_CACHE_HOME to a "
                "writable folder of yours, or pass cache_dir=..."
            ) from exc
        _check_private(folder)
    return folders[-1]


def _check_private(folder: Path) -> None:
    info = folder.stat()  # follows a symbolic link: its target is what gets loaded
    uid = os.getuid() if hasattr(os, "getuid") else None
    if uid is not None and info.st_uid != uid:
        raise UnsafeCacheError(
            f"the C cache folder {folder} belongs to user id {info.st_uid}, not to you "
            f"({uid}): a library there would run inside this process, so it is not used. "
            "Remove the folder (or point $XDG_CACHE_HOME / cache_dir=... at a folder of yours)"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeCacheError(f"the C cache path {folder} is not a folder; remove it")
    if os.name != "nt" and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeCacheError(
            f"the C cache folder {folder} is writable by other users (mode "
            f"{oct(info.st_mode & 0o777)}): a library planted there would run inside this "
            f"process, so it is not used. Run 'chmod 700 {folder}' after checking its "
            "contents, or remove it"
        )


def build_library(
    name: str,
    units: list[tuple[str, list[str]]],
    *,
    timeout: float | None = None,
    cache: str | os.PathLike | None = None,
    cache_bytes: int | None = None,
) -> Path:
    """The path of a shared library built from C translation units, from the cache if there.

    Args:
        name: a C identifier naming the entry (a prefix of its folder name).
        units: ``(source, flags)`` per translation unit (flags such as ``["-O2"]``).
        timeout: seconds each compiler process may take (default :data:`TIMEOUT`, or
            ``$SYMGRAD_CC_TIMEOUT``).
        cache: the cache folder (default: see :func:`cache_dir`).
        cache_bytes: the cache's size cap (default :data:`CACHE_BYTES`).

    Raises:
        BackendUnavailableError: no C compiler.
        CompilerError: the compiler failed, timed out or could not run.
        UnsafeCacheError: the cache folder is not private to this user.

    >>> import ctypes, tempfile
    >>> src = "int answer(void) { return 42; }"
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     if c_available():
    ...         lib = build_library("answer", [(src, ["-O1"])], cache=tmp)
    ...         print(ctypes.CDLL(str(lib)).answer())
    ...     else:
    ...         print(42)
    42
    """
    cc = compiler()
    if cc is None:
        raise BackendUnavailableError(
            "the 'c' backend needs a C compiler (cc, gcc or clang on PATH, or $CC); install "
            "one (e.g. 'apt-get install gcc') or use backend='numpy'"
        )
    limit = _timeout(timeout)
    tgt = target(cc)
    common = [*tgt.flags, "-fPIC", "-fno-math-errno", "-ffp-contract=off"]
    digest = hashlib.sha256(f"{_FORMAT}\n{tgt.identity}\n{common}".encode())
    for source, flags in units:
        digest.update(f"\0{flags}\0{source}".encode())
    folder = cache_dir(cache)
    entry = folder / f"{name}_{digest.hexdigest()[:32]}"
    lib = entry / _LIBRARY
    if _verified(entry):
        os.utime(entry)  # recently used
        return lib
    _remove_stale(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f"tmp-{socket.gethostname()}-{os.getpid()}-", dir=folder))
    try:
        _compile(cc, common, units, tmp, limit)
        checksum = hashlib.sha256((tmp / _LIBRARY).read_bytes()).hexdigest()
        (tmp / _CHECKSUM).write_text(checksum)
        if entry.exists():  # corrupt (checked above), or just built by another process
            if _verified(entry):
                return lib
            shutil.rmtree(entry, ignore_errors=True)
        try:
            os.rename(tmp, entry)  # atomic: nobody sees a half-built entry
        except OSError:
            if not _verified(entry):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _evict(folder, CACHE_BYTES if cache_bytes is None else cache_bytes, keep=entry)
    return lib


def _verified(entry: Path) -> bool:
    lib = entry / _LIBRARY
    try:
        info = lib.lstat()
        want = (entry / _CHECKSUM).read_text().strip()
    except OSError:
        return False
    uid = os.getuid() if hasattr(os, "getuid") else info.st_uid
    if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
        return False
    return hashlib.sha256(lib.read_bytes()).hexdigest() == want


def _compile(
    cc: tuple[str, ...], common: list[str], units: list[tuple[str, list[str]]], tmp: Path, limit
) -> None:
    out = tmp / _LIBRARY
    paths = []
    for k, (source, _) in enumerate(units):
        paths.append(tmp / f"unit{k}.c")
        paths[-1].write_text(source)
    # libraries a unit asks for (-lmvec) go after the objects that need them
    libs = list(dict.fromkeys(f for _, flags in units for f in flags if f.startswith("-l")))
    if len(units) == 1:
        flags = [f for f in units[0][1] if not f.startswith("-l")]
        cmd = [*cc, *flags, *common, "-shared", "-o", str(out), str(paths[0]), "-lm", *libs]
        _check(_run(cmd, limit, tmp))
        return
    objects = [p.with_suffix(".o") for p in paths]
    cmds = [
        [*cc, *[f for f in flags if not f.startswith("-l")], *common, "-c", "-o", str(o), str(p)]
        for (_, flags), p, o in zip(units, paths, objects, strict=True)
    ]
    # biggest units first: the two compilers finish together
    order = sorted(range(len(cmds)), key=lambda k: -len(units[k][0]))
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs()) as pool:
        futures = [pool.submit(_run, cmds[k], limit, tmp) for k in order]
        try:
            for f in concurrent.futures.as_completed(futures):
                _check(f.result())
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    link = [*cc, *common, "-shared", "-o", str(out), *map(str, objects), "-lm", *libs]
    _check(_run(link, limit, tmp))


def _check(proc: subprocess.CompletedProcess) -> None:
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[:800]
        raise CompilerError(
            f"the C compiler failed ({shlex.join(proc.args[:3])} ..., exit status "
            f"{proc.returncode}): {detail}\nCheck that $CC is a working C compiler, or use "
            "backend='numpy'; if the message points into symgrad's generated code, please "
            "report it"
        )


def _remove_stale(folder: Path) -> None:
    # temporary folders of builds whose process is gone (killed mid-build)
    host = socket.gethostname()
    for path in folder.glob("tmp-*"):
        parts = path.name.split("-")
        try:
            pid = int(parts[-2])
        except (ValueError, IndexError):
            continue
        if "-".join(parts[1:-2]) == host:
            if pid == os.getpid() or _alive(pid):
                continue
        else:  # another machine sharing this home: only builds older than a day are stale
            try:
                if time.time() - path.stat().st_mtime < 86400:
                    continue
            except OSError:
                continue
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _evict(folder: Path, limit: int, keep: Path) -> None:
    entries = []
    total = 0
    for path in folder.iterdir():
        if path.name.startswith("tmp-") or not path.is_dir():
            continue
        try:
            size = sum(f.stat().st_size for f in path.iterdir())
            used = path.stat().st_mtime
        except OSError:
            continue
        entries.append((used, size, path))
        total += size
    for _, size, path in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if path == keep:
            continue
        shutil.rmtree(path, ignore_errors=True)
        total -= size
