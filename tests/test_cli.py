"""The ``symgrad`` command, end to end.

Two layers: a few runs of the *installed* console script (the one the README's install put on
PATH; all runs start at once so the file stays fast), and
in-process runs of :func:`symgrad.cli.main` for every subcommand, its ``--help`` and bad input.
Expected results come from ``sympy.diff``, the lecture's published numbers and hand algebra.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

from symgrad import cli
from symgrad.cli import main
from tests.dot_renderer import require_dot

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


def _installed_script() -> str | None:
    """The ``symgrad`` console script that the README's install put beside this Python or on PATH.

    It counts only if it runs this checkout's code (the README installs with ``pip install -e``),
    so a stale install elsewhere cannot pass for it.
    """
    here = Path(sys.executable).parent
    script = shutil.which("symgrad", path=os.pathsep.join([str(here), os.environ.get("PATH", "")]))
    if script is None:
        return None
    proc = subprocess.run(
        [script, "--version"], capture_output=True, text=True, timeout=60, cwd=ROOT.parent
    )
    from symgrad import __version__

    return script if proc.returncode == 0 and __version__ in proc.stdout else None


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> dict:
    """Results of RUNS through the installed console script (all started at once).

    Skips when symgrad is not installed (run from a checkout); fails instead under
    ``SYMGRAD_REQUIRE_INSTALLED=1``, which CI sets after the README's install.
    """
    script = _installed_script()
    if script is None:
        reason = "no installed 'symgrad' script of this version (pip install -e . puts it on PATH)"
        if os.environ.get("SYMGRAD_REQUIRE_INSTALLED") == "1":
            pytest.fail(f"{reason} (SYMGRAD_REQUIRE_INSTALLED=1)")
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    procs = {
        name: subprocess.Popen(
            [script, *argv],
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
    results["script"] = script
    return results


def test_entry_point_is_the_installed_script(installed):
    # the script is a console-script wrapper calling symgrad.cli:main, not a copy of the module
    text = Path(installed["script"]).read_text(encoding="utf-8", errors="replace")
    assert "symgrad.cli" in text and "main" in text


def test_installed_diff_prints_the_derivative(installed):
    code, out, err = installed["diff"]
    assert (code, out, err) == (0, "6*x - 4\n", "")
    x = sp.Symbol("x")
    assert sp.sympify(out) == sp.diff(3 * x**2 - 4 * x + 5, x)  # reference: sympy.diff


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


def test_installed_bad_input_is_one_message_without_traceback(installed):
    code, out, err = installed["unsafe"]
    assert code == cli.EXIT_FORMULA and out == ""  # nothing ran: "echo pwned" would print
    assert err.startswith("symgrad: error: names may not start with '__'")
    assert "Traceback" not in err and len(err.splitlines()) <= 3  # message + caret picture


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
    if importlib.util.find_spec("graphviz") is None:
        assert code == cli.EXIT_MISSING_PROGRAM
        assert err.startswith("symgrad: error: drawing graphs needs")
        assert "pip install graphviz" in err
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


def test_graph_and_demo_touch_only_the_file_named(capsys, tmp_path):
    # graphviz's render(cleanup=True) used to overwrite and delete "neuron.gv" next to the output
    pytest.importorskip("graphviz")
    require_dot()
    mine = {"neuron.gv": "my notes", "g.gv": "my graph", "neuron.svg.tmp": "keep"}
    for name, text in mine.items():
        (tmp_path / name).write_text(text)
    assert run(capsys, "graph", "x*y", "-o", str(tmp_path / "g.svg"))[0] == 0
    assert run(capsys, "demo", "--out", str(tmp_path))[0] == 0
    for name, text in mine.items():
        assert (tmp_path / name).read_text() == text, name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*mine, "g.svg", "neuron.svg"])
    assert "<svg" in (tmp_path / "neuron.svg").read_text()


def test_graph_without_dot_program(capsys, tmp_path, fake_draw_dot, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' on PATH
    code, out, err = run(capsys, "graph", "x*y", "-o", str(tmp_path / "g.png"))
    assert code == cli.EXIT_MISSING_PROGRAM and out == ""
    assert err.startswith("symgrad: error: rendering needs the Graphviz program 'dot'")
    assert "-o graph.dot" in err  # says what works without it


def test_check_edge_cases(capsys):
    # a --wrt variable that the formula does not contain has gradient 0, but needs a value
    code, _, err = run(capsys, "check", "x", "--wrt", "z", "--at", "x=1")
    assert code == 2 and "no value for z" in err
    assert run(capsys, "check", "x", "--wrt", "z", "--at", "x=1,z=2")[0] == 0
    # outside the domain: a domain error that says so (the table is printed), no warnings
    code, out, err = run(capsys, "check", "log(x)", "--at", "x=-1")
    assert code == cli.EXIT_DOMAIN and "nan" in out
    assert err == (
        "symgrad: error: the formula or its gradient is not finite at x=-1 (nan or inf for x); "
        "choose a point inside the domain\n"
    )
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
    assert code == cli.EXIT_FORMULA and "standard input was empty" in err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x\xff\xfe")))
    code, _, err = run(capsys, "diff", "-")
    assert code == cli.EXIT_FORMULA and "not UTF-8" in err


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
        (["diff", "x", "--format", "yaml"], "invalid choice: 'yaml'"),
        (["diff", "x", "--wrt", "pi"], "'pi' is not a symbol name"),
        (["diff", "x", "--wrt", "x,,y"], "empty symbol name"),
        (["diff", "x", "--wrt", "__x"], "invalid symbol name '__x'"),
        (["diff", "x", "--wrt", "x,x"], "'x' is given twice"),
        (["diff", "3"], "no symbols"),
        (["diff"], "required: EXPR"),
        (["frobnicate"], "invalid choice"),
        (["check", "x"], "required: --at"),
        (["check", "x", "--at", "x"], "expected name=number"),
        (["check", "x", "--at", "x=abc"], "must be a number"),
        (["check", "x", "--at", "x=1e999"], "must be finite"),
        (["check", "x", "--at", "x=nan"], "must be finite"),
        (["check", "x", "--at", "x=1,x=2"], "x is given twice"),
        (["check", "x", "--at", "x=__import__('os')"], "must be a number"),
        (["check", "x*y", "--at", "x=1"], "no value for y"),
        (["check", "x", "--claimed", "1", "--at", "x=1"], "--claimed needs --wrt"),
        (
            ["check", "x*y", "--wrt", "x,y", "--claimed", "y", "--at", "x=1,y=1"],
            "1 expression(s) for 2",
        ),
        (["derive", "x", "--max-steps", "two"], "invalid int value"),
        (["graph", "x", "-o", "-", "-T", "png", "--format", "json"], "cannot hold a png"),
    ],
)
def test_bad_command_lines_exit_2_with_a_message(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == cli.EXIT_USAGE and out == ""
    assert err.startswith("symgrad: error: ") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["diff", "__import__('os')"], "names may not start with '__'"),
        (["diff", "x.__class__"], "(at position 1)"),
        (["diff", "open('f')"], "open"),
        (["diff", ""], "empty expression"),
        (["diff", "x +"], ""),
        (["check", "x", "--wrt", "x", "--claimed", "eval(1)", "--at", "x=1"], "--claimed (d/dx)"),
    ],
)
def test_bad_formulas_exit_3_with_a_message(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == cli.EXIT_FORMULA and out == ""
    assert err.startswith("symgrad: error: ") and message in err
    assert "Traceback" not in err


def test_exit_codes_are_distinct_and_documented():
    codes = [v for k, v in vars(cli).items() if k.startswith("EXIT_") and isinstance(v, int)]
    assert len(codes) == len(set(codes)) == len(cli.EXIT_CODES)
    doc = (ROOT / "docs" / "cli.md").read_text()
    for code in cli.EXIT_CODES:
        assert f"\n| {code} |" in doc, f"exit code {code} is not in docs/cli.md"
    helptext = cli.build_parser().format_help()
    assert all(f"{code} " in helptext for code in cli.EXIT_CODES if code != 141)


def test_bare_symgrad_prints_help(capsys):
    code, out, err = run(capsys)
    assert code == 0 and err == ""
    assert out.startswith("usage: symgrad") and "examples:" in out and "diff" in out


@pytest.mark.parametrize("expr", ["log(x)", "1/x", "x**0.5", "sqrt(x)", "x**-2"])
def test_check_outside_the_domain_is_a_domain_error(capsys, expr):
    code, out, err = run(capsys, "check", expr, "--at", "x=0")
    assert code == cli.EXIT_DOMAIN, err
    assert err.startswith("symgrad: error: ") and err.endswith("choose a point inside the domain\n")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    code, out, err = run(capsys, "check", expr, "--wrt", "x", "--claimed", "1", "--at", "x=0")
    assert code == cli.EXIT_DOMAIN and len(err.splitlines()) == 1
    code, out, err = run(capsys, "check", expr, "--at", "x=0", "--format", "json")
    assert code == cli.EXIT_DOMAIN
    if out:  # the table could be computed: strict JSON, inf and nan are null
        data = json.loads(out)
        assert data["ok"] is False
        assert None in (data["variables"][0]["symbolic"], data["variables"][0]["numerical"])


def test_unknown_names_warn_and_are_ignored(capsys):
    code, out, err = run(capsys, "check", "x**2", "--at", "x=1,z=2")
    assert code == 0 and "passed" in out
    assert err == (
        "symgrad: warning: --at gives a value for z, which the formula does not contain "
        "(its symbols: x); ignored\n"
    )
    code, out, err = run(capsys, "derive", "x**2", "--at", "x=3,y=1")
    assert code == 0 and "= 6" in out and "warning: --at gives a value for y" in err
    code, out, err = run(capsys, "diff", "x**2", "--wrt", "x,q")
    assert code == 0 and out == "df/dx = 2*x\ndf/dq = 0\n"
    assert "warning: --wrt names q, which the formula does not contain" in err


def test_every_subcommand_speaks_json(capsys, tmp_path):
    x, y = sp.symbols("x y")
    code, out, _ = run(capsys, "derive", "x*y + x", "--at", "x=2,y=3", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["wrt"] == ["x", "y"] and data["steps_total"] == len(data["steps"])
    # reference: sympy.diff, evaluated by hand at x=2, y=3
    assert {k: sp.sympify(v) for k, v in data["gradient"].items()} == {"x": y + 1, "y": x}
    assert data["gradient_values"] == {"x": 4.0, "y": 2.0}
    code, out, _ = run(capsys, "check", "x*y", "--at", "x=2,y=3", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True
    assert {v["name"]: v["symbolic"] for v in data["variables"]} == {"x": 3.0, "y": 2.0}
    code, out, _ = run(
        capsys, "check", "x*y", "--wrt", "x", "--claimed", "2*y", "--at", "x=2,y=3",
        "--format", "json",
    )  # fmt: skip
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["claimed"] == {"x": "2*y"}
    code, out, _ = run(capsys, "compile", "x**2*y", "--wrt", "x", "--format", "json")
    data = json.loads(out)
    assert data["further_arguments"] == ["y"] and "def symgrad_fn(" in data["source"]
    code, out, _ = run(capsys, "graph", "x*y", "-o", str(tmp_path / "g.dot"), "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["format"] == "dot"
    assert data["bytes"] == len((tmp_path / "g.dot").read_bytes())
    code, out, _ = run(capsys, "graph", "x*y", "-o", "-", "--format", "json")
    assert json.loads(out)["graph"].startswith("digraph")


def test_graph_to_standard_output(capsys):
    code, out, err = run(capsys, "graph", "x*y + x", "-o", "-")
    assert code == 0 and err == "" and out.startswith("digraph") and out.rstrip().endswith("}")
    if shutil.which("dot"):
        code, out, _ = run(capsys, "graph", "x*y", "-o", "-", "-T", "svg")
        assert code == 0 and "<svg" in out


def test_graph_output_places_that_cannot_work(capsys, tmp_path):
    (tmp_path / "plain").write_text("a regular file")
    (tmp_path / "folder.svg").mkdir()
    for output, message in [
        (tmp_path / "folder.svg", "it is a folder"),
        (tmp_path / "plain" / "g.dot", "is a file, not a folder"),
        (tmp_path / "plain" / "deeper" / "g.dot", "is a file, not a folder"),
        (Path("/proc/symgrad-test.dot"), "cannot write"),
        (Path("/proc/self/symgrad/g.dot"), "cannot write"),
    ]:
        code, out, err = run(capsys, "graph", "x*y", "-o", str(output))
        assert code == cli.EXIT_FILE, (output, err)
        assert err.startswith("symgrad: error: ") and message in err
        assert len(err.splitlines()) == 1 and out == ""
    assert (tmp_path / "plain").read_text() == "a regular file"
    assert list((tmp_path / "folder.svg").iterdir()) == []


def test_graph_leaves_other_files_alone(capsys, tmp_path):
    # the output replaces only the named file; a .gv beside it survives
    (tmp_path / "g.gv").write_text("keep me")
    if shutil.which("dot"):
        assert run(capsys, "graph", "x*y", "-o", str(tmp_path / "g.svg"))[0] == 0
    assert run(capsys, "graph", "x*y", "-o", str(tmp_path / "g.dot"))[0] == 0
    assert (tmp_path / "g.gv").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["g.gv", "g.dot"] + (["g.svg"] if shutil.which("dot") else [])
    )


def test_graph_too_large_speaks_cli(capsys):
    terms = " + ".join(f"sin(x{i})*y{i}" for i in range(40))
    code, _, err = run(capsys, "graph", terms, "-o", "-", "--max-nodes", "20")
    assert code == cli.EXIT_TOO_LARGE
    assert "--max-nodes" in err and "--collapse" in err and "max_nodes=" not in err
    code, out, _ = run(capsys, "graph", terms, "-o", "-", "--depth", "2")
    assert code == 0 and out.startswith("digraph")


def test_demo_out_must_be_a_folder(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "demo", "--out", str(tmp_path / "file"))
    assert code == cli.EXIT_FILE and "--out" in err and "it is a file" in err
    assert (tmp_path / "file").read_text() == "x"


def _symgrad_process(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "symgrad", *argv],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, **kwargs,
    )  # fmt: skip


def test_piping_into_head_is_quiet():
    # the reader closes the pipe after one line: no BrokenPipeError traceback, exit 141
    terms = " + ".join(f"tanh(w{i}*x{i} + b{i})" for i in range(400))  # ~130 KB of module
    proc = _symgrad_process(
        "compile", terms, "--standalone", stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == cli.EXIT_BROKEN_PIPE
    assert err == ""


def test_stdin_is_read_only_up_to_the_limit():
    # an endless standard input: symgrad reads the limit plus one byte and stops
    proc = _symgrad_process(
        "diff", "-", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    written = 0
    chunk = b"x+" * 4096
    try:
        while written < 50 * cli.STDIN_LIMIT:
            proc.stdin.write(chunk)
            written += len(chunk)
    except BrokenPipeError:
        pass  # symgrad stopped reading and exited, as it should
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.wait(timeout=120) == cli.EXIT_FORMULA
    assert b"longer than 100000 bytes" in err
    assert written < 50 * cli.STDIN_LIMIT  # it did not read everything


def _subcommands() -> dict:
    parser = cli.build_parser()
    (subs,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subs.choices)


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_subcommand_takes_format_json(command):
    (fmt,) = (a for a in _subcommands()[command]._actions if "--format" in a.option_strings)
    assert "json" in fmt.choices


def test_demo_json_is_the_only_output_and_matches_the_lecture(capsys, tmp_path):
    pytest.importorskip("graphviz")
    require_dot()
    code, out, err = run(capsys, "demo", "--out", str(tmp_path), "--format", "json")
    assert code == 0 and err == ""
    data = json.loads(out)  # standard output is one JSON document, no section text
    f = lambda t: 3 * t**2 - 4 * t + 5  # noqa: E731
    h = data["derivative"]["h"]
    assert data["derivative"]["exact"] == 6 * 3 - 4
    assert data["derivative"]["numerical"] == pytest.approx((f(3 + h) - f(3)) / h, rel=1e-12)
    # the lecture's neuron: o = tanh(n) = 0.7071, do/dx1 = -1.5, do/dw1 = 1, do/dx2 = 0.5, ...
    neuron = data["neuron"]
    assert neuron["value"] == pytest.approx(0.7071, abs=1e-4)
    want = {"x1": -1.5, "w1": 1.0, "x2": 0.5, "w2": 0.0, "b": 0.5}
    assert neuron["gradient_values"] == pytest.approx(want, abs=1e-12)
    assert data["compiled"]["gradient"] == pytest.approx(want, abs=1e-12)
    assert data["compiled"]["value"] == pytest.approx(neuron["value"], rel=1e-15)
    assert data["compiled"]["check"]["ok"] is True and data["ok"] is True
    steps = data["backward_pass"]
    assert steps["gradient_values"] == {"a": 6.0, "b": -4.0, "c": -2.0, "f": 4.0}
    assert data["picture"] == {"file": str(tmp_path / "neuron.svg"), "skipped": None}
    assert "<svg" in (tmp_path / "neuron.svg").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["neuron.svg"]


def test_explore_and_compile_json_report_the_file_written(capsys, tmp_path):
    page = tmp_path / "e.html"
    argv = ["explore", "x*y", "--at", "x=1,y=2", "-o", str(page), "--format", "json"]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    want = {"expression": "x*y", "output": str(page), "file": str(page.resolve())}
    assert json.loads(out) == want
    assert page.read_text().lstrip().lower().startswith("<!doctype html")
    module = tmp_path / "f.py"
    argv = ["compile", "x**2*y", "--wrt", "x", "-o", str(module), "--format", "json"]
    code, out, _ = run(capsys, *argv)
    data = json.loads(out)  # -o is honoured with --format json (it used to be ignored)
    assert code == 0 and data["file"] == str(module) and data["source"] == module.read_text()
    code, out, _ = run(
        capsys, "compile", "--matrix", "sum(exp(X*w))", "--shape", "X=m,n", "--shape", "w=n",
        "--wrt", "w", "-o", str(tmp_path / "m.py"), "--format", "json",
    )  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["source"] == (tmp_path / "m.py").read_text()


def test_matrix_derive_json(capsys):
    code, out, _ = run(
        capsys, "derive", "--matrix", "sum(exp(X*w))", "--shape", "X=m,n", "--shape", "w=n",
        "--wrt", "w", "--format", "json",
    )  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["wrt"] == ["w"]
    assert data["gradient"] == {"w": "X'*exp(X*w)"}  # d/dw 1^T exp(X w) = X^T exp(X w)
    assert [row["name"] for row in data["forward"]][-1] == "f"
