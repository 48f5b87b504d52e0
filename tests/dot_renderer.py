"""The Graphviz ``dot`` program for tests (the convention of ``latex_renderers.py``).

Install it with ``.ci/install-graphviz.sh`` (Debian package ``graphviz``). Tests that need it
are skipped with the reason, unless ``SYMGRAD_REQUIRE_RENDERERS=1`` (set by CI), in which case
they fail, so the rendering path is always exercised there.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_dot() -> str:
    """The path of ``dot``; skips (or fails under SYMGRAD_REQUIRE_RENDERERS=1) without it."""
    try:
        import graphviz  # noqa: F401
    except ImportError:
        _missing("the Python package graphviz is not installed (pip install graphviz)")
    exe = shutil.which("dot")
    if exe is None:
        _missing("the Graphviz program dot is not installed (Debian package graphviz)")
    return exe


def _missing(reason: str):
    if os.environ.get("SYMGRAD_REQUIRE_RENDERERS") == "1":
        pytest.fail(f"{reason} (SYMGRAD_REQUIRE_RENDERERS=1; run .ci/install-graphviz.sh)")
    pytest.skip(f"{reason}; run .ci/install-graphviz.sh to install it")
