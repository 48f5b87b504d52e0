"""The layering of docs/ARCHITECTURE.md, the public surface, and the no-eval rule, kept true."""

from __future__ import annotations

import ast
from pathlib import Path

import symgrad
from symgrad.errors import BackendUnavailableError

PACKAGE = Path(symgrad.__file__).parent

# module -> layer; a module may import only modules of a strictly lower layer (modules of one
# subpackage may also import each other). A new module must be placed here on purpose.
LAYERS = {
    "errors": 0,
    "_version": 0,
    "files": 1,
    "markup": 1,
    "graph": 1,
    "functions": 1,
    "construct": 2,
    "inputs": 2,
    "parse": 2,
    "rules": 3,
    "autodiff": 4,
    "codegen": 5,
    "derivation": 6,
    "numerical": 5,
    "check": 6,
    "value": 6,
    "torch": 6,
    "jax": 6,
    "dask": 6,
    "matrix": 7,
    "nn": 8,
    "cli": 9,
    "__main__": 10,
}
# the only places generated code is compiled
GENERATORS = {"codegen/compile.py", "codegen/jax.py", "matrix/codegen.py", "matrix/jax.py"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        top = rel.parts[0].removesuffix(".py")
        yield path, rel, top


def _imports(path: Path, rel: Path) -> set[str]:
    """Top-level symgrad modules imported by a file (relative or absolute imports)."""
    found = set()
    pkg_depth = len(rel.parts) - 1  # how deep the file sits below symgrad/
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1  # level 1 = the file's own package
                if up < pkg_depth:
                    continue  # an import inside the same subpackage
                names = [node.module] if node.module else [a.name for a in node.names]
                found.update(n.split(".")[0] for n in names)
            elif node.module and node.module.startswith("symgrad."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("symgrad."))
    return found


def test_every_module_is_placed_in_a_layer() -> None:
    unplaced = {top for _, rel, top in _modules() if top != "__init__" and top not in LAYERS}
    assert not unplaced, f"add these modules to LAYERS and docs/ARCHITECTURE.md: {unplaced}"


def test_no_module_imports_upward() -> None:
    bad = []
    for path, rel, top in _modules():
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            continue  # the facade re-exports everything
        for dep in _imports(path, rel):
            if dep != top and LAYERS[dep] >= LAYERS[top]:
                bad.append(f"{rel} imports {dep}")
    assert not bad, bad


def test_numerical_is_an_independent_oracle() -> None:
    assert _imports(PACKAGE / "numerical.py", Path("numerical.py")) == {"errors"}


def test_public_surface_is_pinned() -> None:
    assert sorted(symgrad.__all__) == sorted(
        [
            "CompiledFunction",
            "Derivation",
            "GradCheckReport",
            "SymgradError",
            "Value",
            "check_grad",
            "check_grad_fn",
            "derive",
            "draw_dot",
            "grad",
            "hessian",
            "jacobian",
            "lambdify",
            "matrix",
            "numerical",
            "parse",
            "relu",
            "sigmoid",
            "value_and_grad",
        ]
    )
    for name in symgrad.__all__:
        assert getattr(symgrad, name).__doc__, f"{name} has no docstring"


def test_only_the_code_generators_compile_code_and_nothing_sympifies() -> None:
    offenders = []
    for path, rel, _ in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = (
                fn.id
                if isinstance(fn, ast.Name)
                else fn.attr
                if isinstance(fn, ast.Attribute)
                else ""
            )
            compiles = name in {"eval", "exec", "compile"} and isinstance(fn, ast.Name)
            if compiles and rel.as_posix() not in GENERATORS:
                offenders.append(f"{rel}:{node.lineno} {name}")
            if name in {"sympify", "parse_expr", "S"}:
                offenders.append(f"{rel}:{node.lineno} {name}")
    assert not offenders, offenders


def test_every_public_name_has_a_docstring_with_an_example() -> None:
    import importlib
    import inspect

    missing = []
    for _path, rel, _ in _modules():
        if rel.name == "__main__.py":
            continue
        name = "symgrad." + ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        try:
            module = importlib.import_module(name)
        except BackendUnavailableError:
            # an optional engine is not installed (symgrad.dask without dask, as after the
            # README's test command alone); CI installs every engine and checks these too
            continue
        for public in getattr(module, "__all__", []):
            obj = getattr(module, public)
            if inspect.ismodule(obj) or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if inspect.getmodule(obj) is not module:
                continue  # a re-export; checked where it is defined
            if ">>>" not in (obj.__doc__ or ""):
                missing.append(f"{name}.{public}")
    assert not missing, f"public names without a >>> example: {missing}"
