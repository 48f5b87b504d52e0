"""Real LaTeX renderers for tests: KaTeX through node, and pdflatex.

Install them with ``.ci/install-latex.sh``. Tests that need a missing renderer are skipped with
the reason, unless ``SYMGRAD_REQUIRE_RENDERERS=1`` (set by CI), in which case they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

KATEX_DIR = Path(os.environ.get("SYMGRAD_KATEX_DIR", "/opt/symgrad-katex"))

# Renders each TeX string of a JSON array from stdin in display mode with errors turned on;
# prints a JSON array with null (rendered) or the error message for each.
_KATEX_SCRIPT = r"""
const katex = require("katex");
let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map((tex) => {
    try {
      katex.renderToString(tex, { throwOnError: true, displayMode: true, strict: "error" });
      return null;
    } catch (e) {
      return String(e.message || e);
    }
  });
  process.stdout.write(JSON.stringify(out));
});
"""


def _missing(reason: str):
    if os.environ.get("SYMGRAD_REQUIRE_RENDERERS") == "1":
        pytest.fail(f"{reason} (SYMGRAD_REQUIRE_RENDERERS=1; run .ci/install-latex.sh)")
    pytest.skip(f"{reason}; run .ci/install-latex.sh to install it")


def katex_renderer():
    """A function rendering TeX strings with KaTeX; it raises AssertionError on any error."""
    node = shutil.which("node")
    if node is None or not (KATEX_DIR / "node_modules" / "katex").is_dir():
        _missing(f"KaTeX is not installed (node + {KATEX_DIR}/node_modules/katex)")

    def render(snippets: list[str]) -> None:
        env = {**os.environ, "NODE_PATH": str(KATEX_DIR / "node_modules")}
        proc = subprocess.run(
            [node, "-e", _KATEX_SCRIPT],
            input=json.dumps(snippets),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        errors = json.loads(proc.stdout)
        bad = [(tex, err) for tex, err in zip(snippets, errors, strict=True) if err]
        assert not bad, "KaTeX errors:\n" + "\n\n".join(f"{e}\nin:\n{t}" for t, e in bad)

    return render


def pdflatex_renderer():
    """A function compiling a complete LaTeX document; AssertionError with the log on failure."""
    exe = shutil.which("pdflatex")
    if exe is None:
        _missing("pdflatex is not installed (Debian package texlive-latex-base)")

    def compile_document(document: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "doc.tex").write_text(document, encoding="utf-8")
            proc = subprocess.run(
                [exe, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert proc.returncode == 0 and (Path(tmp) / "doc.pdf").exists(), proc.stdout[-3000:]

    return compile_document
