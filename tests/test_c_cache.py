"""The C target's library cache and compiler runs: private, checked, bounded, kill-safe.

A planted library carries a constructor that writes a marker file when it is loaded: the tests
show it is loaded from a private folder (so the plant is real) and refused everywhere else.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symgrad.codegen import c_build
from symgrad.codegen.c import build_c_kernel
from symgrad.errors import CompilerError, UnsafeCacheError

pytestmark = pytest.mark.skipif(not c_build.c_available(), reason="no C compiler")

x = sp.Symbol("x")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_compiler():
    # compiler() and target() are probed once per process: forget them around a test that
    # changes $CC
    c_build.compiler.cache_clear()
    c_build.target.cache_clear()
    yield
    c_build.compiler.cache_clear()
    c_build.target.cache_clear()


def _fake_cc(tmp_path: Path, body: str, name: str = "fakecc") -> Path:
    # a compiler wrapper: probes (--version, probe.c) go to the real compiler, kernels to `body`
    real = " ".join(c_build.compiler())
    c_build.compiler.cache_clear()  # probed again once $CC is set
    script = tmp_path / name
    script.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        case "$*" in
          *unit*) {body} ;;
        esac
        exec {real} "$@"
        """)
    )
    script.chmod(0o755)
    return script


_LOAD = """
import sys
import sympy as sp
from symgrad.codegen.c import build_c_kernel
from symgrad.errors import UnsafeCacheError
x = sp.Symbol("x")
try:
    cache = None if sys.argv[1] == "-" else sys.argv[1]
    build_c_kernel([x], [x + 1], name="planted", cache_dir=cache)
except UnsafeCacheError as exc:
    print(exc)
    sys.exit(3)
"""


