"""The ``symgrad`` command, end to end.

Two layers: a few runs of the *installed* console script (a throw-away venv in a temp dir with
an editable install of this repo; all runs start at once so the file stays fast), and
in-process runs of :func:`symgrad.cli.main` for every subcommand, its ``--help`` and bad input.
Expected results come from ``sympy.diff``, the lecture's published numbers and hand algebra.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import sympy as sp

from symgrad import cli
from symgrad.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXPR = "3*x**2 - 4*x + 5"

# name -> (arguments, standard input); run through the installed `symgrad` in parallel
RUNS = {
    "diff": (["diff", EXPR, "--wrt", "x"], None),
    "claimed_wrong": (["check", EXPR, "--wrt", "x", "--claimed", "6*x - 3", "--at", "x=3"], None),
    "claimed_right": (["check", EXPR, "--wrt", "x", "--claimed", "6*x - 4", "--at", "x=3"], None),
    "unsafe": (["diff", "__import__('os').system('echo pwned')"], None),
    "stdin": (["diff", "-", "--format", "json"], "sin(x)*exp(y)"),
}


def _make_venv(tmp: Path) -> list[str] | None:
    """An isolated venv with ``pip install -e`` of the repo; its ``symgrad`` script, or None."""
    env_dir = tmp / "venv"
    try:
        venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
        bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
        python = bindir / ("python.exe" if os.name == "nt" else "python")
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
             "--no-deps", "--no-build-isolation", "--no-index", "-e", str(ROOT)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        script = bindir / ("symgrad.exe" if os.name == "nt" else "symgrad")
        return [str(script)] if script.exists() else None
    except (OSError, subprocess.SubprocessError):
        return None


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> dict:
    """Results of RUNS through the installed console script (fallback: ``python -m symgrad``)."""
    command = _make_venv(tmp_path_factory.mktemp("cli"))
    env = {**os.environ}
    via = "console script"
    if command is None:  # no venv/pip available here: the module entry point instead
        command, via = [sys.executable, "-m", "symgrad"], "FALLBACK python -m symgrad"
        env["PYTHONPATH"] = str(ROOT)
    procs = {
        name: subprocess.Popen(
            [*command, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path_factory.getbasetemp(),
            env=env,
        )
        for name, (argv, _) in RUNS.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(RUNS[name][1], timeout=120)
        results[name] = (proc.returncode, out, err)
    results["via"] = via
    return results


@pytest.mark.slow  # the session's venv + pip install -e take ~5-10 s once
def test_entry_point_is_the_installed_script(installed):
    # Says so when the fallback was used, so a broken packaging setup is not silent.
    assert installed["via"] == "console script"


@pytest.mark.slow  # the session's venv + pip install -e take ~5-10 s once
def test_installed_diff_prints_the_derivative(installed):
    code, out, err = installed["diff"]
    assert (code, out, err) == (0, "6*x - 4\n", "")
    x = sp.Symbol("x")
    assert sp.sympify(out) == sp.diff(3 * x**2 - 4 * x + 5, x)  # reference: sympy.diff


@pytest.mark.slow  # the session's venv + pip install -e take ~5-10 s once
def test_installed_check_claimed_wrong_and_right(installed):
    code, out, err = installed["claimed_wrong"]
    assert code == 1
    assert "FAILED for x" in out and "NO" in out
    assert "15" in out and "14" in out  # claimed 6*3 - 3 = 15, true 6*3 - 4 = 14
    assert (
        err
        == "symgrad: check failed: the gradient is wrong for x; the exact one is df/dx = 6*x - 4\n"
    )
    code, out, err = installed["claimed_right"]
    assert code == 0 and "passed" in out and err == ""


@pytest.mark.slow  # the session's venv + pip install -e take ~5-10 s once
def test_installed_bad_input_is_one_message_without_traceback(installed):
    code, out, err = installed["unsafe"]
    assert code == 2 and out == ""  # nothing ran: 'echo pwned' would print to stdout
    assert err.startswith("symgrad: error: names may not start with '__'")
    assert "Traceback" not in err and len(err.splitlines()) <= 3  # message + caret picture


@pytest.mark.slow  # the session's venv + pip install -e take ~5-10 s once
def test_installed_stdin_and_help(installed):
    code, out, err = installed["stdin"]
    assert code == 0, err
    data = json.loads(out)
    x, y = sp.symbols("x y")
    f = sp.sin(x) * sp.exp(y)
    assert data["wrt"] == ["x", "y"]
    assert {k: sp.sympify(v) for k, v in data["gradient"].items()} == {
        "x": sp.diff(f, x),
        "y": sp.diff(f, y),
    }


def test_python_dash_m_symgrad():
    proc = subprocess.run(
        [sys.executable, "-m", "symgrad", "diff", "x*y", "--wrt", "y"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "x\n", "")


# --------------------------------------------------------------------------- in process


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_diff_formats(capsys):
    x, y = sp.symbols("x y")
    f = sp.sin(x * y) + x**3
    code, out, _ = run(capsys, "diff", "sin(x*y) + x^3", "--wrt", "x,y")
    assert code == 0
    lines = out.splitlines()
    assert [ln.split(" = ")[0] for ln in lines] == ["df/dx", "df/dy"]
    assert sp.sympify(lines[0].split(" = ")[1]) == sp.diff(f, x)
    code, out, _ = run(capsys, "diff", "sin(x*y)", "--wrt", "x", "--format", "latex")
    assert out.strip() == sp.latex(sp.diff(sp.sin(x * y), x))
    code, out, _ = run(capsys, "diff", "x**2*y", "--format", "markdown")
    assert r"$$ \frac{\partial f}{\partial y} = x^{2} $$" in out
    code, out, _ = run(capsys, "diff", "x**2*y", "--format", "json", "--no-simplify")
    data = json.loads(out)
    assert out == json.dumps(data, sort_keys=True, indent=2) + "\n"  # stable for scripts
    assert data == {
        "expression": "x**2*y",
        "wrt": ["x", "y"],
        "gradient": {"x": "2*x*y", "y": "x**2"},
        "latex": {"x": "2 x y", "y": "x^{2}"},
    }


def test_diff_simplify_option(capsys):
    # d/dx of x*(sin(x)^2 + cos(x)^2) is sin(x)^2 + cos(x)^2 = 1; only sympy.simplify sees it
    f = "x*(sin(x)^2 + cos(x)^2)"
    _, simplified, _ = run(capsys, "diff", f, "--wrt", "x")
    _, canonical, _ = run(capsys, "diff", f, "--wrt", "x", "--no-simplify")
    assert simplified == "1\n"
    assert canonical != "1\n" and sp.simplify(sp.sympify(canonical)) == 1


def test_derive_lecture_numbers(capsys):
    code, out, _ = run(capsys, "derive", "(a*b + c)*f", "--at", "a=2,b=-3", "--at", "c=10,f=-2")
    assert code == 0
    grads = out.split("Gradients")[1]
    # published in the micrograd lecture: dL/da = 6, dL/db = -4, dL/dc = -2, dL/df = 4
    for name, value in {"a": 6, "b": -4, "c": -2, "f": 4}.items():
        line = next(ln for ln in grads.splitlines() if f"/d{name} = " in ln)
        assert line.endswith(f"= {value}")
    code, out, _ = run(capsys, "derive", "x*y", "--wrt", "x", "--format", "latex")
    assert out.startswith(r"\begin{align*}")
    code, out, _ = run(capsys, "derive", "x*y", "--format", "markdown", "--max-steps", "1")
    assert out.startswith("**Derivation of") and "more steps not shown" in out


def test_check_symbolic_gradient(capsys):
    code, out, _ = run(capsys, "check", "x**3*sin(y)", "--at", "x=1,y=2")
    assert code == 0 and "passed" in out
    row = next(ln for ln in out.splitlines() if ln.startswith("x "))
    assert float(row.split()[1]) == pytest.approx(3 * sp.sin(2).evalf(), rel=1e-9)


def test_check_claimed_several_variables(capsys):
    claimed = "y + heaviside(x - y, 0), x + heaviside(y - x, 0)"
    ok = run(
        capsys, "check", "x*y + max(x, y)", "--wrt", "x,y", "--claimed", claimed, "--at", "x=2,y=5"
    )
    assert ok[0] == 0, ok
    code, out, err = run(
        capsys, "check", "x*y", "--wrt", "x,y", "--claimed", "y, y", "--at", "x=2,y=5"
    )
    assert code == 1 and "FAILED for y" in out and "wrong for y" in err
    # other symbols are held at their --at values
    code, out, _ = run(
        capsys, "check", "x**2*y", "--wrt", "x", "--claimed", "2*x*y", "--at", "x=2,y=5"
    )
    assert code == 0


def test_compile_prints_numpy_source(capsys):
    code, out, _ = run(capsys, "compile", "tanh(w*x + b)")
    assert code == 0 and "def symgrad_fn(" in out and "numpy.tanh" in out
    assert "['b', 'w', 'x']" in out
    code, out, _ = run(capsys, "compile", "x**2*y", "--wrt", "x")
    assert "further arguments (held fixed): y" in out and "def symgrad_fn(_a0=_MISSING, _a1" in out


def test_graph_needs_viz_or_draws(capsys, tmp_path):
    import importlib.util

    out_file = tmp_path / "g.dot"
    argv = ["graph", "(a*b + c)*f", "--at", "a=2,b=-3,c=10,f=-2", "-o", str(out_file)]
    code, _, err = run(capsys, *argv)
    if importlib.util.find_spec("symgrad.viz") is None:
        assert code == 1 and err.startswith("symgrad: error: drawing graphs needs")
        assert "pip install 'symgrad[viz]'" in err
    else:
        assert code == 0 and out_file.read_text().startswith("digraph")
    code, _, err = run(capsys, "graph", "x", "-o", str(tmp_path / "g.jpeg2000"))
    assert code == 2 and "cannot tell the format" in err


@pytest.fixture
def fake_draw_dot(monkeypatch):
    """A stand-in for symgrad.viz.draw_dot (another module) recording how it is called."""
    graphviz = pytest.importorskip("graphviz")
    calls = []

    def draw_dot(target, **kwargs):
        calls.append((target, kwargs))
        g = graphviz.Digraph()
        g.node("n", str(target))
        return g

    monkeypatch.setattr(cli, "_draw_dot", lambda: draw_dot)
    return calls


def test_graph_wiring_and_formats(capsys, tmp_path, fake_draw_dot):
    code, out, _ = run(
        capsys, "graph", "x*y", "--at", "x=2,y=3", "--backward", "-o", str(tmp_path / "g.gv")
    )
    assert code == 0 and out == f"wrote {tmp_path / 'g.gv'}\n"
    (target, kwargs) = fake_draw_dot[-1]
    x, y = sp.symbols("x y")
    assert target == x * y and kwargs == {"at": {x: 2.0, y: 3.0}, "backward": True}
    assert (tmp_path / "g.gv").read_text().startswith("digraph")
    if shutil.which("dot"):
        assert run(capsys, "graph", "x*y", "-o", str(tmp_path / "sub" / "g.svg"))[0] == 0
        assert "<svg" in (tmp_path / "sub" / "g.svg").read_text()


def test_graph_without_dot_program(capsys, tmp_path, fake_draw_dot, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' on PATH
    code, out, err = run(capsys, "graph", "x*y", "-o", str(tmp_path / "g.png"))
    assert code == 1 and out == ""
    assert err.startswith("symgrad: error: rendering needs the Graphviz program 'dot'")
    assert "-o graph.dot" in err  # says what works without it


def test_check_edge_cases(capsys):
    # a --wrt variable that the formula does not contain has gradient 0, but needs a value
    code, _, err = run(capsys, "check", "x", "--wrt", "z", "--at", "x=1")
    assert code == 2 and "no value for z" in err
    assert run(capsys, "check", "x", "--wrt", "z", "--at", "x=1,z=2")[0] == 0
    # outside the domain: a failed check that says so, without RuntimeWarnings
    code, out, err = run(capsys, "check", "log(x)", "--at", "x=-1")
    assert code == 1 and "nan" in out and "not finite at this point" in err
    code, _, err = run(capsys, "check", "x", "--at", "x=1", "--rtol", "-1")
    assert code == 2 and "--rtol: must be a finite number >= 0" in err
    code, out, _ = run(capsys, "check", "x**2", "--at", "x=1", "--atol", "0.5", "--rtol", "0")
    assert code == 0 and "rtol=0, atol=0.5" in out


def test_demo_runs_the_lecture(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path))
    assert code == 0
    assert "f'(x)  = 6*x - 4" in out and "h = 0.0001: 14.000300" in out
    assert "dL/da = dL/de * b = b*f = 6" in out
    assert "o.data = 0.7071" in out and "d o / d x1 = -1.5000" in out
    assert "def symgrad_fn(" in out and "passed" in out


def test_stdin_dash(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("x**3\n"))
    assert run(capsys, "diff", "-")[:2] == (0, "3*x**2\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("  \n"))
    code, _, err = run(capsys, "diff", "-")
    assert code == 2 and "standard input was empty" in err


@pytest.mark.parametrize("command", ["", "diff", "derive", "check", "compile", "graph", "demo"])
def test_help_has_examples(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([*command.split(), "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "symgrad " in out.split("examples:")[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["diff", "__import__('os')"], "names may not start with '__'"),
        (["diff", "x.__class__"], "(at position 1)"),
        (["diff", "open('f')"], "open"),
        (["diff", ""], "empty expression"),
        (["diff", "x +"], ""),
        (["diff", "x", "--format", "yaml"], "invalid choice: 'yaml'"),
        (["diff", "x", "--wrt", "pi"], "'pi' is not a symbol name"),
        (["diff", "x", "--wrt", "x,,y"], "empty symbol name"),
        (["diff", "x", "--wrt", "__x"], "invalid symbol name '__x'"),
        (["diff", "x", "--wrt", "x,x"], "'x' is given twice"),
        (["diff", "3"], "no symbols"),
        (["diff"], "required: EXPR"),
        ([], "required: COMMAND"),
        (["frobnicate"], "invalid choice"),
        (["check", "x"], "required: --at"),
        (["check", "x", "--at", "x"], "expected name=number"),
        (["check", "x", "--at", "x=abc"], "must be a number"),
        (["check", "x", "--at", "x=1e999"], "must be finite"),
        (["check", "x", "--at", "x=nan"], "must be finite"),
        (["check", "x", "--at", "x=1,x=2"], "x is given twice"),
        (["check", "x", "--at", "x=__import__('os')"], "must be a number"),
        (["check", "x*y", "--at", "x=1"], "no value for y"),
        (["check", "x", "--at", "x=1,z=2"], "does not contain"),
        (["check", "x", "--claimed", "1", "--at", "x=1"], "--claimed needs --wrt"),
        (
            ["check", "x*y", "--wrt", "x,y", "--claimed", "y", "--at", "x=1,y=1"],
            "1 expression(s) for 2",
        ),
        (["check", "x", "--wrt", "x", "--claimed", "eval(1)", "--at", "x=1"], "--claimed (d/dx)"),
        (["derive", "x", "--at", "y=1"], "does not contain"),
        (["derive", "x", "--max-steps", "two"], "invalid int value"),
    ],
)
def test_bad_input_exits_2_with_a_message(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("symgrad: error: ") and message in err
    assert "Traceback" not in err
