"""Without an optional engine installed, its feature says which extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# each snippet hides one package (a None entry in sys.modules makes its import fail)
CASES = {
    "jax": """
        import sympy as sp
        from symgrad import lambdify
        lambdify(sp.Symbol("x") ** 2, [sp.Symbol("x")], backend="jax")
    """,
    "torch": "import symgrad.torch",
    "dask": "import symgrad.dask",
}


@pytest.mark.parametrize("package", sorted(CASES))
def test_missing_engine_names_its_extra(package: str) -> None:
    body = textwrap.indent(textwrap.dedent(CASES[package]).strip(), "    ")
    code = "\n".join(
        [
            "import sys",
            f"sys.modules[{package!r}] = None",
            "from symgrad.errors import BackendUnavailableError",
            "try:",
            body,
            "except BackendUnavailableError as err:",
            "    print('raised:', err)",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "raised:" in done.stdout
    assert f'pip install -e ".[{package}]"' in done.stdout


def test_import_symgrad_loads_only_what_every_program_needs() -> None:
    # every `symgrad` command pays the import: optional engines, the matrix calculus, the
    # Graphviz drawing and the C target load on first use (benchmarks/bench_hardening.py)
    code = textwrap.dedent(
        """
        import sys
        import symgrad
        heavy = ("graphviz", "jax", "torch", "matplotlib", "scipy", "dask", "casadi",
                 "symengine", "symgrad.matrix", "symgrad.codegen.c", "symgrad.derivation.dot")
        # a package and its submodules; symgrad.codegen.c also covers c_build, c_source, ...
        print(sorted(m for m in sys.modules if any(m == h or m.startswith((h + ".", h + "_"))
                                                   for h in heavy)))
        from symgrad import *
        print(matrix.__name__, draw_dot.__module__, "matrix" in dir(symgrad))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded, lazy = done.stdout.splitlines()
    assert loaded == "[]"
    assert lazy == "symgrad.matrix symgrad.derivation.dot True"