def _load_in_child(cache: Path | None, env: dict | None = None) -> subprocess.CompletedProcess:
    # a fresh process: dlopen of a path this process already loaded would not run the
    # planted constructor again, whatever the cache decided
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [sys.executable, "-c", _LOAD, str(cache) if cache else "-"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _plant(cache: Path, marker: Path) -> Path:
    """Build the kernel for ``x + 1`` into ``cache``, then replace its library by one that
    writes ``marker`` when loaded (same entry name, valid checksum)."""
    kernel = build_c_kernel([x], [x + 1], name="planted", cache_dir=cache)
    entry = kernel.library.parent
    evil = entry.parent / "evil.c"
    evil.write_text(
        kernel.source
        + textwrap.dedent(f"""
        #include <stdio.h>
        __attribute__((constructor)) static void sg_evil(void) {{
            FILE *f = fopen("{marker}", "w");
            if (f) fclose(f);
        }}
        """)
    )
    flags = [*c_build.target(c_build.compiler()).flags, "-shared", "-fPIC"]
    out = ["-o", str(kernel.library), str(evil), "-lm"]
    subprocess.run([*c_build.compiler(), *flags, *out], check=True)
    evil.unlink()
    import hashlib

    (entry / "sha256").write_text(hashlib.sha256(kernel.library.read_bytes()).hexdigest())
    return entry


def test_planted_library_loads_from_a_private_folder(tmp_path):
    # the control: the plant below is a real one (loaded when the folder is ours and private)
    cache, marker = tmp_path / "own", tmp_path / "loaded"
    _plant(cache, marker)
    assert _load_in_child(cache).returncode == 0
    assert marker.exists()


def test_cache_writable_by_others_is_refused(tmp_path):
    cache, marker = tmp_path / "shared", tmp_path / "loaded"
    _plant(cache, marker)
    cache.chmod(0o777)
    child = _load_in_child(cache)
    assert child.returncode == 3 and "writable by other users" in child.stdout
    assert "chmod 700" in child.stdout
    assert not marker.exists()
    with pytest.raises(UnsafeCacheError, match="writable by other users"):
        build_c_kernel([x], [x + 1], name="planted", cache_dir=cache)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_cache_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    # the default location: $XDG_CACHE_HOME/symgrad/c, with symgrad/ owned by uid 65534
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache, marker = tmp_path / "symgrad" / "c", tmp_path / "loaded"
    _plant(cache, marker)
    os.chown(tmp_path / "symgrad", 65534, 65534)
    child = _load_in_child(None, {"XDG_CACHE_HOME": str(tmp_path)})
    assert child.returncode == 3 and "belongs to user id 65534" in child.stdout
    assert not marker.exists()
    os.chown(tmp_path / "symgrad", 0, 0)
    os.chown(cache, 65534, 65534)  # and the c/ folder itself
    child = _load_in_child(None, {"XDG_CACHE_HOME": str(tmp_path)})
    assert child.returncode == 3 and "belongs to user id 65534" in child.stdout
    assert not marker.exists()
    with pytest.raises(UnsafeCacheError, match="belongs to user id 65534"):
        build_c_kernel([x], [x + 1], name="planted")


def test_cache_is_created_private(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    kernel = build_c_kernel([x], [x * 3], name="private")
    for folder in (tmp_path / "home-cache" / "symgrad", tmp_path / "home-cache" / "symgrad" / "c"):
        assert folder.stat().st_mode & 0o777 == 0o700
    assert kernel.library.parent.parent == tmp_path / "home-cache" / "symgrad" / "c"


def test_symlinked_cache_to_a_foreign_folder_is_refused(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o777)
    foreign.chmod(0o777)
    link = tmp_path / "link"
    link.symlink_to(foreign)
    with pytest.raises(UnsafeCacheError):
        build_c_kernel([x], [x + 2], name="linked", cache_dir=link)


def test_hung_compiler_times_out_and_is_killed(tmp_path, monkeypatch, fresh_compiler):
    pidfile = tmp_path / "pid"
    cc = _fake_cc(tmp_path, f'echo $$ > "{pidfile}"; exec sleep 60')
    monkeypatch.setenv("CC", str(cc))
    cache = tmp_path / "cache"
    start = time.monotonic()
    with pytest.raises(CompilerError, match=r"did not finish within 1 s.*timeout="):
        build_c_kernel([x], [x - 5], name="hung", cache_dir=cache, timeout=1)
    assert time.monotonic() - start < 20
    pid = int(pidfile.read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the compiler (its whole process group) was stopped
    assert [p.name for p in cache.iterdir()] == []  # no entry, no temporary folder


def test_timeout_from_the_environment(tmp_path, monkeypatch, fresh_compiler):
    cc = _fake_cc(tmp_path, "exec sleep 60")
    monkeypatch.setenv("CC", str(cc))
    monkeypatch.setenv("SYMGRAD_CC_TIMEOUT", "0.5")
    with pytest.raises(CompilerError, match=r"within 0\.5 s"):
        build_c_kernel([x], [x - 6], name="hung_env", cache_dir=tmp_path / "cache")
    monkeypatch.setenv("SYMGRAD_CC_TIMEOUT", "soon")
    with pytest.raises(CompilerError, match="positive number of seconds"):
        build_c_kernel([x], [x - 6], name="hung_env", cache_dir=tmp_path / "cache")


def test_failing_compiler_is_a_typed_error(tmp_path, monkeypatch, fresh_compiler):
    cc = _fake_cc(tmp_path, 'echo "fake: internal compiler error" >&2; exit 4')
    monkeypatch.setenv("CC", str(cc))
    with pytest.raises(CompilerError, match=r"(?s)exit status 4.*internal compiler error.*\$CC"):
        build_c_kernel([x], [x - 7], name="broken", cache_dir=tmp_path / "cache")


_BUILD_SQUARE = """
import sys
import sympy as sp
from symgrad.codegen.c import build_c_kernel
x = sp.Symbol("x")
print(build_c_kernel([x], [x**2 - 1], name="truncated", cache_dir=sys.argv[1]).library)
"""


def test_truncated_library_is_rebuilt(tmp_path):
    # built by another process (a library this process has mapped must not be truncated)
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", _BUILD_SQUARE, str(cache)]
    lib = Path(
        subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.strip()
    )
    data = lib.read_bytes()
    lib.write_bytes(data[: len(data) // 3])
    kernel = build_c_kernel([x], [x**2 - 1], name="truncated", cache_dir=cache)
    assert kernel.library == lib and lib.read_bytes() == data
    assert kernel(np.array([3.0])).tolist() == [[8.0]]
    (lib.parent / "sha256").unlink()  # a missing checksum: rebuilt too
    again = build_c_kernel([x], [x**2 - 1], name="truncated", cache_dir=cache)
    assert (lib.parent / "sha256").exists() and again(2.0)[0] == 3.0


def test_compiler_identity_is_part_of_the_key(tmp_path, monkeypatch, fresh_compiler):
    cache = tmp_path / "cache"
    first = build_c_kernel([x], [x + 9], name="ident", cache_dir=cache).library
    c_build.compiler.cache_clear()
    c_build.target.cache_clear()
    monkeypatch.setenv("CC", str(_fake_cc(tmp_path, ":")))
    second = build_c_kernel([x], [x + 9], name="ident", cache_dir=cache).library
    assert first != second and first.exists() and second.exists()


def test_least_recently_used_entries_are_evicted(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    libs = []
    for k in range(3):
        libs.append(build_c_kernel([x], [x + 10 + k], name=f"lru{k}", cache_dir=cache).library)
        os.utime(libs[-1].parent, (time.time() - 100 + k, time.time() - 100 + k))
    size = sum(f.stat().st_size for f in libs[0].parent.iterdir())
    monkeypatch.setattr(c_build, "CACHE_BYTES", int(2.5 * size))
    build_c_kernel([x], [x + 20], name="lru3", cache_dir=cache)
    left = sorted(p.name.split("_")[0] for p in cache.iterdir())
    assert left == ["lru2", "lru3"]


_KILLED_BUILD = """
import sys
import sympy as sp
from symgrad.codegen.c import build_c_kernel
x = sp.Symbol("x")
build_c_kernel([x], [x + 11], name="killed", cache_dir=sys.argv[1])
"""


def test_kill_mid_build_leaves_no_entry_and_is_cleaned(tmp_path, monkeypatch, fresh_compiler):
    pidfile = tmp_path / "pid"
    cc = _fake_cc(tmp_path, f'echo $$ > "{pidfile}"; sleep 60')
    cache = tmp_path / "cache"
    env = {**os.environ, "CC": str(cc), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_BUILD, str(cache)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        if pidfile.exists():  # the orphaned compiler of the killed build
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    names = [p.name for p in cache.iterdir()]
    assert len(names) == 1 and names[0].startswith("tmp-")  # no entry is visible
    kernel = build_c_kernel([x], [x + 11], name="killed", cache_dir=cache)
    assert kernel(1.0).tolist() == [12.0]
    assert [p.name for p in cache.iterdir()] == [kernel.library.parent.name]


def test_lambdify_and_value_and_grad_forward_the_compiler_options(
    tmp_path, monkeypatch, fresh_compiler
) -> None:
    # cache_dir= and timeout= reach the C build: the library lands in the folder given, and a
    # compiler that cannot finish in the time given is a CompilerError
    from symgrad import lambdify, value_and_grad
    from symgrad.codegen import c as native
    from symgrad.errors import OptionError

    if not native.c_available():
        pytest.skip("no C compiler")
    x = sp.Symbol("x")
    folder = tmp_path / "cache"
    f = lambdify(sp.sin(x) + x**2, [x], backend="c", cache_dir=folder, timeout=120)
    assert float(f(2.0)) == pytest.approx(math.sin(2.0) + 4.0, rel=1e-14)
    assert any(folder.rglob("*.so")), "the library was not built in cache_dir"
    vg = value_and_grad(sp.cos(x) * x, x, backend="c", cache_dir=folder)
    want = (0.5 * math.cos(0.5), math.cos(0.5) - 0.5 * math.sin(0.5))
    assert [float(v) for v in vg(0.5)] == pytest.approx(want, rel=1e-14)
    with pytest.raises(OptionError, match="backend='c'"):
        lambdify(x, [x], cache_dir=folder)  # the NumPy backend has no compiler
    with pytest.raises(OptionError, match="positive"):
        value_and_grad(x**2, x, backend="c", timeout=-1)
    monkeypatch.setenv("CC", str(_fake_cc(tmp_path, "exec sleep 60")))
    started = time.monotonic()
    with pytest.raises(CompilerError, match="did not finish"):
        value_and_grad(x**3 - 7, x, backend="c", cache_dir=tmp_path / "other", timeout=1)
    assert time.monotonic() - started < 30
