"""Times of the issue-15 hang cases, each in a fresh process (target: under 2 s each).

    python benchmarks/bench_hardening.py [--repeat 5] [--write]

Two kinds of case, each run ``--repeat`` times in a new interpreter, the cases alternating
repetition by repetition:

- library calls: the median of the timed part (symgrad's work, after imports and after
  building the input), the whole process's wall and CPU time and its peak memory;
- the ``symgrad`` command itself (``python -m symgrad``, what the console script runs), fed a
  formula, a standard input longer than the limit, or an endless ``yes``: wall and CPU time of
  the whole process and its peak memory.

Baselines in the same run: ``python -c pass`` and ``import sympy, numpy`` (symgrad is built on
both, so their import is the floor of every command) and ``import symgrad``. The machine may be
shared: compare cases within one run, and read CPU time next to wall time (wall time grows
with the other jobs on the machine, CPU time much less). ``--write`` saves the table to
``benchmarks/bench_hardening_results.md`` (its "Notes" section, written by hand, is kept).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "bench_hardening_results.md"
NOTES = "\n## Notes\n"
FORMULA = "(x+1)**1000*(y+1)**1000"

SETUP = "import time, numpy as np, sympy as sp, symgrad\n"
REPORT = "\nprint(repr(time.perf_counter() - t))\n"
CALLS = {
    "grad(FORMULA, [x, y]), default simplification": """
x, y = sp.symbols("x y")
e = (x + 1)**1000 * (y + 1)**1000
t = time.perf_counter()
symgrad.grad(e, [x, y])
""",
    "grad(Max of 100 symbols) + lambdify": """
xs = sp.symbols("x0:100")
e = sp.Max(*xs, evaluate=False)
t = time.perf_counter()
symgrad.lambdify(symgrad.grad(e, list(xs)), [list(xs)])
""",
    "grad(Max of 300 symbols) + lambdify": """
xs = sp.symbols("x0:300")
e = sp.Max(*xs, evaluate=False)
t = time.perf_counter()
symgrad.lambdify(symgrad.grad(e, list(xs)), [list(xs)])
""",
    "derive(5,000-op Value chain)": """
v = symgrad.Value(0.5, label="a")
for i in range(5000):
    v = (v + 0.1).tanh() if i % 7 == 0 else v * 0.999 + 0.001 if i % 2 else v * 1.0001
t = time.perf_counter()
symgrad.derive(v)
""",
}
# name -> (arguments of python, standard input: None, "big" (1 GiB file) or "yes")
PROCESSES = {
    "python -c pass": (["-c", "pass"], None),
    "import sympy, numpy": (["-c", "import sympy, numpy"], None),
    "import symgrad": (["-c", "import symgrad"], None),
    f"symgrad diff '{FORMULA}'": (["-m", "symgrad", "diff", FORMULA], None),
    f"symgrad diff '{FORMULA}' --wrt x --format json": (
        ["-m", "symgrad", "diff", FORMULA, "--wrt", "x", "--format", "json"],
        None,
    ),
    # found by a random-expression sweep: large coefficients, exp of a power, a sign query
    # whose imaginary part SymPy expands
    "symgrad diff '(x+1)**1000+(y+1)**1000'": (
        ["-m", "symgrad", "diff", "(x+1)**1000+(y+1)**1000"],
        None,
    ),
    "symgrad diff 'exp((x+1)**1000)*(y+2)**500'": (
        ["-m", "symgrad", "diff", "exp((x+1)**1000)*(y+2)**500"],
        None,
    ),
    "symgrad diff 'x/max(z*(x+z), 3+x**200)'": (
        ["-m", "symgrad", "diff", "x/max(z*(x+z), 3+x**200)"],
        None,
    ),
    "symgrad diff - < 1 GiB file": (["-m", "symgrad", "diff", "-"], "big"),
    "yes | symgrad diff -": (["-m", "symgrad", "diff", "-"], "yes"),
}


def _env() -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}


def _wait(proc: subprocess.Popen) -> tuple[int, float, float]:
    """Exit code, CPU seconds (user + system) and peak resident memory (MB) of ``proc``."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run_call(code: str) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", SETUP + code + REPORT],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    out, err = proc.stdout.read(), proc.stderr.read()
    code_, cpu, rss = _wait(proc)
    wall = time.perf_counter() - start
    if code_:
        raise SystemExit(err.decode())
    work = float(out.decode().strip().splitlines()[-1])
    return {"work": work, "wall": wall, "cpu": cpu, "rss": rss, "exit": code_}


def run_process(argv: list[str], stdin: str | None, big: Path) -> dict:
    feeder = None
    if stdin == "yes":
        feeder = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
        source = feeder.stdout
    elif stdin == "big":
        source = big.open("rb")
    else:
        source = subprocess.DEVNULL
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        stdin=source,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    code, cpu, rss = _wait(proc)
    wall = time.perf_counter() - start
    if feeder is not None:
        feeder.kill()
        feeder.wait()
        feeder.stdout.close()
    elif stdin == "big":
        source.close()
    return {"work": None, "wall": wall, "cpu": cpu, "rss": rss, "exit": code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", action="store_true", help=f"save the table to {RESULTS.name}")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.txt"
        with big.open("wb") as fh:  # sparse: 1 GiB of zero bytes that costs no disk
            fh.truncate(1 << 30)
        for _ in range(args.repeat):
            for name, code in CALLS.items():
                runs.setdefault(name, []).append(run_call(code))
            for name, (argv, stdin) in PROCESSES.items():
                runs.setdefault(name, []).append(run_process(argv, stdin, big))
    table = _table(runs)
    print(table)
    if args.write:
        old = RESULTS.read_text() if RESULTS.exists() else ""
        notes = old[old.index(NOTES) :] if NOTES in old else ""  # kept: written by hand
        RESULTS.write_text(_document(table, args.repeat) + notes)
        print(f"wrote {RESULTS}")


def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else None


def _table(runs: dict[str, list[dict]]) -> str:
    lines = [
        "| case | work (s) | process wall (s) | process CPU (s) | peak memory (MB) | exit | "
        "under 2 s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, rows in runs.items():
        work, wall = _median(rows, "work"), _median(rows, "wall")
        cpu, rss = _median(rows, "cpu"), _median(rows, "rss")
        exits = sorted({r["exit"] for r in rows})
        shown = "-" if work is None else f"{work:.2f}"
        ok = "yes" if max(r["wall"] for r in rows) < 2 else "NO"
        lines.append(
            f"| {name.replace('|', '&#124;')} | {shown} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | "
            f"{', '.join(map(str, exits))} | {ok} |"
        )
    return "\n".join(lines)


def _document(table: str, repeat: int) -> str:
    today = datetime.date.today().isoformat()
    return f"""# bench_hardening.py results

`python benchmarks/bench_hardening.py --repeat {repeat} --write`, {today}, {platform.machine()}
({os.cpu_count()} cores, shared with other jobs), Python {platform.python_version()}. Medians of
{repeat} fresh processes per case, cases alternating; "under 2 s" holds for the slowest run's
whole-process wall time. The formula is `{FORMULA}`.

{table}

Reading the table: every `symgrad` command pays Python's start and the import of SymPy and
NumPy (the `import sympy, numpy` row), which is most of its time; `import symgrad` adds little
on top (the matrix calculus, the Graphviz drawing and the C target are imported on first use).
A standard input longer than the limit (100,000 bytes) is refused after reading the limit plus
one byte (exit 3), so neither a 1 GiB file nor an endless `yes` costs more than a short formula.
"""


if __name__ == "__main__":
    main()
