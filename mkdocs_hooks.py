"""MkDocs hook: doctest examples (``>>>`` lines and their output) render as code blocks.

symgrad's docstrings and some pages carry bare doctests (the test suite runs them); Markdown
would read their output, such as ``['f', 'x']``, as text and links. This hook adds a Markdown
preprocessor, for the pages and for the API reference that mkdocstrings renders, that fences each
run of doctest lines (up to the next blank line) as a ``pycon`` block.
"""

from __future__ import annotations

from markdown import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.plugins import event_priority


class _DoctestBlocks(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        fence = None  # the fence of the code block we are in, if any
        in_doctest = False
        for line in lines:
            stripped = line.lstrip()
            if fence is None and not in_doctest and stripped.startswith(("```", "~~~")):
                fence = stripped[:3]
            elif fence is not None:
                if stripped.startswith(fence):
                    fence = None
            elif not in_doctest and stripped.startswith(">>>"):
                indent = line[: len(line) - len(stripped)]
                out.append(f"{indent}```pycon")
                in_doctest = True
            elif in_doctest and not stripped:
                out.append(f"{indent}```")
                in_doctest = False
            out.append(line)
        if in_doctest:
            out.append(f"{indent}```")
        return out


class DoctestBlocks(Extension):
    def extendMarkdown(self, md) -> None:
        md.preprocessors.register(_DoctestBlocks(md), "symgrad_doctest_blocks", 30)


@event_priority(100)  # before mkdocstrings reads the extensions
def on_config(config):
    config.markdown_extensions.append(DoctestBlocks())
    return config
