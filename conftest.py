"""Test-session settings shared by tests/, the doctests in symgrad/ and the docs' examples."""

from __future__ import annotations

import importlib.util

import pytest

# Modules and pages that need an optional engine (the extras jax, torch, dask) are not collected
# when it is missing: their features raise BackendUnavailableError instead.
_OPTIONAL = {
    "jax": ["symgrad/jax.py", "symgrad/codegen/jax.py", "symgrad/matrix/jax.py"],
    "torch": ["symgrad/torch.py"],
    "dask": ["symgrad/dask.py"],
}
collect_ignore = [
    path
    for package, paths in _OPTIONAL.items()
    if importlib.util.find_spec(package) is None
    for path in paths
]
if any(importlib.util.find_spec(p) is None for p in (*_OPTIONAL, "distributed")):
    collect_ignore.append("docs/interop.md")


@pytest.fixture(scope="session", autouse=True)
def _private_kernel_cache(tmp_path_factory: pytest.TempPathFactory):
    # The C backend caches compiled kernels under $XDG_CACHE_HOME/symgrad/c; a test run keeps
    # its own, so it neither writes into the user's cache nor passes thanks to stale kernels.
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    yield
    mp.undo()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stress", action="store_true", help="also run the minutes-long tests marked 'stress'"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--stress"):
        return
    skip = pytest.mark.skip(reason="a stress test: run with --stress")
    for item in items:
        if "stress" in item.keywords:
            item.add_marker(skip)
