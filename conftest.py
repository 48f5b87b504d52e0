"""Test-session settings shared by tests/, the doctests in symgrad/ and the docs' examples."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_kernel_cache(tmp_path_factory: pytest.TempPathFactory):
    # The C backend caches compiled kernels under $XDG_CACHE_HOME/symgrad/c; a test run keeps
    # its own, so it neither writes into the user's cache nor passes thanks to stale kernels.
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    yield
    mp.undo()
