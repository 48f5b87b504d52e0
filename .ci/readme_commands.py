"""Print the README's "Two commands", one per line, for .ci/run to run exactly as written.

They are the command lines (not comments, not blank) of the first ```bash block under the
heading "## Two commands". Exits non-zero unless there are exactly two, so CI cannot drift
from the README or silently run nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

HEADING = "## Two commands"


def commands(readme: str) -> list[str]:
    """The command lines of the first bash block after ``HEADING``."""
    lines = readme.splitlines()
    try:
        start = lines.index(HEADING)
    except ValueError:
        raise SystemExit(f"README.md has no line {HEADING!r}") from None
    out, inside = [], False
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if not inside and line.strip() == "```bash":
            inside = True
        elif inside and line.strip() == "```":
            break
        elif inside and line.strip() and not line.lstrip().startswith("#"):
            out.append(line.strip())
    return out


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    found = commands(path.read_text(encoding="utf-8"))
    if len(found) != 2:
        raise SystemExit(f"expected 2 commands under {HEADING!r} in {path}, found {found}")
    print("\n".join(found))
