"""Times of the issue-15 hang cases, each in a fresh process (target: under 2 s each).

    python benchmarks/bench_hardening.py [--repeat 3]

Each case is run ``--repeat`` times in a new interpreter; the table shows the median of the
timed part (symgrad's work, after imports and after building the input) and the whole
process's wall time. The machine may be shared: compare cases within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETUP = "import time, numpy as np, sympy as sp, symgrad\n"
CASES = {
    "grad((x+1)**1000*(y+1)**1000), default simplification": """
x, y = sp.symbols("x y")
e = (x + 1)**1000 * (y + 1)**1000
t = time.perf_counter()
symgrad.grad(e, [x, y])
""",
    "symgrad diff '(x+1)**1000*(y+1)**1000' (in process)": """
from symgrad.cli import main
import contextlib, io
t = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    main(["diff", "(x+1)**1000*(y+1)**1000"])
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
REPORT = "\nprint(repr(time.perf_counter() - t))\n"


def run(code: str) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", SETUP + code + REPORT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return float(proc.stdout.strip().splitlines()[-1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = parser.parse_args()
    rows = {}
    for name, code in CASES.items():
        runs = [run(code) for _ in range(args.repeat)]
        rows[name] = (
            statistics.median(r[0] for r in runs),
            statistics.median(r[1] for r in runs),
        )
    if args.json:
        print(json.dumps({k: {"work_s": w, "process_s": p} for k, (w, p) in rows.items()}))
        return
    width = max(map(len, rows))
    print(f"{'case':<{width}}  {'work (s)':>9}  {'process (s)':>11}  under 2 s")
    for name, (work, wall) in rows.items():
        print(f"{name:<{width}}  {work:9.2f}  {wall:11.2f}  {'yes' if work < 2 else 'NO'}")


if __name__ == "__main__":
    main()
